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

	"vosfs/fs"
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

Options (-o, comma-separated; -o may be repeated):
  commit=sync|async   reply once the change is durable (sync, the default),
                      or once applied (async; fsync waits for durability)
  threshold=SIZE      writes from this size go to the data blob directly,
                      smaller ones in the log record (512 B..1 MiB,
                      default 16 KiB)
  entry_timeout=SECS  kernel cache of names (default 1)
  attr_timeout=SECS   kernel cache of attributes (default 1)
  writeback_cache     let the kernel cache writes (nowriteback_cache: not)
  max_write=SIZE      largest write request (4 KiB..1 MiB, default 1 MiB)
  allow_other         let other users than the mounter in (the default
                      when root mounts; noallow_other: only the mounter)
  ro, rw              read-only or read-write (default rw)
  debug               log every FUSE request
Generic mount options (defaults, dev, nodev, suid, nosuid, exec, noexec,
auto, noauto, user, nouser, _netdev, nofail, x-*, ...) are accepted and
ignored.
`,
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
	opts.FsName = poolDir
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

// testOptions are the hidden mount options of crash tests, which change
// how the daemon opens the pool and are never meant for real use.
type testOptions struct {
	// powerCut, when set, opens the pool over blob.NewPowerCutFS with this
	// seed instead of the real files with O_DIRECT: writes not synced live
	// only in the daemon's memory, so killing the daemon loses them (or
	// tears them) as a power cut would.
	powerCut *int64
}

// parseMountOptions takes the test options (powercut=SEED) out of an -o
// list, then parses the rest with mountOptions.
func parseMountOptions(list string) (fs.Options, testOptions, error) {
	var test testOptions
	var rest []string
	for _, o := range strings.Split(list, ",") {
		k, v, _ := strings.Cut(o, "=")
		if k != "powercut" {
			rest = append(rest, o)
			continue
		}
		seed, err := strconv.ParseInt(v, 0, 64)
		if err != nil {
			return fs.Options{}, test, fmt.Errorf("mount option %q: powercut takes an integer seed", o)
		}
		test.powerCut = &seed
	}
	opts, err := mountOptions(strings.Join(rest, ","))
	return opts, test, err
}

// defaultMountOptions are the options of a mount with no -o. Mounted by
// root, the filesystem lets every user in (allow_other) and the kernel
// checks their permissions against the modes, as for a disk filesystem;
// without it, the kernel turns away every user but the mounter.
func defaultMountOptions() fs.Options {
	opts := fs.DefaultOptions()
	opts.AllowOther = os.Geteuid() == 0
	return opts
}

// mountOptions parses an -o list: vosfs's own options, and generic mount
// options, which are accepted and ignored. Anything else is an error.
func mountOptions(list string) (fs.Options, error) {
	opts := defaultMountOptions()
	rest, err := fs.ParseOptions(&opts, list)
	if err != nil {
		return opts, err
	}
	for _, o := range rest {
		if !genericOption(o) {
			return opts, fmt.Errorf("unknown mount option %q", o)
		}
	}
	return opts, nil
}

// genericOptions are the options of mount(8) and fstab that mean nothing
// to vosfs (the kernel and mount(8) handle them, or they only say when to
// mount).
var genericOptions = map[string]bool{
	"defaults": true, "rw": true, "dev": true, "nodev": true, "suid": true, "nosuid": true,
	"exec": true, "noexec": true, "auto": true, "noauto": true, "user": true, "nouser": true,
	"users": true, "owner": true, "group": true, "_netdev": true, "nofail": true,
	"atime": true, "noatime": true, "relatime": true, "norelatime": true, "strictatime": true,
	"diratime": true, "nodiratime": true, "lazytime": true, "nolazytime": true,
	"silent": true, "loud": true,
}

func genericOption(o string) bool {
	if genericOptions[o] {
		return true
	}
	for _, prefix := range []string{"x-", "comment=", "user="} {
		if strings.HasPrefix(o, prefix) && len(o) > len(prefix) {
			return true
		}
	}
	return false
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
