package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"vosfs/pool"
)

var mountCommand = &command{
	name:    "mount",
	summary: "mount a pool",
	usage: `usage: vosfs mount [-o OPTIONS] [--foreground] [--mkfs] POOLDIR MOUNTPOINT

Mounts the pool in POOLDIR on MOUNTPOINT. By default the filesystem is
served by a daemon in the background, logging to POOLDIR/vosfs.log, and the
command returns once the mount is live (or failed). Unmount with
'umount MOUNTPOINT' or 'fusermount3 -u MOUNTPOINT'; the daemon then writes
everything back and marks the pool clean. A pool that was not unmounted
cleanly is recovered from its log when mounted.

Options (-o, comma-separated; -o may be repeated), of vosfs, of FUSE, of
the kernel (VFS), of fstab; anything else is refused:
` + optionsHelp(),
	run: runMount,
}

// listFlag accumulates the values of a repeated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

func runMount(c *command, args []string) error {
	fl := newFlagSet(c)
	var optList listFlag
	fl.Var(&optList, "o", "mount options, comma-separated (see above)")
	foreground := fl.Bool("foreground", false, "serve in this process until unmounted, logging to stderr")
	mkfs := fl.Bool("mkfs", false, "create the pool with the default sizes if POOLDIR holds none, and MOUNTPOINT if missing")
	notifyFD := fl.Int("notify-fd", -1, "internal: report readiness through this inherited descriptor")
	pos, err := parseArgs(c, fl, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef(c.name, "want POOLDIR and MOUNTPOINT, got %d argument(s)", len(pos))
	}
	opts, test, err := parseMountOptions(optList.String())
	if err != nil {
		return usagef(c.name, "%v", err)
	}
	poolDir, err := absDir(pos[0])
	if err != nil {
		return err
	}
	mp, err := absDir(pos[1])
	if err != nil {
		return err
	}
	if opts.FsName == "" {
		opts.FsName = poolDir
	}
	cfg := daemonConfig{pool: poolDir, mountpoint: mp, opts: opts, test: test}

	if test.powerCut != nil && *notifyFD < 0 {
		fmt.Fprintf(os.Stderr, "vosfs: WARNING: power-cut test mode (powercut=%d): unsynced writes are lost if the daemon dies; for crash tests only\n", *test.powerCut)
	}
	if *notifyFD >= 0 {
		// The daemon started by a background mount.
		n, err := openNotifier(*notifyFD)
		if err != nil {
			return err
		}
		return runDaemon(cfg, n)
	}
	if *mkfs {
		if _, err := os.Stat(mp); errors.Is(err, iofs.ErrNotExist) {
			if err := os.MkdirAll(mp, 0o755); err != nil {
				return err
			}
		}
	}
	if err := checkMountpoint(mp); err != nil {
		return err
	}
	if livePID(poolDir) > 0 {
		return errAlreadyMounted(poolDir)
	}
	if !poolExists(poolDir) {
		if !*mkfs {
			return fmt.Errorf("%s holds no pool; create one with 'vosfs mkfs %s', or mount with --mkfs", poolDir, poolDir)
		}
		if err := createPool(poolDir, pool.Config{Fill: pool.FillZero}); err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, poolSummary(poolDir))
	}
	if *foreground {
		return runDaemon(cfg, nil)
	}
	return startBackground(cfg, optList.String())
}

// isHelperName reports whether the program was run as the mount helper.
func isHelperName(argv0 string) bool {
	base := filepath.Base(argv0)
	return base == "mount.fuse.vosfs" || base == "mount.vosfs"
}

// helperArgs turns the arguments mount(8) gives a helper (SOURCE
// MOUNTPOINT [-o OPTIONS] [-n] [-s] [-v]) into those of "vosfs mount".
func helperArgs(args []string) ([]string, error) {
	var pos, opts []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-o":
			if i+1 >= len(args) {
				return nil, usagef("mount", "-o needs a list of options")
			}
			i++
			opts = append(opts, args[i])
		case strings.HasPrefix(a, "-o"):
			opts = append(opts, a[2:])
		case a == "-n" || a == "-s" || a == "-v":
			// No mtab, sloppy, verbose: nothing to do.
		case a == "--":
			pos = append(pos, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "-") && a != "-":
			return nil, usagef("mount", "unknown mount helper flag %q", a)
		default:
			pos = append(pos, a)
		}
	}
	if len(pos) != 2 {
		return nil, usagef("mount", "the mount helper wants POOLDIR MOUNTPOINT [-o OPTIONS], got %d argument(s)", len(pos))
	}
	var out []string
	if len(opts) > 0 {
		out = append(out, "-o", strings.Join(opts, ","))
	}
	return append(out, "--", pos[0], pos[1]), nil
}

// checkMountpoint explains what is wrong with a mount point that cannot be
// mounted on.
func checkMountpoint(mp string) error {
	fi, err := os.Stat(mp)
	switch {
	case errors.Is(err, iofs.ErrNotExist):
		return fmt.Errorf("mount point %s does not exist", mp)
	case errors.Is(err, syscall.ENOTCONN) || errors.Is(err, syscall.ECONNABORTED):
		return fmt.Errorf("mount point %s is a dead FUSE mount (its daemon died); run 'umount %s' first", mp, mp)
	case err != nil:
		return fmt.Errorf("mount point %s: %w", mp, err)
	case !fi.IsDir():
		return fmt.Errorf("mount point %s is not a directory", mp)
	}
	return nil
}

// logName is the daemon's log in the pool directory.
const logName = "vosfs.log"

// startBackground starts the daemon detached from this process and waits
// for it to report that the mount is live or that it failed.
func startBackground(cfg daemonConfig, optList string) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find this program to start the daemon: %w", err)
	}
	logPath := filepath.Join(cfg.pool, logName)
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	var logStart int64
	if fi, err := logf.Stat(); err == nil {
		logStart = fi.Size()
	}
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer devNull.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()

	args := []string{"mount", "--foreground", "--notify-fd=3"}
	if optList != "" {
		args = append(args, "-o", optList)
	}
	args = append(args, "--", cfg.pool, cfg.mountpoint)
	cmd := exec.Command(exe, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devNull, logf, logf
	cmd.ExtraFiles = []*os.File{w} // descriptor 3 in the daemon
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return fmt.Errorf("start daemon: %w", err)
	}

	pr := newProgress(os.Stderr)
	defer pr.done()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		kind, msg, _ := strings.Cut(sc.Text(), " ")
		switch kind {
		case "ready":
			return cmd.Process.Release()
		case "error":
			cmd.Wait()
			if m, err := strconv.Unquote(msg); err == nil {
				msg = m
			}
			return errors.New(msg)
		case "progress":
			pr.show(msg, false)
		}
	}
	// The daemon ended without a word: show what it logged.
	werr := cmd.Wait()
	status := "exited without reporting"
	if werr != nil {
		status = "failed without reporting (" + werr.Error() + ")"
	}
	return fmt.Errorf("the mount daemon %s; the end of %s:\n%s", status, logPath, logTail(logPath, logStart, 20))
}

// logTail returns the last n lines written to the log from offset on.
func logTail(path string, offset int64, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return "  (" + err.Error() + ")"
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return "  (" + err.Error() + ")"
	}
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return "  (" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 1 && lines[0] == "" {
		return "  (nothing)"
	}
	return "  " + strings.Join(lines, "\n  ")
}
