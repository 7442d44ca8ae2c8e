package fs

import (
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestChmodChown(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	p := m.path("f")
	writeFile(t, p, []byte("data"))
	require.NoError(t, os.Mkdir(m.path("d"), 0o755))

	cases := []struct {
		name string
		path string
		op   func(string) error
		mode uint32 // expected permission bits after
		uid  uint32
		gid  uint32
	}{
		{"chmod file", p, func(p string) error { return unix.Chmod(p, 0o640) }, 0o640, 0, 0},
		{"chmod sticky setuid", p, func(p string) error { return unix.Chmod(p, 0o7755) }, 0o7755, 0, 0},
		// chown drops set-user-ID, and set-group-ID with group execute.
		{"chown file", p, func(p string) error { return unix.Chown(p, 1000, 2000) }, 0o1755, 1000, 2000},
		{"chown uid only", p, func(p string) error { return unix.Chown(p, 1001, -1) }, 0o1755, 1001, 2000},
		{"chgrp only", p, func(p string) error { return unix.Chown(p, -1, 2001) }, 0o1755, 1001, 2001},
		{"chmod dir", m.path("d"), func(p string) error { return unix.Chmod(p, 0o2770) }, 0o2770, 0, 0},
		// A directory keeps set-group-ID through chown.
		{"chown dir", m.path("d"), func(p string) error { return unix.Chown(p, 5, 6) }, 0o2770, 5, 6},
	}
	for _, c := range cases {
		before := lstat(t, c.path)
		tick()
		require.NoError(t, c.op(c.path), c.name)
		st := lstat(t, c.path)
		require.EqualValues(t, c.mode, st.Mode&07777, "%s: mode %o", c.name, st.Mode)
		require.Equal(t, before.Mode&syscall.S_IFMT, st.Mode&syscall.S_IFMT, c.name)
		require.Equal(t, c.uid, st.Uid, c.name)
		require.Equal(t, c.gid, st.Gid, c.name)
		require.Greater(t, tsNano(st.Ctim), tsNano(before.Ctim), "%s: ctime", c.name)
		require.Equal(t, tsNano(before.Mtim), tsNano(st.Mtim), "%s: mtime", c.name)
		if c.path == p {
			require.EqualValues(t, 4, st.Size, c.name)
		}
	}
	// set-group-ID without group execute is mandatory locking, kept.
	require.NoError(t, unix.Chmod(p, 0o2744))
	require.NoError(t, unix.Chown(p, 7, 7))
	require.EqualValues(t, 0o2744, lstat(t, p).Mode&07777)
	// Symlinks: lchown changes the link itself.
	require.NoError(t, os.Symlink("f", m.path("l")))
	require.NoError(t, unix.Lchown(m.path("l"), 3, 4))
	st := lstat(t, m.path("l"))
	require.EqualValues(t, 3, st.Uid)
	require.EqualValues(t, 4, st.Gid)
	require.EqualValues(t, 7, lstat(t, p).Uid)
}

func TestUtimens(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	p := m.path("f")
	writeFile(t, p, []byte("data"))
	at := unix.NsecToTimespec(time.Date(2001, 2, 3, 4, 5, 6, 789, time.UTC).UnixNano())
	mt := unix.NsecToTimespec(time.Date(1999, 12, 31, 23, 59, 59, 999999999, time.UTC).UnixNano())

	start := m.clockNow()
	require.NoError(t, unix.UtimesNano(p, []unix.Timespec{at, mt}))
	st := lstat(t, p)
	require.Equal(t, at, st.Atim)
	require.Equal(t, mt, st.Mtim)
	require.GreaterOrEqual(t, tsNano(st.Ctim), start)

	// UTIME_OMIT leaves a time alone; UTIME_NOW sets it to now.
	omit := unix.Timespec{Nsec: unix.UTIME_OMIT}
	nowTS := unix.Timespec{Nsec: unix.UTIME_NOW}
	tick()
	before := m.clockNow()
	require.NoError(t, unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{omit, nowTS}, 0))
	st2 := lstat(t, p)
	require.Equal(t, at, st2.Atim)
	require.GreaterOrEqual(t, tsNano(st2.Mtim), before)
	require.LessOrEqual(t, tsNano(st2.Mtim), time.Now().UnixNano())
	require.Greater(t, tsNano(st2.Ctim), tsNano(st.Ctim))
	require.GreaterOrEqual(t, tsNano(st2.Ctim), tsNano(st2.Mtim), "ctime is at least the time set to now")

	tick()
	require.NoError(t, unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{nowTS, omit}, 0))
	st3 := lstat(t, p)
	require.Greater(t, tsNano(st3.Atim), tsNano(st2.Mtim))
	require.Equal(t, st2.Mtim, st3.Mtim)
	require.GreaterOrEqual(t, tsNano(st3.Ctim), tsNano(st3.Atim))

	// Both omitted: nothing changes, not even ctime.
	require.NoError(t, unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{omit, omit}, 0))
	require.Equal(t, st3, lstat(t, p))

	// futimens through a file descriptor, and on a directory.
	fd, err := unix.Open(p, unix.O_RDONLY, 0)
	require.NoError(t, err)
	require.NoError(t, unix.UtimesNanoAt(fd, "", []unix.Timespec{mt, at}, unix.AT_EMPTY_PATH))
	require.NoError(t, unix.Close(fd))
	st4 := lstat(t, p)
	require.Equal(t, mt, st4.Atim)
	require.Equal(t, at, st4.Mtim)
	require.NoError(t, os.Mkdir(m.path("d"), 0o755))
	require.NoError(t, unix.UtimesNano(m.path("d"), []unix.Timespec{at, mt}))
	require.Equal(t, mt, lstat(t, m.path("d")).Mtim)
	// Symlinks, without following.
	require.NoError(t, os.Symlink("f", m.path("l")))
	require.NoError(t, unix.UtimesNanoAt(unix.AT_FDCWD, m.path("l"), []unix.Timespec{at, at}, unix.AT_SYMLINK_NOFOLLOW))
	require.Equal(t, at, lstat(t, m.path("l")).Mtim)
	require.Equal(t, at, lstat(t, p).Mtim)
}

