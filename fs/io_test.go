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

func TestFallocate(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	const mib = 1 << 20
	open := func(name string, data []byte) int {
		t.Helper()
		writeFile(t, m.path(name), data)
		fd, err := unix.Open(m.path(name), unix.O_RDWR, 0)
		require.NoError(t, err)
		t.Cleanup(func() { unix.Close(fd) })
		return fd
	}

	t.Run("mode 0 extends", func(t *testing.T) {
		fd := open("alloc", []byte("abc"))
		before := fstat(t, fd)
		time.Sleep(time.Millisecond)
		require.NoError(t, unix.Fallocate(fd, 0, 0, mib))
		st := fstat(t, fd)
		require.EqualValues(t, mib, st.Size)
		require.Greater(t, tsNano(st.Ctim), tsNano(before.Ctim))
		want := make([]byte, mib)
		copy(want, "abc")
		requireContent(t, want, m.path("alloc"))
		// Inside the file: no change of size.
		require.NoError(t, unix.Fallocate(fd, 0, 100, 1000))
		require.EqualValues(t, mib, fstat(t, fd).Size)
		requireContent(t, want, m.path("alloc"))
	})

	t.Run("keep size", func(t *testing.T) {
		fd := open("keep", []byte("abc"))
		require.NoError(t, unix.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE, 0, 4*mib))
		require.EqualValues(t, 3, fstat(t, fd).Size)
		requireContent(t, []byte("abc"), m.path("keep"))
	})

	t.Run("punch hole", func(t *testing.T) {
		data := pattern(7, 3*mib)
		fd := open("punch", data)
		punch := func(off, n int64) {
			t.Helper()
			require.NoError(t, unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n))
			clear(data[off:min(off+n, int64(len(data)))])
		}
		punch(mib, mib)
		punch(1000, 5000)     // unaligned, inside the first block
		punch(3*mib-10, 1000) // past the end: size stays
		require.EqualValues(t, 3*mib, fstat(t, fd).Size)
		requireContent(t, data, m.path("punch"))

		seek := func(off int64, whence int) (int64, error) { return unix.Seek(fd, off, whence) }
		off, err := seek(0, unix.SEEK_DATA)
		require.NoError(t, err)
		require.EqualValues(t, 0, off)
		off, err = seek(mib-100, unix.SEEK_HOLE)
		require.NoError(t, err)
		require.EqualValues(t, mib, off)
		off, err = seek(mib+5, unix.SEEK_DATA)
		require.NoError(t, err)
		require.EqualValues(t, 2*mib, off)
		off, err = seek(mib+5, unix.SEEK_HOLE)
		require.NoError(t, err)
		require.EqualValues(t, mib+5, off)
		off, err = seek(2*mib, unix.SEEK_HOLE)
		require.NoError(t, err)
		require.EqualValues(t, 3*mib-10, off, "the punched tail is a hole")
		_, err = seek(3*mib-5, unix.SEEK_DATA)
		requireErrno(t, syscall.ENXIO, err, "no data after the punched tail")
		_, err = seek(3*mib, unix.SEEK_DATA)
		requireErrno(t, syscall.ENXIO, err, "SEEK_DATA at EOF")
		_, err = seek(5*mib, unix.SEEK_DATA)
		requireErrno(t, syscall.ENXIO, err, "SEEK_DATA past EOF")
		_, err = seek(5*mib, unix.SEEK_HOLE)
		requireErrno(t, syscall.ENXIO, err, "SEEK_HOLE past EOF")
	})

	t.Run("seek in sparse file", func(t *testing.T) {
		fd := open("sparse", nil)
		_, err := unix.Pwrite(fd, []byte("data"), 10*mib)
		require.NoError(t, err)
		off, err := unix.Seek(fd, 0, unix.SEEK_DATA)
		require.NoError(t, err)
		require.EqualValues(t, 10*mib, off)
		off, err = unix.Seek(fd, 0, unix.SEEK_HOLE)
		require.NoError(t, err)
		require.EqualValues(t, 0, off)
		off, err = unix.Seek(fd, 10*mib, unix.SEEK_HOLE)
		require.NoError(t, err)
		require.EqualValues(t, 10*mib+4, off, "the virtual hole at EOF")
	})

	t.Run("zero range", func(t *testing.T) {
		data := pattern(8, 100000)
		fd := open("zero", data)
		require.NoError(t, unix.Fallocate(fd, unix.FALLOC_FL_ZERO_RANGE, 50000, 100000))
		require.EqualValues(t, 150000, fstat(t, fd).Size)
		want := make([]byte, 150000)
		copy(want, data[:50000])
		requireContent(t, want, m.path("zero"))
	})

	t.Run("unsupported", func(t *testing.T) {
		fd := open("unsupported", pattern(1, 3*mib))
		for _, mode := range []uint32{unix.FALLOC_FL_COLLAPSE_RANGE, unix.FALLOC_FL_INSERT_RANGE, unix.FALLOC_FL_PUNCH_HOLE} {
			requireErrno(t, syscall.EOPNOTSUPP, unix.Fallocate(fd, mode, 0, mib), fmt.Sprintf("mode %#x", mode))
		}
		requireErrno(t, syscall.EINVAL, unix.Fallocate(fd, 0, 0, 0))
		require.EqualValues(t, 3*mib, fstat(t, fd).Size)
	})
}

