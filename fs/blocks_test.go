package fs

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
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
