package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/spf13/cobra"
)

// newRootCmd builds the command tree of vosfs. Each call builds a fresh
// one, with flags at their defaults.
func newRootCmd() *cobra.Command {
	cobra.EnableCommandSorting = false // help lists the commands in the order added
	root := &cobra.Command{
		Use:   "vosfs",
		Short: "a FUSE filesystem over a transactional object store",
		Long: `vosfs is a FUSE filesystem over a transactional, versioned object store.

Sizes are binary: 1K = 1KiB = 1024 bytes, 1M = 1MiB, 1G = 1GiB, 1T = 1TiB
(so 8G, 8GiB and 8GB are all 8 GiB); they are printed the same way (8.0 GiB).

As a mount helper (mount -t fuse.vosfs POOLDIR MOUNTPOINT -o OPTIONS runs
mount.fuse.vosfs, a link to vosfs; mount.fuse3 runs vosfs itself):

  mount.fuse.vosfs POOLDIR MOUNTPOINT [-o OPTIONS] [-f] [-n] [-s] [-v]
  vosfs POOLDIR MOUNTPOINT [-o OPTIONS]    (POOLDIR holding a '/')

Usage errors exit with status 2, other errors with status 1.`,
		Version:           versionString(),
		SilenceUsage:      true,
		SilenceErrors:     true,
		DisableAutoGenTag: true,
		Args:              cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				c.SetOut(c.ErrOrStderr())
				c.Help()
				return &exitError{code: 2}
			}
			msg := fmt.Sprintf("unknown command %q", args[0])
			if s := slices.Compact(c.SuggestionsFor(args[0])); len(s) > 0 {
				msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, " or "))
			}
			return usagef("", "%s", msg)
		},
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetUsageTemplate(usageTemplate)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usagef(commandName(c), "%v", err)
	})
	root.AddCommand(
		newMkfsCmd(),
		newMountCmd(),
		newUmountCmd(),
		newFsckCmd(),
		newStatCmd(),
		newStatsCmd(),
		newSnapshotCmd(),
		newProfileCmd(),
		newVersionCmd(),
		newGenManCmd(),
	)
	root.SetHelpCommand(newHelpCmd())
	root.InitDefaultCompletionCmd()
	if c, _, err := root.Find([]string{"completion"}); err == nil && c != root {
		c.Short = "print a shell completion script (bash, zsh, fish, powershell)"
		subcommandsOnly(c, "shell")
	}
	root.SuggestionsMinimumDistance = 2
	return root
}

// usageTemplate is cobra's, with a command that has subcommands shown as
// "vosfs snapshot COMMAND" alone.
const usageTemplate = `Usage:{{if .HasAvailableSubCommands}}
  {{.CommandPath}} COMMAND [flags] [arguments]{{else}}
  {{.UseLine}}{{end}}{{if .HasAvailableSubCommands}}

Commands:{{range .Commands}}{{if (or .IsAvailableCommand (eq .Name "help"))}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}{{end}}{{if .HasAvailableLocalFlags}}

Flags:
{{.LocalFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}{{if .HasAvailableInheritedFlags}}

Global Flags:
{{.InheritedFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}{{if .HasAvailableSubCommands}}

Run '{{.CommandPath}} COMMAND --help' for the help of a command.{{end}}
`

// commandName is the path of c after "vosfs": "mkfs", "snapshot create",
// or "" for vosfs itself.
func commandName(c *cobra.Command) string {
	path := c.CommandPath()
	if i := strings.IndexByte(path, ' '); i >= 0 {
		return path[i+1:]
	}
	return ""
}

// commandUsage returns the usage of the command at path ("" for vosfs),
// or of vosfs if there is none.
func commandUsage(root *cobra.Command, path string) string {
	c := root
	if path != "" {
		if found, rest, err := root.Find(strings.Fields(path)); err == nil && len(rest) == 0 {
			c = found
		}
	}
	return c.UsageString()
}

// newHelpCmd is "vosfs help [COMMAND]": the help of a command, exactly
// what "vosfs COMMAND --help" prints; an unknown command is a usage error.
func newHelpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "help [COMMAND]",
		Short: "show the help of a command",
		Long:  "Prints the help of COMMAND (a command and its subcommand, like 'snapshot create'), as 'vosfs COMMAND --help' does, or of vosfs.",
		ValidArgsFunction: func(c *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			var out []cobra.Completion
			cmd, _, err := c.Root().Find(args)
			if err != nil || cmd == nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			for _, sub := range cmd.Commands() {
				if sub.IsAvailableCommand() && strings.HasPrefix(sub.Name(), toComplete) {
					out = append(out, cobra.CompletionWithDesc(sub.Name(), sub.Short))
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(c *cobra.Command, args []string) error {
			root := c.Root()
			cmd, rest, err := root.Find(args)
			if err != nil || len(rest) > 0 || (len(args) > 0 && cmd == root) {
				return usagef("help", "unknown command %q", strings.Join(args, " "))
			}
			cmd.SetOut(c.OutOrStdout())
			cmd.InitDefaultHelpFlag() // shown as "COMMAND --help" shows them
			cmd.InitDefaultVersionFlag()
			return cmd.Help()
		},
	}
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print the version",
		Long:  "Prints the version of vosfs and of the Go toolchain that built it.",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			fmt.Fprintln(c.OutOrStdout(), versionString())
			return nil
		},
	}
}

// versionString is the version of this build: the module version, the
// revision it was built from and the toolchain.
func versionString() string {
	version, rev, modified := "(devel)", "", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	line := "vosfs " + version
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		line += " rev " + rev
		if modified {
			line += "+modified"
		}
	}
	return fmt.Sprintf("%s (%s %s/%s)", line, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// subcommandsOnly makes c, a command that only groups its subcommands,
// refuse a missing or unknown one (what names them: "operation") as a
// usage error.
func subcommandsOnly(c *cobra.Command, what string) {
	var names []string
	for _, sub := range c.Commands() {
		if sub.IsAvailableCommand() {
			names = append(names, sub.Name())
		}
	}
	list := strings.Join(names, ", ")
	if n := len(names); n > 1 {
		list = strings.Join(names[:n-1], ", ") + " or " + names[n-1]
	}
	c.Args = cobra.ArbitraryArgs
	c.RunE = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return usagef(commandName(c), "missing %s: %s", what, list)
		}
		return usagef(commandName(c), "unknown %s %q: %s", what, args[0], list)
	}
}

// noArgs refuses any argument.
func noArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef(commandName(c), "takes no arguments (got %q)", args)
	}
	return nil
}

// exactArgs wants one argument for each name, and names the first one
// missing.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		switch {
		case len(args) < len(names):
			return usagef(commandName(c), "missing %s", names[len(args)])
		case len(args) > len(names):
			return usagef(commandName(c), "too many arguments: %q", args[len(names):])
		}
		return nil
	}
}

// completeDirs completes the positional arguments with directories.
func completeDirs(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return nil, cobra.ShellCompDirectiveFilterDirs
}
