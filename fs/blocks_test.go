package fs

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"vosfs/vos"
)

// TestStBlocksCountsAllocation: st_blocks (and so du) counts what a file's
// data takes, in 512-byte units: a hole costs nothing, bytes kept in the
// heap count as they are, data-blob extents in whole 4 KiB blocks; a
// punched hole and a truncate give it back; a snapshot's copy keeps its
// own; a remount changes nothing.
func TestStBlocksCountsAllocation(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	p := m.path("sparse")
	fd, err := unix.Open(p, unix.O_RDWR|unix.O_CREAT, 0o644)
	require.NoError(t, err)
	_, err = unix.Pwrite(fd, pattern(1, 4096), 5<<30)
	require.NoError(t, err)
	st := fstat(t, fd)
	require.Equal(t, int64(5<<30+4096), st.Size)
	require.Equal(t, int64(8), st.Blocks, "one 4 KiB block at 5 GiB, not 5 GiB of blocks")

	// 1 MiB more at 1 GiB: to the data blob, 2048 blocks of 512.
	_, err = unix.Pwrite(fd, pattern(2, 1<<20), 1<<30)
	require.NoError(t, err)
	require.Equal(t, int64(8+2048), fstat(t, fd).Blocks)
	// 100 bytes at 0: one 512-byte unit more.
	_, err = unix.Pwrite(fd, pattern(3, 100), 0)
	require.NoError(t, err)
	require.Equal(t, int64(8+2048+1), fstat(t, fd).Blocks)
	// Written over in place: the same.
	_, err = unix.Pwrite(fd, pattern(4, 1<<20), 1<<30)
	require.NoError(t, err)
	require.Equal(t, int64(8+2048+1), fstat(t, fd).Blocks)

	out, err := exec.Command("du", "-B1", p).Output()
	require.NoError(t, err)
	require.Equal(t, "1053184", strings.Fields(string(out))[0], "du: (8+2048+1)*512 bytes")
	out, err = exec.Command("du", "-B1", "--apparent-size", p).Output()
	require.NoError(t, err)
	require.Equal(t, "5368713216", strings.Fields(string(out))[0])

	require.NoError(t, os.Mkdir(m.path(SnapshotDir+"/s"), 0o755))
	// Punching the 1 MiB gives it back; truncating below 5 GiB the block.
	require.NoError(t, unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 1<<30, 1<<20))
	require.Equal(t, int64(8+1), fstat(t, fd).Blocks)
	require.NoError(t, unix.Ftruncate(fd, 5<<30))
	require.Equal(t, int64(1), fstat(t, fd).Blocks)
	require.NoError(t, unix.Close(fd))
	require.Equal(t, int64(8+2048+1), lstat(t, m.path(SnapshotDir+"/s/sparse")).Blocks, "the snapshot keeps its copy")

	// An empty file and a hole-only file take nothing.
	writeFile(t, m.path("empty"), nil)
	require.NoError(t, os.Truncate(m.path("empty"), 1<<40))
	require.Equal(t, int64(0), lstat(t, m.path("empty")).Blocks)

	m.remount()
	require.Equal(t, int64(1), lstat(t, p).Blocks)
	require.Equal(t, int64(0), lstat(t, m.path("empty")).Blocks)
}

// TestStatfsMoves: statfs's data blocks follow what writes take and
// deletes give back (once aggregated, which a delete asks for at once),
// and its files are the inodes in use (df -i), counted by creates and
// removals, orphans included until their last close, across a remount.
func TestStatfsMoves(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	m.aggregate()
	st0 := statfs(t, m.mnt)
	require.Equal(t, uint64(1), st0.Files-st0.Ffree, "the root")
	require.Equal(t, m.p.Stats().Heap.Free/inodeCost, st0.Ffree)

	writeFile(t, m.path("big"), pattern(1, 8<<20))
	st := statfs(t, m.mnt)
	require.Equal(t, st0.Bfree-2048, st.Bfree, "8 MiB: 2048 blocks of 4 KiB")
	require.Equal(t, st.Bfree, st.Bavail)
	require.NoError(t, os.Mkdir(m.path("d"), 0o755))
	for i := 0; i < 10; i++ {
		writeFile(t, m.path("d/f"+string(rune('a'+i))), []byte("x"))
	}
	require.NoError(t, os.Symlink("big", m.path("link")))
	require.NoError(t, os.Link(m.path("big"), m.path("hard")))
	st = statfs(t, m.mnt)
	require.Equal(t, uint64(1+1+1+10+1), st.Files-st.Ffree, "root, big, d, 10 files, link; a hard link is no inode")

	// An open file unlinked still counts until closed.
	fd, err := unix.Open(m.path("d/fa"), unix.O_RDONLY, 0)
	require.NoError(t, err)
	require.NoError(t, os.Remove(m.path("d/fa")))
	st = statfs(t, m.mnt)
	require.Equal(t, uint64(14), st.Files-st.Ffree)
	require.NoError(t, unix.Close(fd))
	m.settle()
	st = statfs(t, m.mnt)
	require.Equal(t, uint64(13), st.Files-st.Ffree)

	require.NoError(t, os.Remove(m.path("big")))
	require.NoError(t, os.Remove(m.path("hard")))
	eventually(t, func() bool { return statfs(t, m.mnt).Bfree == st0.Bfree }, "the 8 MiB back")
	st = statfs(t, m.mnt)
	require.Equal(t, uint64(12), st.Files-st.Ffree)
	out, err := exec.Command("df", "--output=iused", m.mnt).Output()
	require.NoError(t, err)
	require.Equal(t, "12", strings.Fields(string(out))[1], "df -i")

	m.remount()
	st = statfs(t, m.mnt)
	require.Equal(t, uint64(12), st.Files-st.Ffree)
	require.Equal(t, st0.Bfree, st.Bfree)
}

// TestInodeCountKeptAndChecked: a pool without the inode count (made
// before it was kept) gets it from its objects at mount; fsck finds a
// wrong count.
func TestInodeCountKeptAndChecked(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	require.NoError(t, os.Mkdir(m.path("d"), 0o755))
	writeFile(t, m.path("d/f"), []byte("x"))
	setCount := func(fn func(tx *vos.Tx) error) {
		_, err := m.f.Store().Update(context.Background(), vos.UpdateOptions{}, fn)
		require.NoError(t, err)
	}
	setCount(func(tx *vos.Tx) error { return tx.Punch(inodeCountPath()) })
	require.ErrorIs(t, m.f.Check(), ErrInconsistent)
	// Unmounted without the fsck of m.unmount, which would refuse it.
	require.NoError(t, m.srv.Unmount())
	m.srv.Wait()
	require.NoError(t, m.f.Close())
	require.NoError(t, m.p.Close())
	m.mount()
	st := statfs(t, m.mnt)
	require.Equal(t, uint64(3), st.Files-st.Ffree)
	require.NoError(t, m.f.Check())

	setCount(func(tx *vos.Tx) error { return addInodes(tx, 1) })
	err := m.f.Check()
	require.ErrorIs(t, err, ErrInconsistent)
	require.ErrorContains(t, err, "inode count is 4, 3 inodes found")
	setCount(func(tx *vos.Tx) error { return addInodes(tx, -1) })
}
