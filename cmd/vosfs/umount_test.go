package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"vosfs/internal/fusetest"
)

// mountSmall makes a small pool, mounts it in the background and returns
// the pool, the mount point and the daemon's pid.
func mountSmall(t *testing.T) (dir, mp string, pid int) {
	t.Helper()
	dir = mkfsSmall(t)
	mp = filepath.Join(t.TempDir(), "mnt")
	require.NoError(t, os.Mkdir(mp, 0o755))
	cleanupMount(t, dir, mp)
	r := vosfs(t, "mount", dir, mp)
	require.Equal(t, 0, r.code, "%v\nlog:\n%s", r, logTail(filepath.Join(dir, logName), 0, 30))
	assert.Empty(t, r.stdout+r.stderr, "mount printed on success")
	pid = daemonPID(t, dir)
	// Continue a stopped daemon when the test ends, so that it can be
	// unmounted and killed.
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) })
	return dir, mp, pid
}

// lockedBuffer is a buffer a running command writes while the test reads
// it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer // guarded by mu
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// started is a command running in the background and what it prints.
type started struct {
	cmd            *exec.Cmd
	stdout, stderr lockedBuffer
	done           chan error
}

func start(t *testing.T, args ...string) *started {
	t.Helper()
	s := &started{cmd: exec.Command(vosfsBin, args...), done: make(chan error, 1)}
	s.cmd.Stdout, s.cmd.Stderr = &s.stdout, &s.stderr
	require.NoError(t, s.cmd.Start())
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() { s.cmd.Process.Kill() })
	return s
}

// wait returns the exit status of s, failing the test if it takes more
// than d.
func (s *started) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case err := <-s.done:
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		require.NoError(t, err)
		return 0
	case <-time.After(d):
		t.Fatalf("vosfs %q still running after %s\nstdout:\n%s\nstderr:\n%s", s.cmd.Args[1:], d, s.stdout.String(), s.stderr.String())
		return -1
	}
}

// running reports whether s is still running after d.
func (s *started) running(d time.Duration) bool {
	select {
	case err := <-s.done:
		s.done <- err
		return false
	case <-time.After(d):
		return true
	}
}

// TestUmountThenFsckAtOnce: "umount MNT && vosfs fsck POOL" (and mount)
// works while the daemon is still closing the pool: the next command
// waits for it and says so. The daemon is held stopped after the unmount
// so that the command surely finds it closing.
func TestUmountThenFsckAtOnce(t *testing.T) {
	fusetest.Require(t)
	for _, next := range []string{"fsck", "mount", "stat", "mkfs --force"} {
		t.Run(next, func(t *testing.T) {
			dir, mp, pid := mountSmall(t)
			require.NoError(t, os.WriteFile(filepath.Join(mp, "f"), []byte("kept"), 0o644))
			require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
			require.NoError(t, unix.Unmount(mp, 0), "umount(2) of the stopped daemon's mount")
			_, ok := mounted(t, mp)
			require.False(t, ok)

			args := strings.Fields(next)
			if next == "mkfs --force" {
				args = append(args, smallPool...)
			}
			args = append(args, dir)
			if next == "mount" {
				args = append(args, mp)
			}
			s := start(t, args...)
			require.True(t, s.running(500*time.Millisecond), "vosfs %s did not wait for the closing daemon: %s", next, s.stderr.String())
			assert.Contains(t, s.stderr.String(), "vosfs: waiting for the daemon (pid ")
			assert.Contains(t, s.stderr.String(), "to close pool "+dir+" (it was unmounted and is writing back)")
			require.NoError(t, syscall.Kill(pid, syscall.SIGCONT))
			code := s.wait(t, time.Minute)
			require.Equal(t, 0, code, "vosfs %s\nstdout:\n%s\nstderr:\n%s", next, s.stdout.String(), s.stderr.String())
			waitExit(t, dir, pid)
			assert.Contains(t, readLog(t, dir), "closed clean")
			switch next {
			case "fsck":
				assert.Contains(t, s.stdout.String(), dir+": clean, ")
			case "mount":
				got, err := os.ReadFile(filepath.Join(mp, "f"))
				require.NoError(t, err)
				assert.Equal(t, "kept", string(got))
				pid2 := daemonPID(t, dir)
				assert.NotEqual(t, pid, pid2)
				r := vosfs(t, "umount", mp)
				require.Equal(t, 0, r.code, "%v", r)
			case "stat":
				assert.Contains(t, s.stdout.String(), "(not mounted)")
			case "mkfs --force":
				assert.Contains(t, s.stdout.String(), "created pool "+dir)
			}
			r := vosfs(t, "fsck", dir)
			assert.Equal(t, 0, r.code, "%v", r)
		})
	}
}

// TestUmountPlainThenFsck: the plain sequence, with nothing held up.
func TestUmountPlainThenFsck(t *testing.T) {
	fusetest.Require(t)
	for range 3 {
		dir, mp, pid := mountSmall(t)
		require.NoError(t, os.WriteFile(filepath.Join(mp, "f"), bytes.Repeat([]byte("x"), 1<<20), 0o644))
		out, err := exec.Command("umount", mp).CombinedOutput()
		require.NoError(t, err, "%s", out)
		r := vosfs(t, "fsck", dir)
		require.Equal(t, 0, r.code, "%v", r)
		assert.Contains(t, r.stdout, dir+": clean, ")
		waitExit(t, dir, pid)
	}
}