func TestTimesOnChange(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	require.NoError(t, os.Mkdir(m.path("d"), 0o755))
	require.NoError(t, os.Mkdir(m.path("e"), 0o755))
	p := m.path("d/f")
	type step struct {
		name         string
		op           func()
		path         string
		mtime, ctime bool // expected to advance
	}
	writeAt := func(off int64, b string) func() {
		return func() {
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			require.NoError(t, err)
			_, err = f.WriteAt([]byte(b), off)
			require.NoError(t, err)
			require.NoError(t, f.Close())
		}
	}
	steps := []step{
		{"create", func() { writeFile(t, p, nil) }, m.path("d"), true, true},
		{"write", writeAt(0, "hello"), p, true, true},
		{"overwrite", writeAt(1, "E"), p, true, true},
		{"truncate", func() { require.NoError(t, os.Truncate(p, 2)) }, p, true, true},
		{"chmod", func() { require.NoError(t, os.Chmod(p, 0o600)) }, p, false, true},
		{"link", func() { require.NoError(t, os.Link(p, m.path("e/g"))) }, p, false, true},
		{"link dir", func() { require.NoError(t, os.Link(p, m.path("e/h"))) }, m.path("e"), true, true},
		{"rename", func() { require.NoError(t, os.Rename(m.path("e/g"), m.path("d/g"))) }, p, false, true},
		{"rename src dir", func() { require.NoError(t, os.Rename(m.path("d/g"), m.path("e/g"))) }, m.path("d"), true, true},
		{"rename dst dir", func() { require.NoError(t, os.Rename(m.path("d/f"), m.path("e/f"))) }, m.path("e"), true, true},
		{"unlink", func() { require.NoError(t, os.Remove(m.path("e/g"))) }, m.path("e/f"), false, true},
		{"unlink dir", func() { require.NoError(t, os.Remove(m.path("e/h"))) }, m.path("e"), true, true},
		{"mkdir", func() { require.NoError(t, os.Mkdir(m.path("e/sub"), 0o755)) }, m.path("e"), true, true},
		{"xattr", func() { require.NoError(t, unix.Setxattr(m.path("e/f"), "user.a", []byte("1"), 0)) }, m.path("e/f"), false, true},
	}
	for _, s := range steps {
		before := lstat(t, s.path)
		tick()
		s.op()
		after := lstat(t, s.path)
		if s.mtime {
			require.Greater(t, tsNano(after.Mtim), tsNano(before.Mtim), "%s: mtime", s.name)
		} else {
			require.Equal(t, before.Mtim, after.Mtim, "%s: mtime", s.name)
		}
		if s.ctime {
			require.Greater(t, tsNano(after.Ctim), tsNano(before.Ctim), "%s: ctime", s.name)
		} else {
			require.Equal(t, before.Ctim, after.Ctim, "%s: ctime", s.name)
		}
		require.GreaterOrEqual(t, tsNano(after.Ctim), tsNano(after.Mtim), "%s: ctime >= mtime", s.name)
	}
}

