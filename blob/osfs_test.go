package blob

import (
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/ncw/directio"
	"github.com/stretchr/testify/require"
)

// unaligned returns n random bytes that do not start on an O_DIRECT
// boundary.
func unaligned(t testing.TB, n int) []byte {
	raw := make([]byte, n+1)
	p := raw[1:]
	require.False(t, isAligned(p))
	for i := range p {
		p[i] = byte(rand.Uint32())
	}
	return p
}

func forDirect(t *testing.T, fn func(t *testing.T, o *OSFS)) {
	for _, direct := range []bool{false, true} {
		t.Run(map[bool]string{false: "buffered", true: "direct"}[direct], func(t *testing.T) {
			fn(t, NewOSFS(direct))
		})
	}
}

func TestOSFSCreateOpenStat(t *testing.T) {
	forDirect(t, func(t *testing.T, o *OSFS) {
		dir := t.TempDir()
		name := filepath.Join(dir, "pool", "log")
		require.NoError(t, o.MkdirAll(filepath.Dir(name)))

		_, err := o.Stat(name)
		require.ErrorIs(t, err, fs.ErrNotExist)
		require.EqualError(t, err, "blob: stat "+name+": no such file or directory")
		_, err = o.Open(name)
		require.ErrorIs(t, err, fs.ErrNotExist)

		f, err := o.Create(name)
		require.NoError(t, err)
		require.Equal(t, name, f.Name())
		_, err = o.Create(name)
		require.ErrorIs(t, err, fs.ErrExist)
		require.EqualError(t, err, "blob: create "+name+": file exists")
		require.NoError(t, f.Truncate(3*BlockSize))
		require.NoError(t, f.Close())
		require.NoError(t, o.SyncDir(filepath.Dir(name)))

		size, err := o.Stat(name)
		require.NoError(t, err)
		require.Equal(t, int64(3*BlockSize), size)
		fi, err := os.Stat(name)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

		f, err = o.Open(name)
		require.NoError(t, err)
		size, err = f.Size()
		require.NoError(t, err)
		require.Equal(t, int64(3*BlockSize), size)
		require.NoError(t, f.Close())
		require.NoError(t, o.Remove(name))
		require.ErrorIs(t, o.Remove(name), fs.ErrNotExist)
	})
}

func TestOSFSRoundTrip(t *testing.T) {
	forDirect(t, func(t *testing.T, o *OSFS) {
		name := filepath.Join(t.TempDir(), "data")
		f, err := o.Create(name)
		require.NoError(t, err)
		defer f.Close()
		if o.Direct && !f.(*osFile).Direct() {
			t.Log("the filesystem refused O_DIRECT; testing the buffered fallback")
		}

		p := unaligned(t, 3*BlockSize)
		n, err := f.WriteAt(p, BlockSize)
		require.NoError(t, err)
		require.Equal(t, len(p), n)
		require.NoError(t, f.Sync())
		size, err := f.Size()
		require.NoError(t, err)
		require.Equal(t, int64(4*BlockSize), size)

		q := unaligned(t, 3*BlockSize)
		n, err = f.ReadAt(q, BlockSize)
		require.NoError(t, err)
		require.Equal(t, len(q), n)
		require.Equal(t, p, q)

		// Any length can be read, even from an O_DIRECT file.
		r := unaligned(t, BlockSize+10)
		n, err = f.ReadAt(r, 2*BlockSize)
		require.NoError(t, err)
		require.Equal(t, len(r), n)
		require.Equal(t, p[BlockSize:2*BlockSize+10], r)

		n, err = f.ReadAt(q, 2*BlockSize)
		require.ErrorIs(t, err, io.EOF)
		require.Equal(t, 2*BlockSize, n)
		require.Equal(t, p[BlockSize:], q[:n])

		if f.(*osFile).Direct() {
			_, err = f.WriteAt(p, 100)
			require.ErrorIs(t, err, ErrUnaligned)
			require.Contains(t, err.Error(), "blob: write "+name+" at 100")
			_, err = f.WriteAt(p[:100], 0)
			require.ErrorIs(t, err, ErrUnaligned)
			// Reads go through the buffered descriptor: any offset.
			r := make([]byte, 50)
			n, err = f.ReadAt(r, BlockSize+100)
			require.NoError(t, err)
			require.Equal(t, 50, n)
			require.Equal(t, p[100:150], r)
		}
	})
}