// TestUmountCommand: vosfs umount returns once the pool is closed; a busy
// mount is refused; --lazy detaches it and the pool closes with its last
// open file; a stopped daemon is waited for, within --timeout.
func TestUmountCommand(t *testing.T) {
	fusetest.Require(t)
	dir, mp, pid := mountSmall(t)
	require.NoError(t, os.WriteFile(filepath.Join(mp, "f"), []byte("data"), 0o644))
	r := vosfs(t, "umount", mp)
	require.Equal(t, 0, r.code, "%v", r)
	assert.Empty(t, r.stdout+r.stderr)
	// Closed when umount returns: no daemon, no pid file, the lock free.
	assert.False(t, processAlive(pid), "the daemon still runs after vosfs umount")
	assert.NoFileExists(t, filepath.Join(dir, pidName))
	assert.False(t, poolLocked(dir))
	assert.Contains(t, readLog(t, dir), "closed clean")
	_, ok := mounted(t, mp)
	assert.False(t, ok)

	r = vosfs(t, "umount", mp)
	assert.Equal(t, 1, r.code, "%v", r)
	assert.Contains(t, r.stderr, "is neither a pool directory nor a vosfs mount point")
	r = vosfs(t, "umount", dir)
	assert.Equal(t, 1, r.code, "%v", r)
	assert.Contains(t, r.stderr, "vosfs: pool "+dir+" is not mounted")

	// By pool directory, and busy.
	r = vosfs(t, "mount", dir, mp)
	require.Equal(t, 0, r.code, "%v", r)
	pid = daemonPID(t, dir)
	f, err := os.Open(filepath.Join(mp, "f"))
	require.NoError(t, err)
	r = vosfs(t, "umount", dir)
	assert.Equal(t, 1, r.code, "%v", r)
	assert.Contains(t, r.stderr, "vosfs: "+mp+" is busy: a process has a file or its working directory in it")
	_, ok = mounted(t, mp)
	assert.True(t, ok, "a refused umount unmounted")

	// --lazy detaches at once; the daemon serves the open file until it
	// is closed.
	r = vosfs(t, "umount", "--lazy", "--timeout", "300ms", dir)
	assert.Equal(t, 0, r.code, "%v", r)
	assert.Contains(t, r.stderr, "vosfs: detached; pool "+dir+" stays open until the last file open in it is closed")
	_, ok = mounted(t, mp)
	assert.False(t, ok)
	assert.True(t, processAlive(pid))
	got := make([]byte, 4)
	_, err = f.ReadAt(got, 0)
	require.NoError(t, err)
	assert.Equal(t, "data", string(got))
	require.NoError(t, f.Close())
	waitExit(t, dir, pid)
	assert.False(t, poolLocked(dir))
	assert.Contains(t, readLog(t, dir), "closed clean")

	// A daemon that cannot close within --timeout: an error saying so.
	r = vosfs(t, "mount", dir, mp)
	require.Equal(t, 0, r.code, "%v", r)
	pid = daemonPID(t, dir)
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	began := time.Now()
	r = vosfs(t, "umount", "--timeout", "1500ms", mp)
	assert.Equal(t, 1, r.code, "%v", r)
	assert.GreaterOrEqual(t, time.Since(began), 1500*time.Millisecond)
	assert.Contains(t, r.stderr, "vosfs: waiting for the daemon (pid ")
	assert.Contains(t, r.stderr, "vosfs: unmounted, but the daemon (pid ")
	assert.Contains(t, r.stderr, "has not closed pool "+dir+" after 1.5s; see "+filepath.Join(dir, logName))
	// Mounted nowhere, the daemon alive: umount by pool directory waits
	// for it to close the pool.
	s := start(t, "umount", dir)
	require.True(t, s.running(300*time.Millisecond), "umount did not wait: %s", s.stderr.String())
	require.NoError(t, syscall.Kill(pid, syscall.SIGCONT))
	require.Equal(t, 0, s.wait(t, time.Minute), s.stderr.String())
	assert.False(t, processAlive(pid))
	assert.False(t, poolLocked(dir))
	r = vosfs(t, "fsck", dir)
	assert.Equal(t, 0, r.code, "%v", r)
}

// TestSignalsUnmount: SIGHUP, SIGTERM and SIGINT each unmount, close the
// pool clean and are logged.
func TestSignalsUnmount(t *testing.T) {
	fusetest.Require(t)
	for _, tc := range []struct {
		sig  syscall.Signal
		name string
	}{{syscall.SIGHUP, "hangup"}, {syscall.SIGTERM, "terminated"}, {syscall.SIGINT, "interrupt"}} {
		t.Run(tc.name, func(t *testing.T) {
			dir, mp, pid := mountSmall(t)
			require.NoError(t, os.WriteFile(filepath.Join(mp, "f"), []byte("acked"), 0o644))
			require.NoError(t, syscall.Kill(pid, tc.sig))
			waitExit(t, dir, pid)
			_, ok := mounted(t, mp)
			assert.False(t, ok, "still mounted after %v", tc.sig)
			log := readLog(t, dir)
			assert.Contains(t, log, tc.name+": unmounting "+mp)
			assert.Contains(t, log, "closed clean")
			r := vosfs(t, "fsck", dir)
			require.Equal(t, 0, r.code, "%v", r)
			assert.NotContains(t, r.stdout, "not closed cleanly")
			r = vosfs(t, "mount", dir, mp)
			require.Equal(t, 0, r.code, "%v", r)
			got, err := os.ReadFile(filepath.Join(mp, "f"))
			require.NoError(t, err)
			assert.Equal(t, "acked", string(got))
			r = vosfs(t, "umount", mp)
			require.Equal(t, 0, r.code, "%v", r)
		})
	}
}
