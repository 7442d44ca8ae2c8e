package pool

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"vosfs/alloc"
	"vosfs/blob"
	"vosfs/umem"
)

// openTest creates and opens a small pool on a MemFS; the pool is checked
// and closed on cleanup unless the test closed it.
func openTest(t *testing.T) (*blob.MemFS, *Pool) {
	t.Helper()
	mfs := blob.NewMemFS(1)
	require.NoError(t, Create(mfs, "pool", crashConfig()))
	p, err := Open(mfs, "pool", crashOptions())
	require.NoError(t, err)
	return mfs, p
}

func TestCreateOpenCloseClean(t *testing.T) {
	mfs, p := openTest(t)
	require.True(t, p.Recovery().Clean)
	require.NoError(t, p.Check(Refs{}))
	s := p.Stats()
	require.Equal(t, uint64(2<<20/BlockSize), s.Data.Blocks)
	require.Equal(t, s.Data.Blocks, s.Data.Free)
	require.Equal(t, p.Layout().ArenaSize, s.Heap.Free+s.Heap.Spare, "all free, the deletion reserve set aside")
	require.Equal(t, DeletionReserve(p.Layout().ArenaSize), s.Heap.Spare)
	require.NoError(t, p.Close())
	require.ErrorIs(t, p.Close(), ErrClosed)
	_, err := p.Update(context.Background(), func(*Tx) error { return nil })
	require.ErrorIs(t, err, ErrClosed)

	p, err = Open(mfs, "pool", crashOptions())
	require.NoError(t, err)
	require.True(t, p.Recovery().Clean)
	require.Zero(t, p.Recovery().Records)
	require.NoError(t, p.Close())
}

func TestCreateRefusesExistingPool(t *testing.T) {
	mfs, p := openTest(t)
	require.NoError(t, p.Close())
	err := Create(mfs, "pool", crashConfig())
	require.ErrorIs(t, err, fs.ErrExist)
	require.ErrorContains(t, err, "wal.blob")
}

func TestCreateRejectsBadGeometry(t *testing.T) {
	for _, cfg := range []Config{
		{DataSize: 100},
		{MetaSize: 4096},
		{WALSize: 64 << 10},
		{WALSize: 1 << 20, RecordLimit: 1 << 20},
		{DataSize: 100 << 40, MetaSize: 256 << 20}, // its bitmap alone is 3.1 GiB
	} {
		mfs := blob.NewMemFS(1)
		err := Create(mfs, "pool", cfg)
		require.ErrorIs(t, err, ErrBadPool, "%+v", cfg)
		_, err = mfs.Stat("pool")
		require.ErrorIs(t, err, fs.ErrNotExist, "a refused geometry leaves nothing behind")
	}
}

func TestMinMetaSizeFor(t *testing.T) {
	for _, data := range []uint64{MinDataSize + DataOffset, DefaultDataSize, 1 << 40, 100 << 40} {
		meta := max(MinMetaSizeFor(data), MinMetaSize)
		l, err := computeLayout(meta-HeapOffset, (data-DataOffset)/BlockSize)
		require.NoError(t, err, "data %d, meta %d", data, meta)
		require.GreaterOrEqual(t, l.ArenaSize, uint64(MinArenaSize)*3/4, "data %d: the arena is most of MinArenaSize", data)
		require.NoError(t, (&Config{DataSize: data, MetaSize: meta, WALSize: DefaultWALSize, RecordLimit: DefaultRecordLimit}).validate())
		if meta > MinMetaSize {
			require.Error(t, (&Config{DataSize: data, MetaSize: meta - BlockSize, WALSize: DefaultWALSize, RecordLimit: DefaultRecordLimit}).validate())
		}
	}
}

func TestOpenTwiceIsRefused(t *testing.T) {
	mfs, p := openTest(t)
	defer p.Close()
	_, err := Open(mfs, "pool", crashOptions())
	require.ErrorIs(t, err, blob.ErrLocked)
}

