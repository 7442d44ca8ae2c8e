// Command vosfs creates, mounts, checks and inspects vosfs pools.
//
//	vosfs mkfs [flags] POOLDIR
//	vosfs mount [-o opt,...] [--foreground] [--mkfs] POOLDIR MOUNTPOINT
//	vosfs fsck POOLDIR
//	vosfs stat [--json] POOLDIR|MOUNTPOINT
//	vosfs snapshot create|list|delete MOUNTPOINT [NAME]
//	vosfs profile [--kind KIND] [--seconds N] [-o FILE] POOLDIR|MOUNTPOINT
//	vosfs version
//
// Invoked as mount.fuse.vosfs, or as "vosfs POOLDIR MOUNTPOINT -o OPTIONS",
// it is the mount helper that mount(8) runs for filesystems of type
// fuse.vosfs.
//
// Usage errors exit with status 2, operational errors with status 1.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"golang.org/x/sys/unix"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	usage   string // the synopsis and description printed by -h
	run     func(c *command, args []string) error
}

// commands are the subcommands in the order help lists them; init fills it
// to break the cycle through runHelp.
var commands []*command

func init() {
	commands = []*command{
		mkfsCommand,
		mountCommand,
		fsckCommand,
		statCommand,
		snapshotCommand,
		profileCommand,
		{name: "version", summary: "print the version", usage: "usage: vosfs version\n\nPrints the version of vosfs and of the Go toolchain that built it.\n", run: runVersion},
		{name: "help", summary: "show help for a command", usage: "usage: vosfs help [COMMAND]\n", run: runHelp},
	}
}

func lookupCommand(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// usageError is a mistake in the command line: exit status 2.
type usageError struct {
	cmd string // the subcommand, or "" for vosfs itself
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
	err := dispatch(argv)
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
		fmt.Fprintf(os.Stderr, "%s: %s\n", prog, ue.msg)
		if ue.cmd != "" {
			fmt.Fprintf(os.Stderr, "Run '%s -h' for usage.\n", prog)
		} else {
			fmt.Fprintln(os.Stderr, "Run 'vosfs help' for usage.")
		}
		return 2
	default:
		fmt.Fprintf(os.Stderr, "vosfs: %v\n", err)
		return 1
	}
}

func dispatch(argv []string) error {
	args := argv[1:]
	if isHelperName(argv[0]) {
		rewritten, err := helperArgs(args)
		if err != nil {
			return err
		}
		return runMount(mountCommand, rewritten)
	}
	if len(args) == 0 {
		printTopUsage(os.Stderr)
		return &exitError{code: 2}
	}
	switch args[0] {
	case "-h", "-help", "--help":
		printTopUsage(os.Stdout)
		return nil
	case "-v", "-version", "--version":
		return runVersion(nil, nil)
	}
	if c := lookupCommand(args[0]); c != nil {
		return c.run(c, args[1:])
	}
	// "vosfs POOLDIR MOUNTPOINT -o OPTIONS" is the mount helper form.
	if !strings.HasPrefix(args[0], "-") && len(args) >= 2 {
		rewritten, err := helperArgs(args)
		if err != nil {
			return err
		}
		return runMount(mountCommand, rewritten)
	}
	return usagef("", "unknown command %q", args[0])
}

func printTopUsage(w io.Writer) {
	fmt.Fprint(w, `vosfs is a FUSE filesystem over a transactional object store.

usage: vosfs COMMAND [flags] [arguments]

commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
As a mount helper (mount -t fuse.vosfs POOLDIR MOUNTPOINT -o OPTIONS runs
mount.fuse.vosfs, a link to vosfs):

  vosfs POOLDIR MOUNTPOINT [-o OPTIONS]

Run 'vosfs COMMAND -h' for the flags of a command.
`)
}

func runHelp(_ *command, args []string) error {
	if len(args) == 0 {
		printTopUsage(os.Stdout)
		return nil
	}
	if len(args) > 1 {
		return usagef("help", "too many arguments")
	}
	c := lookupCommand(args[0])
	if c == nil {
		return usagef("help", "unknown command %q", args[0])
	}
	fmt.Fprint(os.Stdout, c.usage)
	return nil
}