func TestSync(t *testing.T) {
	for _, commit := range []CommitMode{CommitSync, CommitAsync} {
		t.Run(commit.String(), func(t *testing.T) {
			opts := DefaultOptions()
			opts.Commit = commit
			m := mountTest(t, opts)
			require.NoError(t, os.Mkdir(m.path("d"), 0o755))
			writeFile(t, m.path("d/f"), pattern(1, 100000))
			fd, err := unix.Open(m.path("d/f"), unix.O_RDWR, 0)
			require.NoError(t, err)
			_, err = unix.Write(fd, []byte("more"))
			require.NoError(t, err)
			require.NoError(t, unix.Fsync(fd))
			require.NoError(t, unix.Fdatasync(fd))
			require.NoError(t, unix.Syncfs(fd))
			require.NoError(t, unix.Close(fd))
			for _, dir := range []string{m.mnt, m.path("d")} {
				dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
				require.NoError(t, err)
				require.NoError(t, unix.Fsync(dfd), dir)
				require.NoError(t, unix.Fdatasync(dfd), dir)
				require.NoError(t, unix.Syncfs(dfd), dir)
				require.NoError(t, unix.Close(dfd))
			}
			// A read-only descriptor syncs too.
			fd, err = unix.Open(m.path("d/f"), unix.O_RDONLY, 0)
			require.NoError(t, err)
			require.NoError(t, unix.Fsync(fd))
			require.NoError(t, unix.Close(fd))
			unix.Sync()
			want := pattern(1, 100000)
			copy(want, "more")
			m.remount()
			requireContent(t, want, m.path("d/f"))
		})
	}
}

func TestStatfs(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	st := statfs(t, m.mnt)
	require.EqualValues(t, 4096, st.Bsize)
	require.EqualValues(t, 4096, st.Frsize)
	require.Equal(t, m.p.Stats().Data.Blocks, st.Blocks)
	require.Greater(t, st.Blocks, uint64(0))
	require.LessOrEqual(t, st.Bfree, st.Blocks)
	require.Equal(t, st.Bfree, st.Bavail)
	require.EqualValues(t, 255, st.Namelen)
	require.Greater(t, st.Files, uint64(0))
	require.LessOrEqual(t, st.Ffree, st.Files)
	// The same from inside a directory.
	require.NoError(t, os.Mkdir(m.path("d"), 0o755))
	require.Equal(t, st.Blocks, statfs(t, m.path("d")).Blocks)

	m.aggregate()
	free := statfs(t, m.mnt).Bfree
	writeFile(t, m.path("d/big"), pattern(2, 8<<20))
	used := statfs(t, m.mnt)
	require.LessOrEqual(t, used.Bfree, free-(8<<20)/4096, "8 MiB written")
	require.NoError(t, os.Remove(m.path("d/big")))
	m.settle()
	m.aggregate()
	require.GreaterOrEqual(t, statfs(t, m.mnt).Bfree, free, "space of a deleted file comes back")

	// Overwriting in place does not leak space once aggregated.
	writeFile(t, m.path("d/over"), pattern(3, 4<<20))
	m.aggregate()
	once := statfs(t, m.mnt).Bfree
	for i := 0; i < 3; i++ {
		writeFile(t, m.path("d/over"), pattern(byte(4+i), 4<<20))
	}
	m.aggregate()
	require.GreaterOrEqual(t, statfs(t, m.mnt).Bfree, once)
}

