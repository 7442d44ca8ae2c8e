package main

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"vosfs/internal/fusetest"
)

// mounted reports whether a vosfs filesystem is mounted at mp, and its
// source.
func mounted(t *testing.T, mp string) (string, bool) {
	t.Helper()
	mounts, err := readMountinfo()
	require.NoError(t, err)
	m, ok := mountAt(mounts, mp)
	if !ok || m.fstype != vosfsType {
		return "", false
	}
	return m.source, true
}

// unmount unmounts mp the way a user does, retrying while it is busy.
func unmount(t *testing.T, mp string) {
	t.Helper()
	var out []byte
	var err error
	for try := 0; try < 20; try++ {
		if path, lerr := exec.LookPath("fusermount3"); lerr == nil {
			out, err = exec.Command(path, "-u", mp).CombinedOutput()
		} else {
			out, err = exec.Command("umount", mp).CombinedOutput()
		}
		if err == nil {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("unmount %s: %v: %s", mp, err, out)
}

// cleanupMount makes sure nothing is left mounted at mp or running when
// the test ends, whatever happened.
func cleanupMount(t *testing.T, dir, mp string) {
	t.Cleanup(func() {
		if _, ok := mounted(t, mp); ok {
			exec.Command("umount", mp).Run()
			exec.Command("umount", "-l", mp).Run()
		}
		if pid := readPID(filepath.Join(dir, pidName)); pid > 0 && processAlive(pid) && isVosfsProcess(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}

// daemonPID returns the pid of the daemon serving the pool in dir.
func daemonPID(t *testing.T, dir string) int {
	t.Helper()
	pid := readPID(filepath.Join(dir, pidName))
	require.NotZero(t, pid, "no pid file in %s", dir)
	require.True(t, processAlive(pid), "daemon %d is not running", pid)
	return pid
}

// waitExit waits for the daemon pid to end, as it does once unmounted.
func waitExit(t *testing.T, dir string, pid int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for processAlive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("daemon %d still running a minute after unmount; log:\n%s", pid, logTail(filepath.Join(dir, logName), 0, 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readLog(t *testing.T, dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, logName))
	require.NoError(t, err)
	return string(b)
}

func TestMountLifecycle(t *testing.T) {
	fusetest.Require(t)
	dir := mkfsSmall(t)
	base := t.TempDir()
	mp, mp2 := filepath.Join(base, "mnt"), filepath.Join(base, "mnt2")
	require.NoError(t, os.Mkdir(mp, 0o755))
	require.NoError(t, os.Mkdir(mp2, 0o755))
	cleanupMount(t, dir, mp)
	cleanupMount(t, dir, mp2)

	r := vosfs(t, "mount", "-o", "commit=sync", dir, mp)
	require.Equal(t, 0, r.code, "%v\nlog:\n%s", r, logTail(filepath.Join(dir, logName), 0, 30))
	source, ok := mounted(t, mp)
	require.True(t, ok, "mount command returned but %s is not mounted", mp)
	assert.Equal(t, dir, source)
	pid := daemonPID(t, dir)
	assert.FileExists(t, filepath.Join(dir, sockName))

	// Write through the mount: a small file and one big enough for the
	// data blob.
	hello := []byte("hello, vosfs\n")
	require.NoError(t, os.WriteFile(filepath.Join(mp, "hello.txt"), hello, 0o644))
	big := make([]byte, 1<<20)
	rand.Read(big)
	require.NoError(t, os.Mkdir(filepath.Join(mp, "sub"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(mp, "sub", "big"), big, 0o644))
	got, err := os.ReadFile(filepath.Join(mp, "hello.txt"))
	require.NoError(t, err)
	assert.Equal(t, hello, got)

	// Mounted by root, the filesystem lets other users in (allow_other).
	// The test's directories are private, so the other user reaches the
	// mount through a descriptor of it.
	mpDir, err := os.Open(mp)
	require.NoError(t, err)
	cat := exec.Command("cat", "/dev/fd/3/hello.txt")
	cat.ExtraFiles = []*os.File{mpDir}
	cat.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cat.CombinedOutput()
	mpDir.Close()
	require.NoError(t, err, "another user reads through the mount: %s", out)
	assert.Equal(t, hello, out)

	// stat reaches the daemon through its socket, by mount point or pool.
	r = vosfs(t, "stat", mp)
	require.Equal(t, 0, r.code, "%v", r)
	assert.Contains(t, r.stdout, "pool         "+dir+" (mounted on "+mp+", pid ")
	assert.Regexp(t, `data +64 MiB: 1\.0 MiB used`, r.stdout)
	r = vosfs(t, "stat", "--json", dir)
	require.Equal(t, 0, r.code, "%v", r)
	var rep statReport
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), r.stdout)
	assert.True(t, rep.Mounted)
	assert.Equal(t, mp, rep.Mountpoint)
	assert.Equal(t, pid, rep.PID)
	assert.GreaterOrEqual(t, rep.Stats.Ops, uint64(3))
	assert.NotZero(t, rep.Stats.Pool.Commits)
	assert.Equal(t, uint64(1<<20), rep.Usage.DataUsed)

	// A second mount of the same pool is refused, and so is fsck.
	r = vosfs(t, "mount", dir, mp2)
	assert.Equal(t, 1, r.code, "%v", r)
	assert.Contains(t, r.stderr, "vosfs: pool "+dir+" is already mounted (pid ")
	_, ok = mounted(t, mp2)
	assert.False(t, ok)
	r = vosfs(t, "fsck", dir)
	assert.Equal(t, 1, r.code, "%v", r)
	assert.Contains(t, r.stderr, "unmount it first")

	// Snapshots through the CLI.
	r = vosfs(t, "snapshot", "create", mp, "before")
	require.Equal(t, 0, r.code, "%v", r)
	r = vosfs(t, "snapshot", "create", mp, "before")
	assert.Equal(t, 1, r.code, "%v", r)
	assert.Contains(t, r.stderr, "vosfs: snapshot before exists")
	require.NoError(t, os.WriteFile(filepath.Join(mp, "hello.txt"), []byte("changed\n"), 0o644))
	r = vosfs(t, "snapshot", "list", mp)
	require.Equal(t, 0, r.code, "%v", r)
	assert.Equal(t, "before\n", r.stdout)
	got, err = os.ReadFile(filepath.Join(mp, snapshotsDir, "before", "hello.txt"))
	require.NoError(t, err)
	assert.Equal(t, hello, got, "the snapshot changed with the file")
	r = vosfs(t, "snapshot", "delete", mp, "before")
	require.Equal(t, 0, r.code, "%v", r)
	r = vosfs(t, "snapshot", "list", mp)
	require.Equal(t, 0, r.code, "%v", r)
	assert.Empty(t, r.stdout)
	r = vosfs(t, "snapshot", "delete", mp, "before")
	assert.Equal(t, 1, r.code, "%v", r)
	assert.Contains(t, r.stderr, "no snapshot before")

	// Unmount as a user does: the daemon closes the pool clean and leaves.
	unmount(t, mp)
	waitExit(t, dir, pid)
	assert.NoFileExists(t, filepath.Join(dir, pidName))
	assert.NoFileExists(t, filepath.Join(dir, sockName))
	assert.Contains(t, readLog(t, dir), "closed clean")

	r = vosfs(t, "fsck", dir)
	require.Equal(t, 0, r.code, "%v", r)
	assert.Contains(t, r.stdout, dir+": clean, ")

	// Remount through the mount helper name, with fstab-style options.
	helper := filepath.Join(t.TempDir(), "mount.fuse.vosfs")
	require.NoError(t, os.Symlink(vosfsBin, helper))
	r = runProgram(t, helper, dir, mp, "-o", "defaults,_netdev,nofail,commit=async")
	require.Equal(t, 0, r.code, "%v\nlog:\n%s", r, logTail(filepath.Join(dir, logName), 0, 30))
	pid = daemonPID(t, dir)
	got, err = os.ReadFile(filepath.Join(mp, "hello.txt"))
	require.NoError(t, err)
	assert.Equal(t, "changed\n", string(got))
	got, err = os.ReadFile(filepath.Join(mp, "sub", "big"))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(big, got), "big file differs after remount")
	assert.Contains(t, readLog(t, dir), "commit=async")
	unmount(t, mp)
	waitExit(t, dir, pid)
	r = vosfs(t, "fsck", dir)
	assert.Equal(t, 0, r.code, "%v", r)
}

func TestMountMkfsAndSignal(t *testing.T) {
	fusetest.Require(t)
	base := t.TempDir()
	dir, mp := filepath.Join(base, "pool"), filepath.Join(base, "mnt")
	require.NoError(t, os.Mkdir(mp, 0o755))
	cleanupMount(t, dir, mp)

	// The one set-up command: creates the pool with the defaults, mounts.
	r := vosfs(t, "mount", "--mkfs", dir, mp)
	require.Equal(t, 0, r.code, "%v", r)
	assert.Empty(t, r.stdout, "mount printed on success")
	assert.Empty(t, r.stderr, "mount printed on success")
	_, ok := mounted(t, mp)
	require.True(t, ok)
	require.NoError(t, os.WriteFile(filepath.Join(mp, "f"), []byte("data"), 0o644))

	// SIGTERM unmounts and closes the pool clean.
	pid := daemonPID(t, dir)
	require.NoError(t, syscall.Kill(pid, syscall.SIGTERM))
	waitExit(t, dir, pid)
	_, ok = mounted(t, mp)
	assert.False(t, ok, "still mounted after SIGTERM")
	log := readLog(t, dir)
	assert.Contains(t, log, "terminated: unmounting "+mp)
	assert.Contains(t, log, "closed clean")

	// --mkfs leaves an existing pool alone; the helper form of vosfs
	// itself mounts it.
	r = vosfs(t, dir, mp, "-o", "rw,noatime")
	require.Equal(t, 0, r.code, "%v", r)
	got, err := os.ReadFile(filepath.Join(mp, "f"))
	require.NoError(t, err)
	assert.Equal(t, "data", string(got))
	pid = daemonPID(t, dir)
	unmount(t, mp)
	waitExit(t, dir, pid)
}

func TestMountForeground(t *testing.T) {
	fusetest.Require(t)
	dir := mkfsSmall(t)
	mp := filepath.Join(t.TempDir(), "mnt")
	require.NoError(t, os.Mkdir(mp, 0o755))
	cleanupMount(t, dir, mp)

	cmd := exec.Command(vosfsBin, "mount", "--foreground", dir, mp)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, ok := mounted(t, mp); ok {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("foreground mount ended: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("not mounted after 30 s\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.NoError(t, os.WriteFile(filepath.Join(mp, "f"), []byte("x"), 0o644))
	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	select {
	case err := <-done:
		require.NoError(t, err, stderr.String())
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		t.Fatalf("foreground daemon did not exit after SIGINT\n%s", stderr.String())
	}
	assert.Contains(t, stderr.String(), "closed clean")
	assert.Empty(t, readLogIfAny(dir), "the foreground daemon wrote the log file")
	r := vosfs(t, "fsck", dir)
	assert.Equal(t, 0, r.code, "%v", r)
}

func readLogIfAny(dir string) string {
	b, _ := os.ReadFile(filepath.Join(dir, logName))
	return string(b)
}

func TestMountAfterCrash(t *testing.T) {
	fusetest.Require(t)
	dir := mkfsSmall(t)
	mp := filepath.Join(t.TempDir(), "mnt")
	require.NoError(t, os.Mkdir(mp, 0o755))
	cleanupMount(t, dir, mp)

	r := vosfs(t, "mount", dir, mp)
	require.Equal(t, 0, r.code, "%v", r)
	require.NoError(t, os.WriteFile(filepath.Join(mp, "acked"), []byte("durable\n"), 0o644))
	pid := daemonPID(t, dir)
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	waitExit(t, dir, pid)

	// The dead mount is refused with advice, the stale pid file ignored.
	r = vosfs(t, "mount", dir, mp)
	assert.Equal(t, 1, r.code, "%v", r)
	assert.Contains(t, r.stderr, "dead FUSE mount")
	require.NoError(t, exec.Command("umount", mp).Run())

	// The next mount recovers the pool from its log and says so.
	r = vosfs(t, "mount", dir, mp)
	require.Equal(t, 0, r.code, "%v", r)
	pid = daemonPID(t, dir)
	assert.Contains(t, readLog(t, dir), "was not closed cleanly; recovered in")
	got, err := os.ReadFile(filepath.Join(mp, "acked"))
	require.NoError(t, err)
	assert.Equal(t, "durable\n", string(got))
	unmount(t, mp)
	waitExit(t, dir, pid)
	r = vosfs(t, "fsck", dir)
	assert.Equal(t, 0, r.code, "%v", r)
	assert.False(t, strings.Contains(r.stdout, "not closed cleanly"), "fsck recovered a cleanly unmounted pool: %s", r.stdout)
}

func TestProfileOfAMountedPool(t *testing.T) {
	fusetest.Require(t)
	dir := mkfsSmall(t)
	mp := filepath.Join(t.TempDir(), "mnt")
	require.NoError(t, os.Mkdir(mp, 0o755))
	cleanupMount(t, dir, mp)
	r := vosfs(t, "mount", dir, mp)
	require.Equal(t, 0, r.code, "%v", r)

	// Work for the profiler to see while it samples.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = os.WriteFile(filepath.Join(mp, fmt.Sprintf("f%d", i%50)), []byte("some bytes"), 0o644)
		}
	}()
	out := filepath.Join(t.TempDir(), "cpu.pprof")
	r = vosfs(t, "profile", "--seconds", "1", "-o", out, mp)
	close(stop)
	<-done
	require.Equal(t, 0, r.code, "%v", r)
	assert.Contains(t, r.stderr, "vosfs: profiling "+dir+" (cpu) for 1 s")
	assert.Contains(t, r.stderr, "vosfs: wrote "+out)
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	zr, err := gzip.NewReader(bytes.NewReader(b))
	require.NoError(t, err, "not a pprof profile")
	body, err := io.ReadAll(zr)
	require.NoError(t, err)
	require.NotEmpty(t, body)
}
