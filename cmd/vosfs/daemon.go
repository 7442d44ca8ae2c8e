package main

import (
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"

	"vosfs/blob"
	"vosfs/fs"
	"vosfs/pool"
)

// pidName is the file in the pool directory naming the daemon that has the
// pool mounted.
const pidName = "vosfs.pid"

// daemonConfig is what the daemon serves.
type daemonConfig struct {
	pool       string // absolute pool directory
	mountpoint string // absolute mount point
	opts       fs.Options
	test       testOptions
}

// notifier reports to the background mount that started the daemon, through
// an inherited pipe, one line per message: "progress TEXT", then "ready" or
// "error QUOTED-MESSAGE". A nil notifier reports nothing.
type notifier struct {
	mu sync.Mutex
	f  *os.File
}

func openNotifier(fd int) (*notifier, error) {
	f := os.NewFile(uintptr(fd), "notify")
	if f == nil {
		return nil, fmt.Errorf("--notify-fd %d is not a descriptor", fd)
	}
	if _, err := f.Stat(); err != nil {
		return nil, fmt.Errorf("--notify-fd %d: %w", fd, err)
	}
	return &notifier{f: f}, nil
}

func (n *notifier) send(line string, last bool) {
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.f == nil {
		return
	}
	// A write error means the mount command is gone; nobody to tell.
	fmt.Fprintln(n.f, line)
	if last {
		n.f.Close()
		n.f = nil
	}
}

func (n *notifier) progress(msg string) { n.send("progress "+msg, false) }
func (n *notifier) ready()              { n.send("ready", true) }
func (n *notifier) fail(err error)      { n.send("error "+strconv.Quote(err.Error()), true) }