func TestSetgidDirectory(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	d := m.path("shared")
	require.NoError(t, os.Mkdir(d, 0o755))
	require.NoError(t, os.Chown(d, 0, 4242))
	require.NoError(t, unix.Chmod(d, 0o2775))
	writeFile(t, d+"/file", nil)
	require.NoError(t, os.Mkdir(d+"/sub", 0o755))
	require.NoError(t, unix.Mkfifo(d+"/fifo", 0o644))
	require.NoError(t, os.Symlink("x", d+"/link"))
	for _, n := range []string{"file", "sub", "fifo", "link"} {
		st := lstat(t, d+"/"+n)
		require.EqualValues(t, 4242, st.Gid, n)
		require.EqualValues(t, 0, st.Uid, n)
	}
	require.EqualValues(t, syscall.S_IFDIR|0o2755, lstat(t, d+"/sub").Mode, "subdirectory inherits set-group-ID")
	require.EqualValues(t, 0, lstat(t, d+"/file").Mode&syscall.S_ISGID)
	// Nested: the subdirectory passes it on too.
	require.NoError(t, os.Mkdir(d+"/sub/deeper", 0o700))
	st := lstat(t, d+"/sub/deeper")
	require.EqualValues(t, syscall.S_IFDIR|0o2700, st.Mode)
	require.EqualValues(t, 4242, st.Gid)
	// A directory without the bit: the creator's group.
	require.NoError(t, os.Mkdir(m.path("plain"), 0o755))
	require.NoError(t, os.Chown(m.path("plain"), 0, 4242))
	require.NoError(t, os.Mkdir(m.path("plain/x"), 0o755))
	st = lstat(t, m.path("plain/x"))
	require.EqualValues(t, 0, st.Gid)
	require.EqualValues(t, syscall.S_IFDIR|0o755, st.Mode)
}