// Opening a damaged, foreign or truncated pool fails with an error naming
// the file and the problem, and writes nothing.
func TestOpenRefusesDamage(t *testing.T) {
	other := blob.NewMemFS(2)
	require.NoError(t, Create(other, "other", crashConfig()))
	foreignMeta, err := other.ReadFile("other/meta.blob")
	require.NoError(t, err)

	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, mfs *blob.MemFS)
		want   []string
	}{
		{"missing log", func(t *testing.T, mfs *blob.MemFS) { require.NoError(t, mfs.Remove("pool/wal.blob")) }, []string{"wal.blob"}},
		{"log headers damaged", func(t *testing.T, mfs *blob.MemFS) {
			overwrite(t, mfs, "pool/wal.blob", 4096+20, []byte{0xff}) // a new pool's header is in slot 1
			overwrite(t, mfs, "pool/wal.blob", 0, []byte("junk"))
		}, []string{"wal.blob", "checksum mismatch"}},
		{"meta header damaged", func(t *testing.T, mfs *blob.MemFS) { overwrite(t, mfs, "pool/meta.blob", 33, []byte{0x77}) }, []string{"meta.blob", "checksum"}},
		{"data magic", func(t *testing.T, mfs *blob.MemFS) { overwrite(t, mfs, "pool/data.blob", 0, []byte("NOTVOSFS")) }, []string{"data.blob", "magic"}},
		{"foreign meta", func(t *testing.T, mfs *blob.MemFS) { overwrite(t, mfs, "pool/meta.blob", 0, foreignMeta[:BlockSize]) }, []string{"meta.blob", "belongs to pool"}},
		{"truncated data", func(t *testing.T, mfs *blob.MemFS) {
			f, err := mfs.Open("pool/data.blob")
			require.NoError(t, err)
			require.NoError(t, f.Truncate(1<<20))
			require.NoError(t, f.Sync())
		}, []string{"data.blob", "truncated"}},
		{"heap superblock damaged", func(t *testing.T, mfs *blob.MemFS) { overwrite(t, mfs, "pool/meta.blob", HeapOffset+20, []byte{1}) }, []string{"meta.blob", "superblock"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mfs := blob.NewMemFS(3)
			require.NoError(t, Create(mfs, "pool", crashConfig()))
			tc.damage(t, mfs)
			before := snapshot(t, mfs)
			_, err := Open(mfs, "pool", crashOptions())
			require.Error(t, err)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
			require.Equal(t, before, snapshot(t, mfs), "a refused open writes nothing")
		})
	}
}

func overwrite(t *testing.T, mfs *blob.MemFS, name string, off int64, p []byte) {
	f, err := mfs.Open(name)
	require.NoError(t, err)
	_, err = f.WriteAt(p, off)
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	require.NoError(t, f.Close())
}

func snapshot(t *testing.T, mfs *blob.MemFS) map[string]string {
	m := map[string]string{}
	for _, name := range []string{WALFile, MetaFile, DataFile} {
		b, err := mfs.ReadFile(filepath.Join("pool", name))
		if err == nil {
			m[name] = string(b)
		}
	}
	return m
}

func TestDataBlobFullIsENOSPCAndLosesNothing(t *testing.T) {
	_, p := openTest(t)
	defer p.Close()
	ctx := context.Background()
	m := newModel()
	w := &workload{p: p, m: m, largeMax: 8}
	require.NoError(t, w.setup(ctx))
	var held [][]alloc.Extent
	for {
		exts, err := p.Extents().Reserve(nil, 64)
		if err != nil {
			require.ErrorIs(t, err, alloc.ErrNoSpace)
			break
		}
		held = append(held, exts)
	}
	// Everything reserved: a further reservation fails, nothing changes.
	_, err := p.Extents().Reserve(nil, 1)
	require.ErrorIs(t, err, alloc.ErrNoSpace)
	require.NoError(t, verify(p, m))
	for _, e := range held {
		p.Extents().Cancel(e)
	}
	require.Equal(t, p.Stats().Data.Blocks, p.Stats().Data.Free)
}

func TestHeapFullIsENOSPCAndAborts(t *testing.T) {
	_, p := openTest(t)
	defer p.Close()
	ctx := context.Background()
	_, err := p.Update(ctx, func(tx *Tx) error {
		_, err := tx.Alloc(p.Layout().ArenaSize + 64)
		return err
	})
	require.ErrorIs(t, err, alloc.ErrNoSpace)
	require.Equal(t, uint64(1), p.Stats().Aborts)
	require.NoError(t, p.Check(Refs{}))
}

// A failed data write makes the pool fail-stop: the commit and every later
// one fail with ErrFailed; reopening recovers the acknowledged state.
func TestDataWriteErrorIsFailStop(t *testing.T) {
	mfs, p := openTest(t)
	ctx := context.Background()
	m := newModel()
	w := &workload{p: p, m: m, largeMax: 4}
	require.NoError(t, w.setup(ctx))
	rng := newRand(1)
	for i := 0; i < 10; i++ {
		require.NoError(t, w.step(ctx, rng))
	}
	mfs.InjectFile("pool/data.blob", blob.OpWrite, 1, syscall.EIO)
	var err error
	for i := 0; i < 50 && err == nil; i++ {
		err = w.step(ctx, rng)
	}
	require.ErrorIs(t, err, ErrFailed)
	require.ErrorIs(t, err, syscall.EIO)
	require.ErrorIs(t, w.step(ctx, rng), ErrFailed, "a failed pool refuses writes")
	require.ErrorIs(t, p.Close(), ErrFailed)

	p, err = Open(mfs, "pool", crashOptions())
	require.NoError(t, err)
	defer p.Close()
	require.False(t, p.Recovery().Clean)
	require.NoError(t, verify(p, m))
}