// runDaemon mounts the pool and serves it until it is unmounted, then
// writes everything back and closes the pool clean.
func runDaemon(cfg daemonConfig, n *notifier) (err error) {
	logger := log.New(os.Stderr, fmt.Sprintf("vosfs[%d]: ", os.Getpid()), log.LstdFlags|log.Lmsgprefix)
	cfg.opts.Logger = logger
	defer func() {
		if err != nil {
			n.fail(err)
		}
	}()
	dir, mp := cfg.pool, cfg.mountpoint
	if err := checkMountpoint(mp); err != nil {
		return err
	}
	if err := checkNesting(dir, mp); err != nil {
		return err
	}
	if livePID(dir) > 0 {
		return errAlreadyMounted(dir)
	}

	var fsys blob.FS = blob.NewOSFS(true)
	if seed := cfg.test.powerCut; seed != nil {
		pc := blob.NewPowerCutFS(*seed)
		defer pc.Close()
		fsys = pc
		if f := cfg.test.fault; f != nil {
			pc.InjectFile(filepath.Join(dir, f.blob), f.op, f.n, syscall.EIO)
			logger.Printf("WARNING: FAULT INJECTION TEST MODE: %v #%d of %s fails with EIO", f.op, f.n, f.blob)
		}
		for range 3 {
			logger.Printf("WARNING: POWER-CUT TEST MODE (powercut=%d): unsynced writes live only in this process and are lost if it dies; for crash tests only, never for data", *seed)
		}
	}
	logger.Printf("opening pool %s", dir)
	p, err := pool.Open(fsys, dir, pool.Options{Progress: recoveryProgress(logger, n), Logf: logger.Printf})
	if err != nil {
		if errors.Is(err, blob.ErrLocked) {
			return errAlreadyMounted(dir)
		}
		return err
	}
	logger.Print(describeRecovery(dir, p.Recovery()))

	f, err := fs.New(p, cfg.opts)
	if err != nil {
		p.Close()
		return fmt.Errorf("pool %s: %w", dir, err)
	}
	// Catch SIGTERM, SIGINT and SIGHUP (the terminal of a foreground
	// daemon closed) before the mount is live: one that arrives in between
	// waits in the channel and unmounts right after.
	sigs := make(chan os.Signal, 3)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	srv, err := f.Mount(mp)
	if err != nil {
		signal.Stop(sigs)
		f.Close()
		p.Close()
		return err
	}
	if err := writePID(dir); err != nil {
		logger.Printf("warning: %v", err)
	}
	rec := mountRecord{Pool: dir, Mountpoint: mp, FsName: cfg.opts.FsName, PID: os.Getpid()}
	if err := writeMountRecord(rec); err != nil {
		logger.Printf("warning: mount not recorded in %s, 'vosfs stat' will not find it by its mount point: %v", runDir(), err)
	}
	ctl, err := listenControl(dir, f, logger)
	if err != nil {
		logger.Printf("warning: no control socket, 'vosfs stat' will not reach this mount: %v", err)
	}

	go func() {
		for sig := range sigs {
			logger.Printf("%v: unmounting %s", sig, mp)
			unmountRetrying(srv.Unmount, mp, logger)
		}
	}()

	mode := ""
	if seed := cfg.test.powerCut; seed != nil {
		mode = fmt.Sprintf(", POWER-CUT TEST MODE powercut=%d", *seed)
	}
	logger.Printf("mounted %s on %s (commit=%s%s)", dir, mp, cfg.opts.Commit, mode)
	n.ready()
	srv.Wait()
	signal.Stop(sigs)
	close(sigs)
	if p.Failed() != nil {
		logger.Printf("unmounted %s; the pool is stopped: nothing is written back", mp)
	} else {
		logger.Printf("unmounted %s; writing back", mp)
	}
	removeMountRecord(rec.PID)

	if ctl != nil {
		ctl.Close()
	}
	// The pid file goes last, once the pool's lock is released: whoever
	// waits for it to go (a script about to run fsck) finds the pool free.
	defer removePID(dir)
	if err := f.Close(); err != nil {
		logger.Printf("closing the filesystem: %v", err)
	}
	start := time.Now()
	if err := p.Close(); errors.Is(err, pool.ErrFailed) {
		return fmt.Errorf("pool %s stopped while mounted and was not closed cleanly: %w; nothing was written after the failure and every acknowledged operation is durable: fix the cause, then mount it again (recovery replays the log)", dir, err)
	} else if err != nil {
		return fmt.Errorf("pool %s was not closed cleanly (it will be recovered at the next mount): %w", dir, err)
	}
	logger.Printf("pool %s closed clean in %s", dir, fmtDuration(time.Since(start)))
	return nil
}

// unmountRetrying unmounts, trying again a few times while the mount is
// busy.
func unmountRetrying(unmount func() error, mp string, logger *log.Logger) {
	const tries = 3
	for try := 1; ; try++ {
		err := unmount()
		if err == nil {
			return
		}
		logger.Printf("unmount %s (try %d of %d): %v", mp, try, tries, err)
		if try == tries {
			logger.Printf("%s stays mounted: stop what uses it, then signal again or umount it", mp)
			return
		}
		time.Sleep(time.Second)
	}
}

// recoveryProgress logs, every few seconds of a slow open, how far loading
// the metadata and replaying the log have got.
func recoveryProgress(logger *log.Logger, n *notifier) func(stage string, done, total uint64) {
	var mu sync.Mutex
	start := time.Now()
	var last time.Time
	return func(stage string, done, total uint64) {
		mu.Lock()
		defer mu.Unlock()
		now := time.Now()
		if now.Sub(start) < time.Second || now.Sub(last) < 2*time.Second {
			return
		}
		last = now
		what := "loading metadata"
		if stage == "replay" {
			what = "replaying log"
		}
		msg := what + ": " + bytesOf(done, total)
		logger.Print(msg)
		n.progress(msg)
	}
}

