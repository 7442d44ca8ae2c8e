package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// vosfsCmd runs the vosfs command on one pool and mount point.
type vosfsCmd struct {
	bin  string // the vosfs executable
	pool string
	mnt  string
}

// run runs vosfs with args and returns its combined output and exit
// status (-1 if it did not run or timed out).
func (v *vosfsCmd) run(timeout time.Duration, args ...string) (string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, v.bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case ctx.Err() != nil:
		return out.String() + "\n(timed out after " + timeout.String() + ")", -1
	case errors.As(err, &ee):
		return out.String(), ee.ExitCode()
	}
	return out.String() + "\n" + err.Error(), -1
}

func (v *vosfsCmd) mkfs() error {
	args := []string{"mkfs", "--size", "2GiB", "--meta-size", "128MiB", "--wal-size", "32MiB"}
	if _, err := os.Stat(filepath.Join(v.pool, "wal.blob")); err == nil {
		args = append(args, "--force")
	}
	out, code := v.run(time.Minute, append(args, v.pool)...)
	if code != 0 {
		return fmt.Errorf("vosfs mkfs: exit %d: %s", code, strings.TrimSpace(out))
	}
	return nil
}

// mount mounts the pool in the background and returns the daemon's pid.
func (v *vosfsCmd) mount(commit string, writeback bool, powerCut *int64) (int, error) {
	opts := "commit=" + commit
	if writeback {
		opts += ",writeback_cache"
	}
	if powerCut != nil {
		opts += ",powercut=" + strconv.FormatInt(*powerCut, 10)
	}
	out, code := v.run(2*time.Minute, "mount", "-o", opts, v.pool, v.mnt)
	if code != 0 {
		return 0, fmt.Errorf("vosfs mount -o %s: exit %d: %s", opts, code, strings.TrimSpace(out))
	}
	pid := v.pid()
	if pid == 0 {
		return 0, fmt.Errorf("vosfs mount: no live daemon named by %s", filepath.Join(v.pool, "vosfs.pid"))
	}
	return pid, nil
}

// pid returns the pid in the pool's pid file if that process is alive.
func (v *vosfsCmd) pid() int {
	b, err := os.ReadFile(filepath.Join(v.pool, "vosfs.pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || !alive(pid) {
		return 0
	}
	return pid
}

// fsck runs vosfs fsck and returns its output and exit status.
func (v *vosfsCmd) fsck() (string, int) {
	return v.run(5*time.Minute, "fsck", v.pool)
}

// alive reports whether pid is a process that has not exited. A zombie
// has, once it is the last of its threads: the descriptors, the pool's
// lock and /dev/fuse among them, close with the last thread. After a
// SIGKILL the leader can be a zombie while other threads still finish a
// system call (an fdatasync on a loaded disk), holding the lock.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		if s[i+2] != 'Z' && s[i+2] != 'X' {
			return true
		}
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		return err == nil && len(tasks) > 1
	}
	return true
}

// waitExit waits until pid has exited.
func waitExit(pid int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for alive(pid) {
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d still alive after %v", pid, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// kill sends SIGKILL to the daemon.
func kill(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }

// detach lazily unmounts the mount point of a dead daemon.
func (v *vosfsCmd) detach() error {
	var msgs []string
	for _, argv := range [][]string{{"umount", "-l", v.mnt}, {"fusermount3", "-uz", v.mnt}, {"fusermount", "-uz", v.mnt}} {
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		if err == nil {
			return nil
		}
		msgs = append(msgs, fmt.Sprintf("%s: %v: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out))))
	}
	if !mounted(v.mnt) {
		return nil
	}
	return errors.New(strings.Join(msgs, "; "))
}

// unmount unmounts cleanly and waits for the daemon to write back and
// exit.
func (v *vosfsCmd) unmount(pid int) error {
	var err error
	for try := 0; try < 20; try++ {
		var out []byte
		out, err = exec.Command("umount", v.mnt).CombinedOutput()
		if err == nil {
			break
		}
		err = fmt.Errorf("umount %s: %v: %s", v.mnt, err, strings.TrimSpace(string(out)))
		time.Sleep(250 * time.Millisecond) // busy: a release still in flight
	}
	if err != nil {
		return err
	}
	if pid > 0 {
		return waitExit(pid, 2*time.Minute)
	}
	return nil
}

// mounted reports whether dir is a mount point (of a live or dead FUSE
// mount alike).
func mounted(dir string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && unescapeMount(f[4]) == dir {
			return true
		}
	}
	return false
}

func unescapeMount(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

// fuseConn returns the fusectl connection number of the mount at mnt (the
// minor number of its device), or -1.
func fuseConn(mnt string) int {
	var st unix.Stat_t
	if err := unix.Stat(mnt, &st); err != nil {
		return -1
	}
	return int(unix.Minor(st.Dev))
}

// abortFuse aborts a FUSE connection through fusectl: the last resort when
// threads hang on a mount whose daemon is gone.
func abortFuse(conn int) {
	if conn >= 0 {
		os.WriteFile(fmt.Sprintf("/sys/fs/fuse/connections/%d/abort", conn), []byte("1"), 0)
	}
}

// buildVosfs builds the vosfs command of this module into dir.
func buildVosfs(dir string) (string, error) {
	bin := filepath.Join(dir, "vosfs")
	out, err := exec.Command("go", "build", "-o", bin, "vosfs/cmd/vosfs").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build vosfs/cmd/vosfs: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return bin, nil
}
