package fs

import (
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestSnapshots(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	snaps := m.path(SnapshotDir)
	require.Equal(t, []string{".", ".."}, names(t, snaps))
	st := lstat(t, snaps)
	require.EqualValues(t, syscall.S_IFDIR, st.Mode&syscall.S_IFMT)

	require.NoError(t, os.MkdirAll(m.path("d/e"), 0o755))
	big := pattern(1, 3<<20)
	writeFile(t, m.path("d/f"), []byte("version 1"))
	writeFile(t, m.path("d/big"), big)
	require.NoError(t, os.Symlink("f", m.path("d/l")))
	require.NoError(t, unix.Setxattr(m.path("d/f"), "user.v", []byte("1"), 0))
	require.NoError(t, os.Link(m.path("d/f"), m.path("d/e/f2")))

	require.NoError(t, os.Mkdir(snaps+"/s1", 0o755))
	requireErrno(t, syscall.EEXIST, unix.Mkdir(snaps+"/s1", 0o755))
	require.Equal(t, []string{".", "..", "s1"}, names(t, snaps))
	inos := direntInos(t, snaps)
	require.Equal(t, lstat(t, snaps+"/s1").Ino, inos["s1"])
	require.Equal(t, lstat(t, snaps).Ino, inos["."])
	require.Equal(t, lstat(t, m.mnt).Ino, inos[".."])
	require.Equal(t, lstat(t, snaps).Ino, direntInos(t, snaps+"/s1")[".."])
	require.Equal(t, lstat(t, snaps).Ino, direntInos(t, m.mnt)[SnapshotDir])
	// statfs anywhere is the filesystem's.
	for _, p := range []string{snaps, snaps + "/s1", snaps + "/s1/d"} {
		st := statfs(t, p)
		require.EqualValues(t, 4096, st.Bsize, p)
		require.Equal(t, statfs(t, m.mnt).Blocks, st.Blocks, p)
	}
	requireErrno(t, syscall.ENAMETOOLONG, unix.Mkdir(snaps+"/"+strings.Repeat("s", 256), 0o755))
	requireErrno(t, syscall.ENOENT, unix.Rmdir(snaps+"/missing"))
	// Nothing but mkdir and rmdir changes the snapshots directory.
	_, err := unix.Open(snaps+"/file", unix.O_CREAT|unix.O_WRONLY, 0o644)
	requireErrno(t, syscall.EPERM, err)
	requireErrno(t, syscall.EPERM, unix.Mkfifo(snaps+"/fifo", 0o644))
	requireErrno(t, syscall.EPERM, unix.Symlink("s1", snaps+"/link"))
	requireErrno(t, syscall.EPERM, unix.Rename(snaps+"/s1", snaps+"/renamed"))
	requireErrno(t, syscall.EPERM, unix.Chmod(snaps, 0o777))
	requireErrno(t, syscall.EPERM, unix.Rename(snaps+"/s1", m.path("s1")))
	requireErrno(t, syscall.EBUSY, unix.Rmdir(snaps))

	// Change everything in the live tree.
	writeFile(t, m.path("d/f"), []byte("version 2, longer"))
	f, err := os.OpenFile(m.path("d/big"), os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("overwritten"), 1<<20)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.NoError(t, unix.Setxattr(m.path("d/f"), "user.v", []byte("2"), 0))
	require.NoError(t, os.Remove(m.path("d/l")))
	require.NoError(t, os.Remove(m.path("d/e/f2")))
	require.NoError(t, os.Mkdir(m.path("d/new"), 0o755))
	require.NoError(t, os.Chmod(m.path("d/f"), 0o600))

	s1 := snaps + "/s1"
	check := func() {
		t.Helper()
		requireContent(t, []byte("version 1"), s1+"/d/f")
		requireContent(t, big, s1+"/d/big")
		target, err := os.Readlink(s1 + "/d/l")
		require.NoError(t, err)
		require.Equal(t, "f", target)
		requireContent(t, []byte("version 1"), s1+"/d/e/f2")
		buf := make([]byte, 10)
		n, err := unix.Getxattr(s1+"/d/f", "user.v", buf)
		require.NoError(t, err)
		require.Equal(t, "1", string(buf[:n]))
		require.Equal(t, []string{".", "..", "big", "e", "f", "l"}, names(t, s1+"/d"))
		st := lstat(t, s1+"/d/f")
		require.EqualValues(t, syscall.S_IFREG|0o644, st.Mode)
		require.EqualValues(t, 2, st.Nlink)
		require.EqualValues(t, len("version 1"), st.Size)
		require.Equal(t, st.Ino, lstat(t, s1+"/d/e/f2").Ino, "hard links within a snapshot")
		require.NotEqual(t, lstat(t, m.path("d/big")).Ino, lstat(t, s1+"/d/big").Ino, "snapshot inode numbers differ from live ones")
		require.Equal(t, lstat(t, s1+"/d/big").Ino, direntInos(t, s1+"/d")["big"])
		// The live tree.
		requireContent(t, []byte("version 2, longer"), m.path("d/f"))
		want := append([]byte(nil), big...)
		copy(want[1<<20:], "overwritten")
		requireContent(t, want, m.path("d/big"))
	}
	check()

	// Read-only.
	_, err = unix.Open(s1+"/d/f", unix.O_WRONLY, 0)
	requireErrno(t, syscall.EROFS, err)
	_, err = unix.Open(s1+"/d/f", unix.O_RDONLY|unix.O_TRUNC, 0)
	require.Error(t, err)
	_, err = unix.Open(s1+"/d/new", unix.O_CREAT|unix.O_WRONLY, 0o644)
	requireErrno(t, syscall.EROFS, err)
	requireErrno(t, syscall.EROFS, unix.Mkdir(s1+"/d/x", 0o755))
	requireErrno(t, syscall.EROFS, unix.Unlink(s1+"/d/f"))
	requireErrno(t, syscall.EROFS, unix.Rmdir(s1+"/d/e"))
	requireErrno(t, syscall.EROFS, unix.Rename(s1+"/d/f", s1+"/d/g"))
	requireErrno(t, syscall.EROFS, unix.Chmod(s1+"/d/f", 0o777))
	requireErrno(t, syscall.EROFS, unix.Truncate(s1+"/d/f", 0))
	requireErrno(t, syscall.EROFS, unix.Setxattr(s1+"/d/f", "user.v", []byte("x"), 0))
	requireErrno(t, syscall.EROFS, unix.Removexattr(s1+"/d/f", "user.v"))
	requireErrno(t, syscall.EROFS, unix.Symlink("x", s1+"/d/sl"))
	requireErrno(t, syscall.EROFS, unix.Link(s1+"/d/f", s1+"/d/f3"))
	check()

	// A second snapshot sees the second state.
	require.NoError(t, os.Mkdir(snaps+"/s2", 0o755))
	requireContent(t, []byte("version 2, longer"), snaps+"/s2/d/f")
	require.DirExists(t, snaps+"/s2/d/new")
	require.Equal(t, []string{".", "..", "s1", "s2"}, names(t, snaps))

	m.remount()
	check()
	requireContent(t, []byte("version 2, longer"), snaps+"/s2/d/f")

	// Deleting the file in the live tree keeps the snapshot's copy.
	require.NoError(t, os.Remove(m.path("d/big")))
	m.settle()
	m.aggregate()
	requireContent(t, big, s1+"/d/big")

	require.NoError(t, unix.Rmdir(snaps+"/s1"))
	requireErrno(t, syscall.ENOENT, unix.Access(s1, unix.F_OK))
	requireErrno(t, syscall.ENOENT, unix.Rmdir(snaps+"/s1"))
	require.Equal(t, []string{".", "..", "s2"}, names(t, snaps))
	m.aggregate()
	m.remount()
	require.Equal(t, []string{".", "..", "s2"}, names(t, snaps))
	requireErrno(t, syscall.ENOENT, unix.Access(s1, unix.F_OK))
	requireContent(t, []byte("version 2, longer"), snaps+"/s2/d/f")
	require.NoError(t, unix.Rmdir(snaps+"/s2"))
	require.Equal(t, []string{".", ".."}, names(t, snaps))
}
