package fs

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func writebackOptions() Options {
	o := DefaultOptions()
	o.WritebackCache = true
	return o
}

// With the writeback cache the kernel writes dirty pages back through a
// writable handle of its choice, the latest opened: here an O_APPEND one.
// The page written at offset 0 through the other handle must land at 0,
// and appends must still go to the end.
func TestWritebackAppendHandle(t *testing.T) {
	m := mountTest(t, writebackOptions())
	p := m.path("f")
	base := pattern(1, 8192)
	writeFile(t, p, base)

	rw, err := unix.Open(p, unix.O_RDWR, 0)
	require.NoError(t, err)
	ap, err := unix.Open(p, unix.O_WRONLY|unix.O_APPEND, 0)
	require.NoError(t, err)

	n, err := unix.Pwrite(rw, []byte("HEAD"), 0)
	require.NoError(t, err)
	require.Equal(t, 4, n)
	require.NoError(t, unix.Fsync(rw)) // the write back, through ap's handle
	n, err = unix.Write(ap, []byte("TAIL"))
	require.NoError(t, err)
	require.Equal(t, 4, n)
	require.NoError(t, unix.Fsync(ap))

	want := append(append([]byte("HEAD"), base[4:]...), "TAIL"...)
	requireContent(t, want, p)
	require.NoError(t, unix.Close(ap))
	require.NoError(t, unix.Close(rw))
	m.remount()
	requireContent(t, want, p)
}

// Appends of several handles, through the page cache, all end up in the
// file once each, whole, at the end (the kernel serialises them on the
// inode and positions each at its size).
func TestWritebackAppendWriters(t *testing.T) {
	m := mountTest(t, writebackOptions())
	p := m.path("log")
	writeFile(t, p, nil)
	var fds []int
	for range 3 {
		fd, err := unix.Open(p, unix.O_WRONLY|unix.O_APPEND, 0)
		require.NoError(t, err)
		fds = append(fds, fd)
	}
	var want []byte
	for r := range 50 {
		fd := fds[r%len(fds)]
		rec := bytes.Repeat([]byte{byte('a' + r%26)}, 1000)
		n, err := unix.Write(fd, rec)
		require.NoError(t, err)
		require.Equal(t, len(rec), n)
		want = append(want, rec...)
	}
	for _, fd := range fds {
		require.NoError(t, unix.Close(fd))
	}
	requireContent(t, want, p)
	m.remount()
	requireContent(t, want, p)
}

// The kernel reads a partly written page through the write-only handle
// that writes it; the bytes around the write must survive.
func TestWritebackReadOnWriteOnly(t *testing.T) {
	m := mountTest(t, writebackOptions())
	p := m.path("f")
	base := pattern(2, 10000)
	writeFile(t, p, base)
	m.remount() // nothing of the file in the page cache

	fd, err := unix.Open(p, unix.O_WRONLY, 0)
	require.NoError(t, err)
	n, err := unix.Pwrite(fd, []byte("0123456789"), 100)
	require.NoError(t, err)
	require.Equal(t, 10, n)
	n, err = unix.Pwrite(fd, []byte("xyz"), 9998) // extends by one byte
	require.NoError(t, err)
	require.Equal(t, 3, n)
	require.NoError(t, unix.Close(fd))

	want := append([]byte(nil), base...)
	copy(want[100:], "0123456789")
	want = append(want[:9998], "xyz"...)
	requireContent(t, want, p)
	m.remount()
	requireContent(t, want, p)
}

// The kernel owns the times of what goes through the page cache: the times
// it shows are the ones stored, with their nanoseconds (the kernel keeps
// a FUSE mount's times to the nanosecond, the store's granularity), and a
// write back after a utimes leaves the times the utimes set, as tar and
// cp -p expect.
func TestWritebackTimes(t *testing.T) {
	m := mountTest(t, writebackOptions())

	// Data, then times, then the write back at close.
	p := m.path("restored")
	fd, err := unix.Open(p, unix.O_RDWR|unix.O_CREAT, 0o644)
	require.NoError(t, err)
	_, err = unix.Write(fd, pattern(3, 5000))
	require.NoError(t, err)
	at := unix.Timespec{Sec: 1_000_000_000, Nsec: 123_456_789}
	mt := unix.Timespec{Sec: 1_100_000_000, Nsec: 987_654_321}
	require.NoError(t, unix.UtimesNano(p, []unix.Timespec{at, mt}))
	require.NoError(t, unix.Close(fd))
	st := lstat(t, p)
	require.Equal(t, mt.Nano(), tsNano(st.Mtim))
	require.Equal(t, int64(5000), st.Size)

	// Plain writes: the kernel's times, nanoseconds and all.
	var seen []unix.Stat_t
	for i := range 3 {
		q := m.path("w" + string(rune('0'+i)))
		writeFile(t, q, pattern(byte(i), 3000))
		seen = append(seen, lstat(t, q))
	}
	frac := false
	for _, st := range seen {
		frac = frac || st.Mtim.Nsec%1_000_000 != 0
	}
	require.True(t, frac, "no mtime below the millisecond: %v", seen)

	m.remount()
	st = lstat(t, p)
	require.Equal(t, mt.Nano(), tsNano(st.Mtim), "mtime after the write back")
	require.Equal(t, at.Nano(), tsNano(st.Atim))
	require.Equal(t, int64(5000), st.Size)
	requireContent(t, pattern(3, 5000), p)
	for i, was := range seen {
		st := lstat(t, m.path("w"+string(rune('0'+i))))
		require.Equal(t, tsNano(was.Mtim), tsNano(st.Mtim), "file %d mtime", i)
		require.Equal(t, tsNano(was.Ctim), tsNano(st.Ctim), "file %d ctime", i)
		require.Equal(t, int64(3000), st.Size)
	}
}

// With the writeback cache the kernel writes back the change time it sets
// at unlink and rename, also for the inode the operation removed: that
// must not fail the next fsync or syncfs.
func TestWritebackRemovedInodeTimes(t *testing.T) {
	m := mountTest(t, writebackOptions())
	writeFile(t, m.path("a"), []byte("a"))
	writeFile(t, m.path("b"), []byte("b"))
	writeFile(t, m.path("c"), []byte("c"))
	require.NoError(t, unix.Unlink(m.path("a")))
	require.NoError(t, unix.Rename(m.path("b"), m.path("c"))) // c's inode goes
	m.settle()
	fd, err := unix.Open(m.mnt, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	require.NoError(t, err)
	require.NoError(t, unix.Syncfs(fd))
	require.NoError(t, unix.Close(fd))
	requireContent(t, []byte("b"), m.path("c"))
	m.remount()
	requireContent(t, []byte("b"), m.path("c"))
	require.Equal(t, []string{".", "..", ".snapshots", "c"}, names(t, m.mnt))
}