func TestCopyFileRange(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	src := pattern(11, 3<<20+123)
	writeFile(t, m.path("src"), src)
	dstData := pattern(12, 10000)
	writeFile(t, m.path("dst"), dstData)
	in, err := unix.Open(m.path("src"), unix.O_RDONLY, 0)
	require.NoError(t, err)
	defer unix.Close(in)
	out, err := unix.Open(m.path("dst"), unix.O_WRONLY, 0)
	require.NoError(t, err)
	defer unix.Close(out)

	copyAll := func(offIn, offOut int64, n int) int {
		t.Helper()
		done := 0
		for done < n {
			c, err := unix.CopyFileRange(in, &offIn, out, &offOut, n-done, 0)
			require.NoError(t, err)
			if c == 0 {
				break
			}
			done += c
		}
		return done
	}
	n := copyAll(100, 4096, 2<<20+5)
	require.Equal(t, 2<<20+5, n)
	want := make([]byte, 4096+2<<20+5)
	copy(want, dstData)
	copy(want[4096:], src[100:100+2<<20+5])
	requireContent(t, want, m.path("dst"))

	// Past the source's end: short.
	n = copyAll(int64(len(src))-10, 0, 1000)
	require.Equal(t, 10, n)
	copy(want, src[len(src)-10:])
	requireContent(t, want, m.path("dst"))
	// Within one file.
	n2, err := unix.CopyFileRange(in, nil, in, nil, 10, 0)
	requireErrno(t, syscall.EBADF, err, "destination not writable")
	_ = n2
}

// alignedBuf is n bytes aligned for direct I/O.
func alignedBuf(t testing.TB, n int) []byte {
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	require.NoError(t, err)
	t.Cleanup(func() { unix.Munmap(b) })
	return b
}

func TestODirect(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	p := m.path("direct")
	fd, err := unix.Open(p, unix.O_RDWR|unix.O_CREAT|unix.O_DIRECT, 0o644)
	require.NoError(t, err)
	defer unix.Close(fd)
	const n = 256 << 10
	w := alignedBuf(t, n)
	copy(w, pattern(21, n))
	_, err = unix.Pwrite(fd, w, 0)
	require.NoError(t, err)
	_, err = unix.Pwrite(fd, w[:8192], 1<<20)
	require.NoError(t, err)
	require.EqualValues(t, 1<<20+8192, fstat(t, fd).Size)
	r := alignedBuf(t, n)
	got, err := unix.Pread(fd, r, 0)
	require.NoError(t, err)
	require.Equal(t, n, got)
	requireBytes(t, w, r, "direct read")
	got, err = unix.Pread(fd, r[:16384], 1<<20)
	require.NoError(t, err)
	require.Equal(t, 8192, got)
	requireBytes(t, w[:8192], r[:8192], "direct read at 1 MiB")
	// Through the page cache.
	want := make([]byte, 1<<20+8192)
	copy(want, w)
	copy(want[1<<20:], w[:8192])
	requireContent(t, want, p)
}

func TestMmap(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	p := m.path("mapped")
	const n = 256 << 10
	writeFile(t, p, pattern(1, n))
	fd, err := unix.Open(p, unix.O_RDWR, 0)
	require.NoError(t, err)
	mem, err := unix.Mmap(fd, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	require.NoError(t, err)
	requireBytes(t, pattern(1, n), mem, "mapped contents")
	want := pattern(2, n)
	copy(mem, want)
	require.NoError(t, unix.Msync(mem, unix.MS_SYNC))
	require.NoError(t, unix.Munmap(mem))
	require.NoError(t, unix.Close(fd))
	requireContent(t, want, p)
	require.EqualValues(t, n, lstat(t, p).Size)
	m.remount()
	requireContent(t, want, p)

	// A mapping that outlives its descriptor and its name.
	fd, err = unix.Open(p, unix.O_RDWR, 0)
	require.NoError(t, err)
	mem, err = unix.Mmap(fd, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	require.NoError(t, err)
	require.NoError(t, unix.Close(fd))
	require.NoError(t, os.Link(p, m.path("other")))
	require.NoError(t, os.Remove(p))
	copy(mem[100:], "through the map")
	require.NoError(t, unix.Msync(mem, unix.MS_SYNC))
	require.NoError(t, unix.Munmap(mem))
	copy(want[100:], "through the map")
	requireContent(t, want, m.path("other"))
}