func TestOSFSDirectLargeIO(t *testing.T) {
	o := NewOSFS(true)
	f, err := o.Create(filepath.Join(t.TempDir(), "data"))
	require.NoError(t, err)
	defer f.Close()
	p := unaligned(t, alignedPoolSize+2*BlockSize) // bigger than the pooled buffers
	_, err = f.WriteAt(p, 0)
	require.NoError(t, err)
	q := unaligned(t, len(p))
	_, err = f.ReadAt(q, 0)
	require.NoError(t, err)
	require.Equal(t, p, q)
}

// TestOSFSDirectFallback simulates a filesystem without O_DIRECT, which
// Linux reports with EINVAL after creating the file.
func TestOSFSDirectFallback(t *testing.T) {
	defer func(saved func(string, int, os.FileMode) (*os.File, error)) { openDirect = saved }(openDirect)
	openDirect = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		f, err := os.OpenFile(name, flag, perm)
		if err != nil {
			return nil, err
		}
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EINVAL}
	}

	o := NewOSFS(true)
	name := filepath.Join(t.TempDir(), "data")
	f, err := o.Create(name)
	require.NoError(t, err)
	require.False(t, f.(*osFile).Direct())
	_, err = o.Create(name)
	require.ErrorIs(t, err, fs.ErrExist)

	p := unaligned(t, 100)
	_, err = f.WriteAt(p, 1) // fine without O_DIRECT
	require.NoError(t, err)
	require.NoError(t, f.Close())

	f, err = o.Open(name)
	require.NoError(t, err)
	require.False(t, f.(*osFile).Direct())
	q := make([]byte, 100)
	_, err = f.ReadAt(q, 1)
	require.NoError(t, err)
	require.Equal(t, p, q)
	require.NoError(t, f.Close())
}

func TestOSFSPunch(t *testing.T) {
	forDirect(t, func(t *testing.T, o *OSFS) {
		f, err := o.Create(filepath.Join(t.TempDir(), "data"))
		require.NoError(t, err)
		defer f.Close()
		p := unaligned(t, 3*BlockSize)
		_, err = f.WriteAt(p, 0)
		require.NoError(t, err)

		require.NoError(t, f.Punch(BlockSize, BlockSize))
		require.NoError(t, f.Punch(2*BlockSize, 10*BlockSize), "past the end")
		size, err := f.Size()
		require.NoError(t, err)
		require.Equal(t, int64(3*BlockSize), size)
		q := make([]byte, 3*BlockSize)
		_, err = f.ReadAt(q, 0)
		require.NoError(t, err)
		require.Equal(t, p[:BlockSize], q[:BlockSize])
		require.Equal(t, make([]byte, 2*BlockSize), q[BlockSize:])
	})
}

// TestOSFSWriteZeros covers the Punch fallback for filesystems without hole
// punching.
func TestOSFSWriteZeros(t *testing.T) {
	forDirect(t, func(t *testing.T, o *OSFS) {
		f, err := o.Create(filepath.Join(t.TempDir(), "data"))
		require.NoError(t, err)
		defer f.Close()
		p := unaligned(t, 3*BlockSize)
		_, err = f.WriteAt(p, 0)
		require.NoError(t, err)

		require.NoError(t, f.(*osFile).writeZeros(BlockSize, 1<<30))
		size, err := f.Size()
		require.NoError(t, err)
		require.Equal(t, int64(3*BlockSize), size, "zeros stop at the end, as KEEP_SIZE does")
		q := make([]byte, 3*BlockSize)
		_, err = f.ReadAt(q, 0)
		require.NoError(t, err)
		require.Equal(t, p[:BlockSize], q[:BlockSize])
		require.Equal(t, make([]byte, 2*BlockSize), q[BlockSize:])
	})
}