func TestCheckpointWriteErrorIsFailStop(t *testing.T) {
	mfs, p := openTest(t)
	ctx := context.Background()
	m := newModel()
	w := &workload{p: p, m: m, largeMax: 4}
	require.NoError(t, w.setup(ctx))
	mfs.InjectFile("pool/meta.blob", blob.OpWrite, 1, syscall.EIO)
	err := p.Checkpoint()
	require.ErrorIs(t, err, syscall.EIO)
	require.Eventually(t, func() bool { return errors.Is(p.Err(), ErrFailed) }, testTimeout, pollEvery)
	require.ErrorIs(t, w.step(ctx, newRand(2)), ErrFailed)
	p.Close()
	p, err = Open(mfs, "pool", crashOptions())
	require.NoError(t, err)
	defer p.Close()
	require.NoError(t, verify(p, m))
}

func TestCheckerFindsLeak(t *testing.T) {
	_, p := openTest(t)
	defer p.Close()
	_, err := p.Update(context.Background(), func(tx *Tx) error {
		_, err := tx.Alloc(100)
		return err
	})
	require.NoError(t, err)
	err = p.Check(Refs{})
	require.ErrorContains(t, err, "not referenced")
	var off uint64
	require.NoError(t, p.View(func(r umem.Reader) error { off = p.Layout().ArenaOffset; return nil }))
	require.NoError(t, p.Check(Refs{Heap: []alloc.Span{{Off: off, Size: 128}}}))
}

func TestCreateFillZeroTakesTheSpace(t *testing.T) {
	for _, fill := range []Fill{FillSparse, FillZero} {
		t.Run(fill.String(), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "pool")
			cfg := Config{DataSize: 16 << 20, MetaSize: 4 << 20, WALSize: 4 << 20, Fill: fill}
			var steps []string
			cfg.Progress = func(step string, done, total uint64) {
				if done == total {
					steps = append(steps, step)
				}
			}
			require.NoError(t, Create(blob.NewOSFS(true), dir, cfg))
			for name, size := range map[string]int64{DataFile: 16 << 20, MetaFile: 4 << 20} {
				var st syscall.Stat_t
				require.NoError(t, syscall.Stat(filepath.Join(dir, name), &st))
				require.Equal(t, size, st.Size, name)
				if fill == FillZero {
					require.GreaterOrEqual(t, st.Blocks*512, size, "%s is not all allocated", name)
				} else {
					require.Less(t, st.Blocks*512, size/2, "%s is not sparse", name)
				}
			}
			if fill == FillZero {
				require.Equal(t, []string{"zero data", "zero metadata", "zero log"}, steps)
			} else {
				require.Equal(t, []string{"zero log"}, steps)
			}
			p, err := Open(blob.NewOSFS(true), dir, Options{})
			require.NoError(t, err)
			require.NoError(t, p.Check(Refs{}))
			require.NoError(t, p.Close())
		})
	}
	_, err := ParseFill("lazy")
	require.ErrorContains(t, err, `unknown fill "lazy"`)
	f, err := ParseFill("zero")
	require.NoError(t, err)
	require.Equal(t, FillZero, f)
}

func TestCreateOnAFullDiskLeavesNothing(t *testing.T) {
	// The disk fills while the metadata blob is zeroed: the data blob,
	// already written, goes too; the directory is left as it was.
	mfs := blob.NewMemFS(1)
	cfg := crashConfig()
	cfg.Fill = FillZero
	mfs.InjectFile(filepath.Join("pool", MetaFile), blob.OpWrite, 3, syscall.ENOSPC)
	err := Create(mfs, "pool", cfg)
	require.ErrorIs(t, err, syscall.ENOSPC)
	for _, name := range []string{WALFile, MetaFile, DataFile} {
		_, err := mfs.Stat(filepath.Join("pool", name))
		require.ErrorIs(t, err, fs.ErrNotExist, name)
	}
	// Nothing is in the way of a second try.
	require.NoError(t, Create(mfs, "pool", crashConfig()))
}
