package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"
)

// The targets, in the order they run within a job.
const (
	targetVosfsSync  = "vosfs-sync"
	targetVosfsAsync = "vosfs-async"
	targetLoopback   = "loopback"
	targetLoopbackFd = "loopback-nopass"
	targetBare       = "bare"
)

var allTargets = []string{targetVosfsSync, targetVosfsAsync, targetLoopback, targetLoopbackFd, targetBare}

// target is one place fio runs: a vosfs mount, a loopback mount or a bare
// directory, all under the work directory, on the same disk.
type target struct {
	name string
	base string // WORKDIR/name: everything of this target
	dir  string // where fio runs

	// vosfs
	vosfs    string // the binary
	commit   string // sync or async
	poolSize string
	pool     string
	daemon   int // the daemon's pid, once mounted

	// loopback
	loopback    string // the binary
	passthrough bool   // let the kernel read and write the backing files
	orig        string
	proc        *exec.Cmd
	procDone    chan struct{}

	mnt string // the mount point; "" for the bare directory

	skipped string // why the target is left out, if it is
	made    map[string]bool
}

func newTarget(name, work string, cfg *config) *target {
	t := &target{name: name, base: filepath.Join(work, name), made: map[string]bool{}}
	switch name {
	case targetVosfsSync, targetVosfsAsync:
		t.vosfs, t.poolSize = cfg.vosfs, cfg.poolSize
		t.commit = strings.TrimPrefix(name, "vosfs-")
		t.pool = filepath.Join(t.base, "pool")
		t.mnt = filepath.Join(t.base, "mnt")
		t.dir = t.mnt
	case targetLoopback, targetLoopbackFd:
		t.loopback, t.passthrough = cfg.loopback, name == targetLoopback
		t.orig = filepath.Join(t.base, "orig")
		t.mnt = filepath.Join(t.base, "mnt")
		t.dir = t.mnt
	case targetBare:
		t.dir = filepath.Join(t.base, "dir")
	}
	return t
}

// describe says what the target is, for the report.
func (t *target) describe() string {
	switch {
	case t.vosfs != "":
		size := t.poolSize
		if n, err := humanize.ParseBytes(size); err == nil {
			size = humanize.IBytes(n)
		}
		return fmt.Sprintf("vosfs, -o commit=%s, pool %s (data %s) mounted on %s", t.commit, t.pool, size, t.mnt)
	case t.loopback != "" && t.passthrough:
		return fmt.Sprintf("loopback (go-fuse) of %s mounted on %s; FUSE passthrough where the kernel has it", t.orig, t.mnt)
	case t.loopback != "":
		return fmt.Sprintf("loopback (go-fuse) of %s mounted on %s, declining FUSE passthrough: every read and write is a request to the daemon", t.orig, t.mnt)
	}
	return "the directory " + t.dir + " itself"
}

// setup creates the target's directories and mounts it.
func (t *target) setup(ctx context.Context) error {
	for _, d := range []string{t.pool, t.orig, t.mnt, t.dir} {
		if d == "" {
			continue
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	switch {
	case t.vosfs != "":
		return t.mountVosfs(ctx)
	case t.loopback != "":
		return t.mountLoopback(ctx)
	}
	return nil
}

func (t *target) mountVosfs(ctx context.Context) error {
	if _, err := exec.LookPath(t.vosfs); err != nil {
		return fmt.Errorf("no vosfs binary: %w", err)
	}
	if _, err := command(ctx, 2*time.Minute, t.vosfs, "mkfs", "--fill", "zero", "--size", t.poolSize, t.pool); err != nil {
		return fmt.Errorf("vosfs mkfs: %w", err)
	}
	_, err := command(ctx, 5*time.Minute, t.vosfs, "mount", "--mkfs", "-o", "commit="+t.commit, t.pool, t.mnt)
	if err != nil {
		return fmt.Errorf("vosfs mount: %w", err)
	}
	if err := waitMounted(t.mnt, 10*time.Second, nil); err != nil {
		return err
	}
	if b, err := os.ReadFile(filepath.Join(t.pool, "vosfs.pid")); err == nil {
		t.daemon, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	return nil
}

func (t *target) mountLoopback(ctx context.Context) error {
	if _, err := exec.LookPath(t.loopback); err != nil {
		return fmt.Errorf("no loopback binary: %w", err)
	}
	logPath := filepath.Join(t.base, "loopback.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(t.loopback, "-passthrough="+strconv.FormatBool(t.passthrough), t.orig, t.mnt)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: a terminal's ^C must not reach it, the bench
	// unmounts it once fio has stopped.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start loopback: %w", err)
	}
	t.proc, t.procDone = cmd, make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(t.procDone)
	}()
	if err := waitMounted(t.mnt, 15*time.Second, t.procDone); err != nil {
		t.stopLoopback()
		return fmt.Errorf("%w; %s: %s", err, logPath, tail(logPath, 5))
	}
	return nil
}

// check reports why fio must not run on the target now: a FUSE target
// whose mount is gone or whose daemon died.
func (t *target) check() error {
	if t.mnt == "" {
		return nil
	}
	if !isMounted(t.mnt) {
		return fmt.Errorf("%s is no longer mounted", t.mnt)
	}
	if _, err := os.Stat(t.mnt); err != nil {
		return fmt.Errorf("mount point: %w", err)
	}
	return nil
}

// teardown unmounts the target, if mounted, and waits for its daemon to
// end. It returns a note on anything that did not go cleanly.
func (t *target) teardown() error {
	var errs []error
	if t.mnt != "" && isMounted(t.mnt) {
		if err := unmount(t.mnt); err != nil {
			errs = append(errs, err)
		}
	}
	if t.proc != nil {
		if err := t.stopLoopback(); err != nil {
			errs = append(errs, err)
		}
	}
	if t.daemon > 0 {
		if !waitExit(t.daemon, 5*time.Minute, fmt.Sprintf("the vosfs daemon of %s (pid %d) to finish", t.name, t.daemon)) {
			errs = append(errs, fmt.Errorf("the vosfs daemon (pid %d) is still running after the unmount", t.daemon))
		}
		t.daemon = 0
	}
	return errors.Join(errs...)
}

// stopLoopback waits for the loopback process to end after its unmount,
// and stops it if it does not.
func (t *target) stopLoopback() error {
	defer func() { t.proc = nil }()
	select {
	case <-t.procDone:
		return nil
	case <-time.After(10 * time.Second):
	}
	_ = t.proc.Process.Signal(syscall.SIGTERM)
	select {
	case <-t.procDone:
		return nil
	case <-time.After(10 * time.Second):
	}
	_ = t.proc.Process.Kill()
	<-t.procDone
	return fmt.Errorf("loopback (pid %d) had to be killed", t.proc.Process.Pid)
}

// clean removes files matching glob from the target directory.
func (t *target) clean(glob string) error {
	names, err := filepath.Glob(filepath.Join(t.dir, glob))
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := os.Remove(n); err != nil {
			return err
		}
	}
	return nil
}

// command runs a program and returns its output; its error carries the
// end of what the program printed.
func command(ctx context.Context, timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := lastLines(string(out), 8)
		if msg == "" {
			return "", err
		}
		return string(out), fmt.Errorf("%v: %s", err, msg)
	}
	return string(out), nil
}