// TestKillSuid: a write or truncate by a user other than the owner (without
// CAP_FSETID) drops set-user-ID, and set-group-ID with group execute.
func TestKillSuid(t *testing.T) {
	opts := DefaultOptions()
	opts.AllowOther = true // let another user in
	m := mountTest(t, opts)
	root, err := unix.Open(m.mnt, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	require.NoError(t, err)
	defer unix.Close(root)

	cases := []struct {
		name string
		mode uint32
		want uint32
		flag int // open flags besides O_WRONLY
		op   func(fd int) error
	}{
		{"write suid+sgid", 0o6777, 0o777, 0, func(fd int) error { _, err := unix.Write(fd, []byte("x")); return err }},
		{"write suid", 0o4766, 0o766, 0, func(fd int) error { _, err := unix.Write(fd, []byte("x")); return err }},
		{"write sgid no group exec", 0o2766, 0o2766, 0, func(fd int) error { _, err := unix.Write(fd, []byte("x")); return err }},
		{"ftruncate suid+sgid", 0o6777, 0o777, 0, func(fd int) error { return unix.Ftruncate(fd, 1) }},
		{"O_TRUNC suid+sgid", 0o6777, 0o777, unix.O_TRUNC, func(fd int) error { return nil }},
		{"direct write suid+sgid", 0o6777, 0o777, unix.O_DIRECT, func(fd int) error {
			buf, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
			if err != nil {
				return err
			}
			defer unix.Munmap(buf)
			_, err = unix.Pwrite(fd, buf, 0)
			return err
		}},
		{"direct write suid", 0o4766, 0o766, unix.O_DIRECT, func(fd int) error {
			buf, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
			if err != nil {
				return err
			}
			defer unix.Munmap(buf)
			_, err = unix.Pwrite(fd, buf, 0)
			return err
		}},
	}
	for i, c := range cases {
		name := string(rune('a' + i))
		writeFile(t, m.path(name), []byte("0123456789"))
		require.NoError(t, unix.Chmod(m.path(name), c.mode))
		require.EqualValues(t, c.mode, lstat(t, m.path(name)).Mode&07777, c.name)
		require.NoError(t, asUser(1000, 1000, func() error {
			fd, err := unix.Openat(root, name, unix.O_WRONLY|c.flag, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			return c.op(fd)
		}), c.name)
		st := lstat(t, m.path(name))
		require.EqualValues(t, c.want, st.Mode&07777, "%s: mode %o", c.name, st.Mode)
	}
	// The owner's own write (as root, with CAP_FSETID) keeps the bits.
	writeFile(t, m.path("own"), nil)
	require.NoError(t, unix.Chmod(m.path("own"), 0o4755))
	f, err := os.OpenFile(m.path("own"), os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString("x")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.EqualValues(t, 0o4755, lstat(t, m.path("own")).Mode&07777)
}

// TestAtime: reads update the access time the way relatime does: when it
// is not after the last change, or is a day old.
func TestAtime(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	p := m.path("f")
	writeFile(t, p, []byte("some data"))
	old := unix.NsecToTimespec(time.Now().Add(-48 * time.Hour).UnixNano())
	require.NoError(t, unix.UtimesNano(p, []unix.Timespec{old, old}))

	start := m.clockNow()
	dropCache(t, p)
	requireContent(t, []byte("some data"), p)
	st := lstat(t, p)
	require.GreaterOrEqual(t, tsNano(st.Atim), start, "read updates an old atime")
	require.Equal(t, old, st.Mtim, "read leaves mtime")

	// A second read right after leaves it (relatime).
	tick()
	requireContent(t, []byte("some data"), p)
	st2 := lstat(t, p)
	require.Equal(t, st.Atim, st2.Atim)
	require.Equal(t, st.Ctim, st2.Ctim, "an atime update does not change ctime")

	// After a write, the next read updates it again.
	tick()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.WriteString("!")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	dropCache(t, p)
	requireContent(t, []byte("some data!"), p)
	st3 := lstat(t, p)
	require.Greater(t, tsNano(st3.Atim), tsNano(st2.Atim))
	require.GreaterOrEqual(t, tsNano(st3.Atim), tsNano(st3.Mtim))

	// Listing a directory is reading it.
	require.NoError(t, os.Mkdir(m.path("d"), 0o755))
	require.NoError(t, unix.UtimesNano(m.path("d"), []unix.Timespec{old, old}))
	start = m.clockNow()
	_, err = os.ReadDir(m.path("d"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, tsNano(lstat(t, m.path("d")).Atim), start, "readdir updates an old atime")
}

func TestNoAtime(t *testing.T) {
	opts := DefaultOptions()
	opts.NoAtime = true
	m := mountTest(t, opts)
	p := m.path("f")
	writeFile(t, p, []byte("data"))
	old := unix.NsecToTimespec(time.Now().Add(-48 * time.Hour).UnixNano())
	require.NoError(t, unix.UtimesNano(p, []unix.Timespec{old, old}))
	requireContent(t, []byte("data"), p)
	require.Equal(t, old, lstat(t, p).Atim)
}

// TestKillPrivAfterQuietWrites: once a write found nothing to drop, the
// kernel stops asking before writes (HANDLE_KILLPRIV_V2); a set-user-ID bit
// set later, a truncate by path, and a capability set later must still be
// dropped by the next write of another user.
func TestKillPrivAfterQuietWrites(t *testing.T) {
	opts := DefaultOptions()
	opts.AllowOther = true
	m := mountTest(t, opts)
	p := m.path("f")
	writeFile(t, p, []byte("0123456789"))
	require.NoError(t, unix.Chmod(p, 0o777))
	// The user cannot walk the test's directories: it goes through a
	// descriptor of the mount's root.
	root, err := unix.Open(m.mnt, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	require.NoError(t, err)
	defer unix.Close(root)
	viaRoot := fmt.Sprintf("/proc/self/fd/%d/f", root)
	userWrite := func() {
		t.Helper()
		require.NoError(t, asUser(1000, 1000, func() error {
			fd, err := unix.Openat(root, "f", unix.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			_, err = unix.Pwrite(fd, []byte("x"), 3)
			return err
		}))
	}
	userWrite()
	userWrite()
	require.NoError(t, unix.Chmod(p, 0o6777))
	userWrite()
	require.EqualValues(t, 0o777, lstat(t, p).Mode&07777)

	require.NoError(t, unix.Chmod(p, 0o6777))
	require.NoError(t, asUser(1000, 1000, func() error { return unix.Truncate(viaRoot, 4) }))
	require.EqualValues(t, 0o777, lstat(t, p).Mode&07777)
	require.EqualValues(t, 4, lstat(t, p).Size)

	// A file capability (revision 2, effective, CAP_NET_RAW permitted)
	// goes with any write, the owner's too.
	capv2 := []byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	require.NoError(t, unix.Setxattr(p, "security.capability", capv2, 0))
	buf := make([]byte, 64)
	n, err := unix.Getxattr(p, "security.capability", buf)
	require.NoError(t, err)
	require.EqualValues(t, 0o777, lstat(t, p).Mode&07777)
	require.Equal(t, capv2, buf[:n])
	userWrite()
	_, err = unix.Getxattr(p, "security.capability", buf)
	require.ErrorIs(t, err, unix.ENODATA)
	requireContent(t, []byte("012x"), p)
}