// describeRecovery says how the pool was found at open.
func describeRecovery(dir string, r pool.Recovery) string {
	d := fmtDuration(r.Duration)
	if r.Clean {
		return fmt.Sprintf("pool %s opened in %s (closed cleanly)", dir, d)
	}
	return fmt.Sprintf("pool %s was not closed cleanly; recovered in %s, replaying %s (%s)",
		dir, d, count(r.Records, "log record", "log records"), humanize.IBytes(r.Bytes))
}

func writePID(dir string) error {
	path := filepath.Join(dir, pidName)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("pid file: %w", err)
	}
	return nil
}

// removePID removes the pid file if it still names this process.
func removePID(dir string) {
	path := filepath.Join(dir, pidName)
	if readPID(path) == os.Getpid() {
		os.Remove(path)
	}
}

func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// livePID returns the pid of the vosfs daemon that the pid file of the pool
// in dir names, or 0 if there is no such live process (no file, a stale
// file, or this process).
func livePID(dir string) int {
	pid := readPID(filepath.Join(dir, pidName))
	if pid == 0 || pid == os.Getpid() || !processAlive(pid) || !isVosfsProcess(pid) {
		return 0
	}
	return pid
}

// processAlive reports whether pid is a running (not zombie) process.
func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		err := syscall.Kill(pid, 0)
		return err == nil || errors.Is(err, syscall.EPERM)
	}
	// "pid (comm) S ...": the state follows the last parenthesis.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}

// isVosfsProcess reports whether pid runs this program (under any of its
// names).
func isVosfsProcess(pid int) bool {
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil {
		argv0, _, _ := strings.Cut(string(b), "\x00")
		if strings.Contains(filepath.Base(argv0), "vosfs") {
			return true
		}
	}
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil {
		return strings.Contains(filepath.Base(exe), "vosfs")
	}
	return false
}

// poolHolder describes what has the pool in dir open, as far as the pid
// file and the mount table tell: "pid N, on MOUNTPOINT", or "" if they do
// not.
func poolHolder(dir string) string {
	var parts []string
	if pid := livePID(dir); pid > 0 {
		parts = append(parts, "pid "+strconv.Itoa(pid))
	}
	if mp := mountpointOf(dir); mp != "" {
		parts = append(parts, "on "+mp)
	}
	return strings.Join(parts, ", ")
}

// errAlreadyMounted refuses to mount a pool that is open elsewhere.
func errAlreadyMounted(dir string) error {
	if h := poolHolder(dir); h != "" {
		return fmt.Errorf("pool %s is already mounted (%s)", dir, h)
	}
	return fmt.Errorf("pool %s is already mounted or in use by another process (its lock is held)", dir)
}

// closeWait bounds how long a command waits for the daemon of a pool that
// was just unmounted to write back and close it.
const closeWait = time.Minute

// waitClosing waits, at most timeout, for the daemon of the pool in dir to
// close the pool if it is closing it: its pid file names a live daemon but
// the pool is mounted nowhere (it was just unmounted, and the daemon is
// writing back). It says so on stderr. It returns at once if no daemon is
// closing the pool; whether the pool is free is for the caller to check.
func waitClosing(dir string, timeout time.Duration) error {
	pid := livePID(dir)
	if pid == 0 || mountpointOf(dir) != "" {
		return nil
	}
	fmt.Fprintf(os.Stderr, "vosfs: waiting for the daemon (pid %d) to close pool %s (it was unmounted and is writing back)\n", pid, dir)
	deadline := time.Now().Add(timeout)
	for {
		time.Sleep(20 * time.Millisecond)
		if livePID(dir) == 0 || mountpointOf(dir) != "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the daemon (pid %d) of pool %s is still closing it after %s; see %s",
				pid, dir, timeout, filepath.Join(dir, logName))
		}
	}
}

// poolLocked reports whether a process holds the lock of the pool in dir.
func poolLocked(dir string) bool {
	lock, err := blob.NewOSFS(false).Lock(filepath.Join(dir, pool.LockFile))
	if err != nil {
		return errors.Is(err, blob.ErrLocked)
	}
	lock.Close()
	return false
}
