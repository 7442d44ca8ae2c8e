package fs

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// mountinfoLine returns the line of /proc/self/mountinfo for mp.
func mountinfoLine(t *testing.T, mp string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	require.NoError(t, err)
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == mp {
			return l
		}
	}
	t.Fatalf("%s not in mountinfo", mp)
	return ""
}

// TestSetReadOnly: switched read-only (a remount), the daemon refuses
// every change with EROFS and reads leave access times alone; switched
// back, changes go through.
func TestSetReadOnly(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	p := m.path("f")
	writeFile(t, p, []byte("data"))
	old := unix.NsecToTimespec(time.Now().Add(-48 * time.Hour).UnixNano())
	require.NoError(t, unix.UtimesNano(p, []unix.Timespec{old, old}))

	require.NoError(t, m.f.SetReadOnly(true))
	require.True(t, m.f.ReadOnly())
	requireContent(t, []byte("data"), p)
	require.Equal(t, old, lstat(t, p).Atim, "a read moved the access time of a read-only filesystem")
	_, err := os.OpenFile(p, os.O_WRONLY, 0)
	require.ErrorIs(t, err, syscall.EROFS)
	require.ErrorIs(t, os.Mkdir(m.path("d"), 0o755), syscall.EROFS)
	require.ErrorIs(t, os.WriteFile(m.path("g"), nil, 0o644), syscall.EROFS)
	require.ErrorIs(t, os.Remove(p), syscall.EROFS)
	require.ErrorIs(t, os.Chmod(p, 0o600), syscall.EROFS)

	require.NoError(t, m.f.SetReadOnly(false))
	require.NoError(t, os.Mkdir(m.path("d"), 0o755))
	writeFile(t, m.path("g"), []byte("more"))
	requireContent(t, []byte("more"), m.path("g"))
}

// TestMountFlags: the kernel flags of the options show in the mount
// table and take effect; nodiratime leaves a listed directory's access
// time; blksize is the st_blksize of files.
func TestMountFlags(t *testing.T) {
	opts := DefaultOptions()
	opts.NoExec, opts.DirSync, opts.NoDiratime, opts.Sync = true, true, true, true
	opts.BlockSize = 64 << 10
	opts.FsName = "flagstest"
	m := mountTest(t, opts)
	line := mountinfoLine(t, m.mnt)
	f := strings.Fields(line)
	require.Equal(t, "rw,nosuid,nodev,noexec,nodiratime,relatime", f[5], line)
	sep := strings.Index(line, " - ")
	require.True(t, strings.HasPrefix(line[sep:], " - fuse.vosfs flagstest rw,sync,dirsync,"), line)

	p := m.path("prog")
	require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755))
	require.ErrorIs(t, unix.Access(p, unix.X_OK), syscall.EACCES, "noexec")
	var st unix.Stat_t
	require.NoError(t, unix.Stat(p, &st))
	require.Equal(t, int64(64<<10), int64(st.Blksize))

	d := m.path("d")
	require.NoError(t, os.Mkdir(d, 0o755))
	old := unix.NsecToTimespec(time.Now().Add(-48 * time.Hour).UnixNano())
	require.NoError(t, unix.UtimesNano(d, []unix.Timespec{old, old}))
	_, err := os.ReadDir(d)
	require.NoError(t, err)
	require.Equal(t, old, lstat(t, d).Atim, "nodiratime: listing moved the access time")
}