func runVersion(_ *command, args []string) error {
	if len(args) > 0 {
		return usagef("version", "takes no arguments")
	}
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
	fmt.Printf("%s (%s %s/%s)\n", line, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

// newFlagSet returns a flag set for a subcommand that reports instead of
// printing: parseArgs turns its errors into usage errors.
func newFlagSet(c *command) *flag.FlagSet {
	fl := flag.NewFlagSet("vosfs "+c.name, flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	fl.Usage = func() {}
	return fl
}

// parseArgs parses flags placed anywhere among the positional arguments
// (until "--") and returns the positional ones. -h prints the command's
// usage and ends the program successfully.
func parseArgs(c *command, fl *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fl.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				printCommandUsage(os.Stdout, c, fl)
				return nil, &exitError{code: 0}
			}
			return nil, usagef(c.name, "%v", err)
		}
		rest := fl.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// parseOneArg is parseArgs for a command that takes exactly one argument,
// named what in the error when it is missing.
func parseOneArg(c *command, fl *flag.FlagSet, args []string, what string) (string, error) {
	pos, err := parseArgs(c, fl, args)
	switch {
	case err != nil:
		return "", err
	case len(pos) == 0:
		return "", usagef(c.name, "missing %s", what)
	case len(pos) > 1:
		return "", usagef(c.name, "too many arguments: %q", pos[1:])
	}
	return pos[0], nil
}

// printCommandUsage prints a command's usage and its flags, leaving out
// the internal ones (whose usage starts with "internal").
func printCommandUsage(w io.Writer, c *command, fl *flag.FlagSet) {
	fmt.Fprint(w, c.usage)
	var lines []string
	fl.VisitAll(func(f *flag.Flag) {
		if strings.HasPrefix(f.Usage, "internal") {
			return
		}
		name, usage := "", f.Usage
		switch v := f.Value.(type) {
		case *sizeFlag:
			name = "SIZE"
		case *listFlag:
			name = "LIST"
		case interface{ IsBoolFlag() bool }:
			if !v.IsBoolFlag() {
				name = "VALUE"
			}
		default:
			name = "VALUE"
		}
		dash := "--"
		if len(f.Name) == 1 {
			dash = "-"
		}
		head := "  " + dash + f.Name
		if name != "" {
			head += " " + name
		}
		line := fmt.Sprintf("%-24s %s", head, usage)
		if def := f.DefValue; def != "" && def != "false" && def != "0" && def != "[]" {
			line += fmt.Sprintf(" (default %s)", def)
		}
		lines = append(lines, line)
	})
	if len(lines) > 0 {
		fmt.Fprintln(w, "\nflags:")
		for _, l := range lines {
			fmt.Fprintln(w, l)
		}
	}
}

// sizeFlag is a byte count given and shown the way people write sizes
// ("8GiB", "256 MiB").
type sizeFlag struct {
	n   uint64
	set bool
}

func (s *sizeFlag) String() string {
	if s == nil || s.n == 0 {
		return ""
	}
	return humanize.IBytes(s.n)
}

func (s *sizeFlag) Set(v string) error {
	n, err := humanize.ParseBytes(v)
	if err != nil {
		return fmt.Errorf("not a size (examples: 8GiB, 512MiB, 4096)")
	}
	if n == 0 {
		return fmt.Errorf("size must be more than zero")
	}
	s.n, s.set = n, true
	return nil
}

// absDir returns the absolute, cleaned form of a directory argument.
func absDir(p string) (string, error) {
	a, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	return filepath.Clean(a), nil
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// progress shows the advance of a long step, and only of a long one: it
// stays silent for its first second. On a terminal it redraws one line;
// elsewhere it prints a line every few seconds.
type progress struct {
	w     io.Writer
	tty   bool
	start time.Time
	last  time.Time
	shown bool
	width int
}

func newProgress(f *os.File) *progress {
	return &progress{w: f, tty: isTerminal(f), start: time.Now()}
}

// show displays msg if the step has lasted long enough and the previous
// display is old enough; final forces it once anything has been shown.
func (p *progress) show(msg string, final bool) {
	now := time.Now()
	if now.Sub(p.start) < time.Second && !p.shown {
		return
	}
	every := 200 * time.Millisecond
	if !p.tty {
		every = 3 * time.Second
	}
	if !(final && p.shown) && now.Sub(p.last) < every {
		return
	}
	p.last, p.shown = now, true
	if p.tty {
		pad := ""
		if n := p.width - len(msg); n > 0 {
			pad = strings.Repeat(" ", n)
		}
		p.width = len(msg)
		fmt.Fprintf(p.w, "\r%s%s", msg, pad)
		return
	}
	fmt.Fprintln(p.w, msg)
}

// done ends the line of a terminal display.
func (p *progress) done() {
	if p.shown && p.tty {
		fmt.Fprintln(p.w)
	}
	p.shown = false
}

// fmtDuration formats a duration to a precision people read.
func fmtDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Minute:
		return d.Round(time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

// count formats n with its noun, singular or plural ("1 object",
// "1,024 objects").
func count(n uint64, singular, plural string) string {
	if n == 1 {
		return "1 " + singular
	}
	return humanize.Comma(int64(n)) + " " + plural
}

// exactBytes formats a limit: humanized, with the exact count when the
// humanized form rounds it.
func exactBytes(n uint64) string {
	s := humanize.IBytes(n)
	if v, err := humanize.ParseBytes(s); err != nil || v != n {
		s += " (" + humanize.Comma(int64(n)) + " bytes)"
	}
	return s
}

// bytesOf formats "done / total", or just done when the total is unknown.
func bytesOf(done, total uint64) string {
	if total == 0 {
		return humanize.IBytes(done)
	}
	return humanize.IBytes(done) + " / " + humanize.IBytes(total)
}
