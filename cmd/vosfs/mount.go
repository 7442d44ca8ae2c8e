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

	"github.com/spf13/cobra"

	"vosfs/pool"
)

func newMountCmd() *cobra.Command {
	var mf mountFlags
	c := &cobra.Command{
		Use:   "mount [flags] POOLDIR MOUNTPOINT",
		Short: "mount a pool",
		Long: `Mounts the pool in POOLDIR on MOUNTPOINT. By default the filesystem is
served by a daemon in the background, logging to POOLDIR/vosfs.log, and the
command returns once the mount is live (or failed), printing nothing on
success. Unmount with 'vosfs umount MOUNTPOINT' (which waits until the pool
is closed), 'umount MOUNTPOINT' or 'fusermount3 -u MOUNTPOINT', or send the
daemon SIGTERM, SIGINT or SIGHUP; the daemon then writes everything back
and marks the pool clean. A pool that was not unmounted cleanly is
recovered from its log when mounted. A pool whose daemon is still closing
it (just unmounted) is waited for.

With --mkfs, a POOLDIR that holds no pool gets one, made as 'vosfs mkfs'
makes it with the --size, --wal-size, --meta-size, --record-limit and
--fill flags given here (which need --mkfs), and a missing MOUNTPOINT is
created. A POOLDIR that holds a pool is mounted as it is.

MOUNTPOINT may be neither POOLDIR nor inside it, and POOLDIR may not be
inside MOUNTPOINT: the daemon keeps its pid file, socket and log in POOLDIR.

Options (-o, comma-separated; -o may be repeated), of vosfs, of FUSE, of
the kernel (VFS), of fstab; anything else is refused:
` + strings.TrimRight(optionsHelp(), "\n"),
		Args:              exactArgs("POOLDIR", "MOUNTPOINT"),
		ValidArgsFunction: completeDirs,
		RunE: func(c *cobra.Command, args []string) error {
			return runMount(c, &mf, args[0], args[1])
		},
	}
	fl := c.Flags()
	fl.SortFlags = false
	fl.VarP(&mf.opts, "options", "o", "mount options, comma-separated (see above); may be repeated")
	fl.BoolVar(&mf.foreground, "foreground", false, "serve in this process until unmounted, logging to stderr")
	fl.BoolVar(&mf.mkfs, "mkfs", false, "create the pool if POOLDIR holds none (with the mkfs flags), and MOUNTPOINT if missing")
	fl.BoolVar(&mf.fake, "fake", false, "check the arguments, options and pool, but do not mount (mount(8)'s -f)")
	mf.create.register(c)
	fl.IntVar(&mf.notifyFD, "notify-fd", -1, "internal: report readiness through this inherited descriptor")
	fl.MarkHidden("notify-fd")
	return c
}

// mountFlags are the flags of vosfs mount.
type mountFlags struct {
	opts       listFlag
	foreground bool
	mkfs       bool
	fake       bool
	notifyFD   int
	create     mkfsFlags // with --mkfs
}

// listFlag accumulates the values of a repeated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// Type is the name of the flag's value in the usage.
func (l *listFlag) Type() string { return "OPTIONS" }

