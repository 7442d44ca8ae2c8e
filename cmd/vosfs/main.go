// Command vosfs creates, mounts, checks and inspects vosfs pools.
//
//	vosfs mkfs [flags] POOLDIR
//	vosfs mount [-o opt,...] [--foreground] [--mkfs [mkfs flags]] POOLDIR MOUNTPOINT
//	vosfs umount [--lazy] MOUNTPOINT|POOLDIR
//	vosfs fsck POOLDIR
//	vosfs stat [--json] POOLDIR|MOUNTPOINT
//	vosfs stats [--count N] [--interval D] MOUNTPOINT|POOLDIR
//	vosfs snapshot create|list|delete MOUNTPOINT [NAME]
//	vosfs profile [--kind KIND] [--seconds N] [-o FILE] POOLDIR|MOUNTPOINT
//	vosfs version
//	vosfs completion bash|zsh|fish|powershell
//
// Invoked as mount.fuse.vosfs, or as "vosfs POOLDIR MOUNTPOINT -o OPTIONS"
// with a POOLDIR that names a path (it holds a '/'), it is the mount helper
// that mount(8) (or mount.fuse3) runs for filesystems of type fuse.vosfs.
//
// Usage errors exit with status 2, operational errors with status 1.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// usageError is a mistake in the command line: exit status 2, with the
// usage of the command.
type usageError struct {
	cmd string // the command path after "vosfs" ("mkfs", "snapshot create"), or "" for vosfs itself
	msg string
}

func (e *usageError) Error() string { return e.msg }

func usagef(cmd, format string, args ...any) error {
	return &usageError{cmd: cmd, msg: fmt.Sprintf(format, args...)}
}

// exitError ends the program with a status and no further message (what
// had to be said has been printed).
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	os.Exit(run(os.Args))
}

// run runs the command line argv and returns the exit status.
func run(argv []string) int {
	return runTo(argv, os.Stdout, os.Stderr)
}

// runTo is run with the output of the command tree (help, usage, errors)
// going to stdout and stderr.
func runTo(argv []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetOut(stdout)
	root.SetErr(stderr)
	args := argv[1:]
	if isHelperName(argv[0]) || isHelperForm(args) {
		rewritten, err := helperArgs(args)
		if err != nil {
			return report(root, stderr, err)
		}
		args = append([]string{"mount"}, rewritten...)
	}
	root.SetArgs(args)
	return report(root, stderr, root.Execute())
}

// isHelperForm reports whether the arguments of vosfs are those mount.fuse3
// passes to the program of a "fuse.vosfs" filesystem: "POOLDIR MOUNTPOINT
// [-o OPTIONS]", told from a command by a '/' in the first word, which no
// command name has. Any other first word that is not a command is an
// error, never a mount.
func isHelperForm(args []string) bool {
	return len(args) >= 2 && strings.Contains(args[0], "/") && !strings.HasPrefix(args[0], "-")
}

// report prints what err calls for and returns the exit status.
func report(root *cobra.Command, stderr io.Writer, err error) int {
	var ue *usageError
	var ee *exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ue):
		prog := "vosfs"
		if ue.cmd != "" {
			prog += " " + ue.cmd
		}
		if ue.cmd == "" {
			fmt.Fprintf(stderr, "%s: %s\nRun 'vosfs --help' for the commands.\n", prog, ue.msg)
			return 2
		}
		fmt.Fprintf(stderr, "%s: %s\n\n%s", prog, ue.msg, commandUsage(root, ue.cmd))
		return 2
	default:
		fmt.Fprintf(stderr, "vosfs: %v\n", err)
		return 1
	}
}
