package fs

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"runtime"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"vosfs/vos"
)

// requireErrno fails unless err is (or wraps) the errno want.
func requireErrno(t testing.TB, want syscall.Errno, err error, msgAndArgs ...any) {
	t.Helper()
	require.Error(t, err, msgAndArgs...)
	var got syscall.Errno
	if !errors.As(err, &got) {
		require.Failf(t, "not an errno", "want %v, got %v", want, err)
	}
	require.Equalf(t, want, got, "want %v, got %v (%v)", want, got, err)
}

func lstat(t testing.TB, path string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	require.NoError(t, unix.Lstat(path, &st), "lstat %s", path)
	return st
}

func fstat(t testing.TB, fd int) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	require.NoError(t, unix.Fstat(fd, &st))
	return st
}

func tsNano(ts unix.Timespec) int64 { return ts.Nano() }

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, data, 0o644))
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err, "read %s", path)
	return b
}

// requireContent compares file contents without dumping megabytes on a
// mismatch.
func requireContent(t testing.TB, want []byte, path string) {
	t.Helper()
	got := readFile(t, path)
	requireBytes(t, want, got, path)
}

func requireBytes(t testing.TB, want, got []byte, what string) {
	t.Helper()
	if bytes.Equal(want, got) {
		return
	}
	i := 0
	for i < len(want) && i < len(got) && want[i] == got[i] {
		i++
	}
	require.Failf(t, "bytes differ", "%s: %d bytes, want %d; first difference at %d", what, len(got), len(want), i)
}

// pattern is n bytes that differ with seed and position.
func pattern(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7+i/251)
	}
	return b
}

// names lists a directory with getdents (including "." and ".."), sorted.
func names(t testing.TB, dir string) []string {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	require.NoError(t, err)
	defer unix.Close(fd)
	return readNames(t, fd)
}

func readNames(t testing.TB, fd int) []string {
	t.Helper()
	var out []string
	buf := make([]byte, 8192)
	for {
		n, err := unix.Getdents(fd, buf)
		require.NoError(t, err)
		if n == 0 {
			break
		}
		// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name.
		for off := 0; off < n; {
			reclen := int(binary.LittleEndian.Uint16(buf[off+16:]))
			name := buf[off+19 : off+reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			out = append(out, string(name))
			off += reclen
		}
	}
	sort.Strings(out)
	return out
}

// asUser runs fn on an OS thread whose credentials are uid and gid with no
// capabilities; the thread is thrown away afterwards. fn must only make
// raw system calls (package unix), which run on the calling thread.
func asUser(uid, gid int, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread exits with the goroutine.
		runtime.LockOSThread()
		if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0); e != 0 {
			errc <- e
			return
		}
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(gid), uintptr(gid), uintptr(gid)); e != 0 {
			errc <- e
			return
		}
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(uid), uintptr(uid), uintptr(uid)); e != 0 {
			errc <- e
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// aggregate runs the store's aggregation until it has nothing left to
// drop and the freed space is reusable.
func (m *mounted) aggregate() {
	m.t.Helper()
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		n, err := m.f.aggregate(ctx)
		require.NoError(m.t, err)
		require.NoError(m.t, m.p.Sync())
		if n == 0 {
			return
		}
	}
}

// settle waits for the orphans to go: the kernel releases a closed file
// asynchronously, so an unlink right after a close may leave an orphan
// until the release arrives.
func (m *mounted) settle() {
	m.t.Helper()
	eventually(m.t, func() bool { return len(m.orphans()) == 0 }, "orphans reaped")
}

// orphans lists the inodes waiting as orphans.
func (m *mounted) orphans() []uint64 {
	m.t.Helper()
	var out []uint64
	v := m.f.Store().Latest()
	defer v.Close()
	require.NoError(m.t, v.ListDkeys(orphanOID, nil, false, 0, func(k []byte) bool {
		out = append(out, le(k))
		return true
	}))
	return out
}

// objectExists reports whether oid holds anything in the latest state.
func (m *mounted) objectExists(oid uint64) bool {
	v := m.f.Store().Latest()
	defer v.Close()
	_, ok, err := v.Get(vos.Path{OID: oid, Dkey: dkeyInode, Akey: akeyAttr})
	require.NoError(m.t, err)
	return ok
}

func statfs(t testing.TB, path string) unix.Statfs_t {
	t.Helper()
	var st unix.Statfs_t
	require.NoError(t, unix.Statfs(path, &st))
	return st
}

// eventually polls cond for up to 5 s.
func eventually(t testing.TB, cond func() bool, msg string) {
	t.Helper()
	require.Eventually(t, cond, 5*time.Second, 10*time.Millisecond, msg)
}

// clockNow is a lower bound of the times the filesystem stamps from now
// on. With the writeback cache the kernel stamps modification and change
// times itself, from its coarse clock, which trails time.Now by up to a
// few ticks.
func (m *mounted) clockNow() int64 {
	now := time.Now()
	if m.opts.WritebackCache {
		now = now.Add(-20 * time.Millisecond)
	}
	return now.UnixNano()
}

// tick sleeps long enough for the next time stamped to differ from the
// last: past one tick of the kernel's coarse clock, and at least 2 ms.
func tick() {
	var res unix.Timespec
	d := 2 * time.Millisecond
	if unix.ClockGetres(unix.CLOCK_REALTIME_COARSE, &res) == nil {
		d = max(d, 2*time.Duration(res.Nano()))
	}
	time.Sleep(d)
}

// dropCache drops the file's pages from the kernel's cache, so that the
// next read reaches the filesystem: with the writeback cache, a file just
// written is read from the pages its writes filled, and the kernel keeps
// no access time of its own for a FUSE file.
func dropCache(t testing.TB, path string) {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY, 0)
	require.NoError(t, err)
	defer unix.Close(fd)
	require.NoError(t, unix.Fsync(fd)) // written back: the pages are clean
	require.NoError(t, unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED))
}