func runMount(c *cobra.Command, mf *mountFlags, poolArg, mpArg string) error {
	name := commandName(c)
	if f := mf.create.changed(c); f != "" && !mf.mkfs {
		return usagef(name, "--%s shapes a new pool: it needs --mkfs", f)
	}
	optList := mf.opts.String()
	mc, err := parseMountConfig(optList)
	if err != nil {
		return usagef(name, "%v", err)
	}
	opts, test := mc.fs, mc.test
	if mc.remount {
		return remount(mpArg, opts)
	}
	poolDir, err := absDir(poolArg)
	if err != nil {
		return err
	}
	mp, err := absDir(mpArg)
	if err != nil {
		return err
	}
	if opts.FsName == "" {
		opts.FsName = poolDir
	}
	cfg := daemonConfig{pool: poolDir, mountpoint: mp, opts: opts, test: test}
	if err := checkNesting(poolDir, mp); err != nil {
		return err
	}

	if test.fault != nil && test.powerCut == nil {
		return fmt.Errorf("faultinject needs powercut=SEED: faults are injected by the power-cut simulator")
	}
	if test.powerCut != nil && mf.notifyFD < 0 {
		fmt.Fprintf(os.Stderr, "vosfs: WARNING: power-cut test mode (powercut=%d): unsynced writes are lost if the daemon dies; for crash tests only\n", *test.powerCut)
	}
	if mf.notifyFD >= 0 {
		// The daemon started by a background mount.
		n, err := openNotifier(mf.notifyFD)
		if err != nil {
			return err
		}
		return runDaemon(cfg, n)
	}
	var create pool.Config
	if mf.mkfs {
		if create, err = mf.create.config(c); err != nil {
			return err
		}
		if _, err := os.Stat(mp); errors.Is(err, iofs.ErrNotExist) && !mf.fake {
			if err := os.MkdirAll(mp, 0o755); err != nil {
				return err
			}
		}
	}
	if err := checkMountpoint(mp); err != nil {
		return err
	}
	if err := checkNesting(poolDir, mp); err != nil {
		return err
	}
	if err := waitClosing(poolDir, closeWait); err != nil {
		return err
	}
	if livePID(poolDir) > 0 {
		return errAlreadyMounted(poolDir)
	}
	if !poolExists(poolDir) || (mf.mkfs && halfMadePool(poolDir)) {
		switch {
		case !mf.mkfs:
			return fmt.Errorf("%s holds no pool; create one with 'vosfs mkfs %s', or mount with --mkfs", poolDir, poolDir)
		case mf.fake:
			return nil
		}
		if poolExists(poolDir) {
			fmt.Fprintf(os.Stderr, "vosfs: %s holds a half-made pool (its creation was interrupted before the log was written); replacing it\n", poolDir)
			if err := destroyPool(poolDir); err != nil {
				return err
			}
		}
		if err := createPool(poolDir, create); err != nil {
			return err
		}
		if isTerminal(os.Stderr) {
			fmt.Fprintln(os.Stderr, poolSummary(poolDir))
		}
	}
	if mf.fake {
		return nil
	}
	if mf.foreground {
		return runDaemon(cfg, nil)
	}
	return startBackground(cfg, optList)
}

// checkNesting refuses a mount point that is the pool directory or inside
// it, and a pool directory inside the mount point: the daemon writes its
// pid file, socket and log in the pool directory, which must not be the
// filesystem it serves. Both paths are compared as given and with their
// symbolic links resolved.
func checkNesting(poolDir, mp string) error {
	pairs := [][2]string{{poolDir, mp}}
	rp, perr := filepath.EvalSymlinks(poolDir)
	rm, merr := filepath.EvalSymlinks(mp)
	if perr == nil && merr == nil {
		pairs = append(pairs, [2]string{rp, rm})
	}
	within := func(inner, outer string) bool {
		rel, err := filepath.Rel(outer, inner)
		return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
	}
	for _, p := range pairs {
		switch {
		case p[0] == p[1]:
			return fmt.Errorf("cannot mount pool %s on its own directory: the daemon keeps its files there; mount it elsewhere", poolDir)
		case within(p[1], p[0]):
			return fmt.Errorf("cannot mount pool %s on %s, inside the pool directory: the daemon keeps its files there; mount it elsewhere", poolDir, mp)
		case within(p[0], p[1]):
			return fmt.Errorf("cannot mount pool %s on %s: the pool directory would be inside the filesystem it serves", poolDir, mp)
		}
	}
	return nil
}

// isHelperName reports whether the program was run as the mount helper.
func isHelperName(argv0 string) bool {
	base := filepath.Base(argv0)
	return base == "mount.fuse.vosfs" || base == "mount.vosfs"
}

// helperArgs turns the arguments mount(8) gives a helper (SOURCE
// MOUNTPOINT [-o OPTIONS] [-f] [-n] [-s] [-v] [-t fuse.vosfs]) into those
// of "vosfs mount".
// -f (fake) checks everything but does not mount.
func helperArgs(args []string) ([]string, error) {
	var pos, opts []string
	fake := false
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
		case a == "-t":
			// mount(8) names the type it was given to a helper of
			// filesystems with subtypes.
			if i+1 >= len(args) {
				return nil, usagef("mount", "-t needs a type")
			}
			i++
			if t := args[i]; t != vosfsType && t != "vosfs" {
				return nil, usagef("mount", "the mount helper mounts type %s, not %q", vosfsType, t)
			}
		case len(a) > 1 && a[0] == '-' && strings.Trim(a[1:], "fnsv") == "":
			// Fake, and no mtab, sloppy, verbose (nothing to do), alone
			// or together ("-nv").
			fake = fake || strings.Contains(a, "f")
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
	if fake {
		out = append(out, "--fake")
	}
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
