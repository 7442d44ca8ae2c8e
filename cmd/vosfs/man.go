package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// newGenManCmd is the hidden "vosfs gen-man DIR": man pages of every
// command, from the definitions the help comes from.
func newGenManCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "gen-man DIR",
		Short:  "write the man pages of vosfs into DIR",
		Long:   "Writes a man page (section 8) for vosfs and each of its commands into DIR, created if missing: vosfs.8, vosfs-mkfs.8, ...",
		Hidden: true,
		Args:   exactArgs("DIR"),
		RunE: func(c *cobra.Command, args []string) error {
			dir := args[0]
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			header := &doc.GenManHeader{Title: "VOSFS", Section: "8", Source: "vosfs", Manual: "vosfs manual"}
			if err := doc.GenManTree(c.Root(), header, dir); err != nil {
				return err
			}
			pages, _ := filepath.Glob(filepath.Join(dir, "*.8"))
			fmt.Fprintf(c.OutOrStdout(), "wrote %d man pages in %s\n", len(pages), dir)
			return nil
		},
	}
}