func TestOSFSLock(t *testing.T) {
	name := filepath.Join(t.TempDir(), "LOCK")
	l, err := NewOSFS(false).Lock(name)
	require.NoError(t, err)

	_, err = NewOSFS(false).Lock(name)
	require.ErrorIs(t, err, ErrLocked)
	require.EqualError(t, err, "blob: lock "+name+": locked by another process")

	require.NoError(t, l.Close())
	l, err = NewOSFS(true).Lock(name)
	require.NoError(t, err)
	require.NoError(t, l.Close())
	require.Error(t, l.Close())
}

func BenchmarkOSFSWriteSync(b *testing.B) {
	for _, direct := range []bool{false, true} {
		b.Run(map[bool]string{false: "buffered", true: "direct"}[direct], func(b *testing.B) {
			f, err := NewOSFS(direct).Create(filepath.Join(b.TempDir(), "data"))
			require.NoError(b, err)
			defer f.Close()
			p := directio.AlignedBlock(BlockSize)
			b.SetBytes(BlockSize)
			var off int64
			for b.Loop() {
				if _, err := f.WriteAt(p, off); err != nil {
					b.Fatal(err)
				}
				if err := f.Sync(); err != nil {
					b.Fatal(err)
				}
				off = (off + BlockSize) % (256 * BlockSize)
			}
		})
	}
}

// Long reads of a direct file bypass the page cache; short or unaligned
// ones go through it. Both see every completed write, and a long read that
// reaches the end of the file stops there.
func TestOSFSLongAndShortReads(t *testing.T) {
	forDirect(t, func(t *testing.T, o *OSFS) {
		name := filepath.Join(t.TempDir(), "data")
		f, err := o.Create(name)
		require.NoError(t, err)
		defer f.Close()
		n := DirectReadMin * 3
		p := unaligned(t, n)
		_, err = f.WriteAt(p, 0)
		require.NoError(t, err)
		for _, rd := range []struct {
			off, n int
		}{
			{0, n},                                 // long, aligned
			{BlockSize, DirectReadMin},             // long, aligned, inside
			{100, DirectReadMin},                   // long, unaligned offset
			{BlockSize, DirectReadMin - BlockSize}, // short
			{n - DirectReadMin, DirectReadMin},     // long, to the end
		} {
			q := unaligned(t, rd.n)
			got, err := f.ReadAt(q, int64(rd.off))
			require.NoError(t, err, "%+v", rd)
			require.Equal(t, rd.n, got)
			require.Equal(t, p[rd.off:rd.off+rd.n], q, "%+v", rd)
		}
		// A cached page, then a direct overwrite, then both kinds of read.
		short := make([]byte, 100)
		_, err = f.ReadAt(short, 0)
		require.NoError(t, err)
		p2 := unaligned(t, DirectReadMin)
		_, err = f.WriteAt(p2, 0)
		require.NoError(t, err)
		_, err = f.ReadAt(short, 0)
		require.NoError(t, err)
		require.Equal(t, p2[:100], short)
		long := unaligned(t, DirectReadMin)
		_, err = f.ReadAt(long, 0)
		require.NoError(t, err)
		require.Equal(t, p2, long)
		// A long read past the end: what is there, and EOF.
		past := unaligned(t, DirectReadMin)
		got, err := f.ReadAt(past, int64(n-BlockSize))
		require.ErrorIs(t, err, io.EOF)
		require.Equal(t, BlockSize, got)
		require.Equal(t, p[n-BlockSize:], past[:got])
	})
}
