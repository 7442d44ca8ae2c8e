package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

func newSnapshotCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "snapshot",
		Short: "create, list or delete snapshots of a mounted filesystem",
		Long: `A snapshot is a read-only image of the whole filesystem as it was when the
snapshot was created. Snapshots are seen in MOUNTPOINT/.snapshots/NAME,
where mkdir and rmdir also create and delete them.`,
	}
	c.AddCommand(
		&cobra.Command{
			Use:               "create [flags] MOUNTPOINT NAME",
			Short:             "create a snapshot",
			Long:              "Creates the snapshot NAME of the filesystem mounted on MOUNTPOINT, seen in MOUNTPOINT/.snapshots/NAME.",
			Args:              snapshotArgs("MOUNTPOINT", "NAME"),
			ValidArgsFunction: completeDirs,
			RunE: func(c *cobra.Command, args []string) error {
				return runSnapshot(c.OutOrStdout(), "create", args)
			},
		},
		&cobra.Command{
			Use:               "list [flags] MOUNTPOINT",
			Short:             "list the snapshots",
			Long:              "Prints the names of the snapshots of the filesystem mounted on MOUNTPOINT, one a line.",
			Args:              snapshotArgs("MOUNTPOINT"),
			ValidArgsFunction: completeDirs,
			RunE: func(c *cobra.Command, args []string) error {
				return runSnapshot(c.OutOrStdout(), "list", args)
			},
		},
		&cobra.Command{
			Use:               "delete [flags] MOUNTPOINT NAME",
			Short:             "delete a snapshot",
			Long:              "Deletes the snapshot NAME of the filesystem mounted on MOUNTPOINT.",
			Args:              snapshotArgs("MOUNTPOINT", "NAME"),
			ValidArgsFunction: completeDirs,
			RunE: func(c *cobra.Command, args []string) error {
				return runSnapshot(c.OutOrStdout(), "delete", args)
			},
		},
	)
	subcommandsOnly(c, "operation")
	return c
}

// snapshotArgs wants the named arguments, the second a valid snapshot
// name.
func snapshotArgs(names ...string) cobra.PositionalArgs {
	exact := exactArgs(names...)
	return func(c *cobra.Command, args []string) error {
		if err := exact(c, args); err != nil {
			return err
		}
		if len(args) == 2 {
			if err := checkSnapshotName(args[1]); err != nil {
				return usagef(commandName(c), "%v", err)
			}
		}
		return nil
	}
}

// snapshotsDir is the directory at the root of a mount holding snapshots.
const snapshotsDir = ".snapshots"

// runSnapshot runs the operation op (create, list, delete) on the mount
// point and name in args.
func runSnapshot(out io.Writer, op string, args []string) error {
	mp, err := vosfsMountpoint(args[0])
	if err != nil {
		return err
	}
	snaps := filepath.Join(mp, snapshotsDir)
	switch op {
	case "create":
		name := args[1]
		if err := os.Mkdir(filepath.Join(snaps, name), 0o755); err != nil {
			return snapshotError(mp, name, err)
		}
		fmt.Fprintf(out, "created snapshot %s (%s)\n", name, filepath.Join(snaps, name))
	case "delete":
		name := args[1]
		if err := os.Remove(filepath.Join(snaps, name)); err != nil {
			return snapshotError(mp, name, err)
		}
		fmt.Fprintf(out, "deleted snapshot %s\n", name)
	case "list":
		entries, err := os.ReadDir(snaps)
		if err != nil {
			return snapshotError(mp, "", err)
		}
		for _, e := range entries {
			fmt.Fprintln(out, e.Name())
		}
	}
	return nil
}

func checkSnapshotName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("invalid snapshot name %q", name)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("invalid snapshot name %q: it may not contain '/'", name)
	}
	return nil
}

// vosfsMountpoint returns the mount point of the vosfs mount arg names
// (its mount point, or its source).
func vosfsMountpoint(arg string) (string, error) {
	r, ok, err := findMount(arg)
	if err != nil {
		return "", err
	}
	abs, _ := absDir(arg)
	if !ok || (r.Pool == abs && r.Mountpoint != abs) {
		return "", fmt.Errorf("%s is not a vosfs mount point", abs)
	}
	return r.Mountpoint, nil
}

// snapshotError explains a failed snapshot operation.
func snapshotError(mp, name string, err error) error {
	switch {
	case errors.Is(err, syscall.EEXIST):
		return fmt.Errorf("snapshot %s exists", name)
	case errors.Is(err, syscall.ENOENT) && name != "":
		return fmt.Errorf("no snapshot %s on %s", name, mp)
	case errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("%s has no %s directory (not a vosfs mount?)", mp, snapshotsDir)
	case errors.Is(err, syscall.ENAMETOOLONG):
		return fmt.Errorf("snapshot name %q is too long", name)
	case errors.Is(err, syscall.EROFS):
		return fmt.Errorf("%s is mounted read-only", mp)
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("no space left for snapshot %s", name)
	}
	return err
}