// unmount unmounts mnt with umount, or fusermount3 -u, retrying while it
// is busy; as a last resort it detaches it lazily, which takes it out of
// the namespace at once and lets it go when its last user does.
func unmount(mnt string) error {
	deadline := time.Now().Add(20 * time.Second)
	var last string
	for isMounted(mnt) {
		if time.Now().After(deadline) {
			out, err := exec.Command("umount", "-l", mnt).CombinedOutput()
			if err != nil {
				return fmt.Errorf("cannot unmount %s (%s), not even lazily: %s", mnt, last, strings.TrimSpace(string(out)))
			}
			return fmt.Errorf("%s stayed busy (%s) and was detached lazily", mnt, last)
		}
		out, err := exec.Command("umount", mnt).CombinedOutput()
		if err == nil {
			continue
		}
		last = strings.TrimSpace(string(out))
		if out, err := exec.Command("fusermount3", "-u", mnt).CombinedOutput(); err == nil {
			continue
		} else {
			last += "; " + strings.TrimSpace(string(out))
		}
		time.Sleep(500 * time.Millisecond)
	}
	return nil
}

// waitMounted waits until mnt is a mount point, or the process behind it
// ends (done is closed).
func waitMounted(mnt string, timeout time.Duration, done <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	for !isMounted(mnt) {
		select {
		case <-done:
			return fmt.Errorf("exited before %s was mounted", mnt)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s was not mounted after %v", mnt, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// waitExit waits for a process that is not our child to end; after a few
// seconds it says what it waits for.
func waitExit(pid int, timeout time.Duration, what string) bool {
	start := time.Now()
	told := false
	for processAlive(pid) {
		if time.Since(start) > timeout {
			return false
		}
		if !told && time.Since(start) > 3*time.Second {
			fmt.Fprintf(os.Stderr, "waiting for %s\n", what)
			told = true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return true
}

// processAlive reports whether pid is a process that has not yet exited
// (a zombie has).
func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}

// mount is a line of /proc/self/mountinfo.
type mount struct {
	point  string
	fstype string
	source string
}

func mounts() ([]mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseMountinfo(f)
}

// parseMountinfo reads the format of proc(5)'s mountinfo: the fifth
// field is the mount point, and after the "-" separator come the
// filesystem type and the source.
func parseMountinfo(r io.Reader) ([]mount, error) {
	var ms []mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		m := mount{point: unescapeMountinfo(f[4])}
		for i := 5; i < len(f); i++ {
			if f[i] == "-" {
				if i+1 < len(f) {
					m.fstype = f[i+1]
				}
				if i+2 < len(f) {
					m.source = unescapeMountinfo(f[i+2])
				}
				break
			}
		}
		ms = append(ms, m)
	}
	return ms, sc.Err()
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of
// mountinfo fields.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// isMounted reports whether path is a mount point.
func isMounted(path string) bool {
	ms, err := mounts()
	if err != nil {
		return false
	}
	for _, m := range ms {
		if m.point == path {
			return true
		}
	}
	return false
}

// mountsUnder returns the mount points at or below dir.
func mountsUnder(dir string) []string {
	ms, _ := mounts()
	var under []string
	for _, m := range ms {
		if m.point == dir || strings.HasPrefix(m.point, dir+"/") {
			under = append(under, m.point)
		}
	}
	return under
}

// filesystemOf describes the filesystem holding path: type and source.
func filesystemOf(path string) string {
	ms, err := mounts()
	if err != nil {
		return ""
	}
	best := -1
	for i, m := range ms {
		if m.point == path || m.point == "/" || strings.HasPrefix(path, m.point+"/") {
			if best < 0 || len(m.point) >= len(ms[best].point) {
				best = i
			}
		}
	}
	if best < 0 {
		return ""
	}
	return ms[best].fstype + " on " + ms[best].source
}

// tail returns the last n lines of a file, joined with " | ".
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return "(empty)"
	}
	return lastLines(string(b), n)
}
