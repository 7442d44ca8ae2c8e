package vos

import (
	"bytes"
	"context"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"

	"vosfs/alloc"
	"vosfs/blob"
	"vosfs/pool"
	"vosfs/umem"
)

// openStoreThreshold is openStore with a threshold of its own.
func openStoreThreshold(t *testing.T, threshold int) (*blob.MemFS, *Store) {
	t.Helper()
	mfs := blob.NewMemFS(1)
	require.NoError(t, pool.Create(mfs, "pool", testConfig()))
	p, err := pool.Open(mfs, "pool", pool.Options{})
	require.NoError(t, err)
	s, err := Open(p, Options{AggregateInterval: -1, Threshold: threshold})
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, s.Check(), "store check on teardown")
		s.Close()
		p.Close()
	})
	return mfs, s
}

// arrayState is what a view shows of an array: its bytes and its holes.
func arrayState(t *testing.T, v *View, p Path, n uint64) ([]byte, []Segment) {
	t.Helper()
	buf := make([]byte, n)
	require.NoError(t, v.ReadArray(p, 0, buf))
	segs, err := v.Segments(p, 0, n)
	require.NoError(t, err)
	var holes []Segment
	for _, sg := range segs {
		if sg.Hole {
			holes = append(holes, Segment{Off: sg.Off, Len: sg.Len, Hole: true})
		}
	}
	return buf, holes
}

// heapKinds counts the array extents of p by where their bytes are.
func heapKinds(t *testing.T, s *Store, p Path) (heap, data int) {
	t.Helper()
	require.NoError(t, s.p.View(func(r umem.Reader) error {
		prefix := append(p.prefix(nil), subExt)
		it := s.tree.Seek(r, prefix)
		for it.Next() && bytes.HasPrefix(it.Key(), prefix) {
			rc, err := decodeRec(it.Value())
			require.NoError(t, err)
			if rc.kind == recData {
				data++
			} else {
				heap++
			}
		}
		return it.Err()
	}))
	return heap, data
}

func TestMigrationMovesHeapRunsToTheDataBlob(t *testing.T) {
	_, s := openStoreThreshold(t, 64<<10)
	ctx := context.Background()
	p := path(7, "d", "")
	rng := rand.New(rand.NewSource(5))
	write := func(off uint64, n int) {
		b := make([]byte, n)
		rng.Read(b)
		_, err := s.Update(ctx, UpdateOptions{}, func(tx *Tx) error { return tx.WriteArray(p, off, b, nil) })
		require.NoError(t, err)
	}
	// A 40 KiB run of 1 KiB writes, partly overwritten; a hole; a second
	// run of 8 KiB writes at an unaligned offset; a lone 100-byte write
	// (too short to move); an array punch inside the first run.
	for off := uint64(0); off < 40<<10; off += 1 << 10 {
		write(off, 1<<10)
	}
	write(5000, 3000)
	_, err := s.Update(ctx, UpdateOptions{}, func(tx *Tx) error { return tx.PunchArray(p, 30<<10, 31<<10) })
	require.NoError(t, err)
	for off := uint64(100<<10 + 123); off < 140<<10; off += 8 << 10 {
		write(off, 8<<10)
	}
	write(200<<10, 100)

	const n = 256 << 10
	v := s.Latest()
	wantBytes, wantHoles := arrayState(t, v, p, n)
	v.Close()
	heapBefore := s.p.HeapAlloc().Stats().Free
	h, d := heapKinds(t, s, p)
	require.Zero(t, d)
	require.Greater(t, h, 40)

	_, err = s.Aggregate(ctx)
	require.NoError(t, err)
	v = s.Latest()
	gotBytes, gotHoles := arrayState(t, v, p, n)
	v.Close()
	require.Equal(t, wantBytes, gotBytes)
	require.Equal(t, wantHoles, gotHoles)
	h, d = heapKinds(t, s, p)
	// The two halves of the punched first run, the second run, and the
	// lone write left in the heap.
	require.Equal(t, 1, h)
	require.Equal(t, 3, d)
	require.Equal(t, uint64(30<<10+9<<10+40<<10), s.Stats().MigratedBytes)
	require.Greater(t, s.p.HeapAlloc().Stats().Free, heapBefore+70<<10)

	// Nothing more to move: a second pass changes nothing.
	_, err = s.Aggregate(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(30<<10+9<<10+40<<10), s.Stats().MigratedBytes)
}

func TestMigrationKeepsSnapshotsAndNewerWrites(t *testing.T) {
	_, s := openStoreThreshold(t, 64<<10)
	ctx := context.Background()
	p := path(8, "d", "")
	fill := func(off uint64, n int, c byte) {
		b := make([]byte, n)
		for i := range b {
			b[i] = c + byte(i%7)
		}
		_, err := s.Update(ctx, UpdateOptions{}, func(tx *Tx) error { return tx.WriteArray(p, off, b, nil) })
		require.NoError(t, err)
	}
	for off := uint64(0); off < 16<<10; off += 2 << 10 {
		fill(off, 2<<10, 'a')
	}
	_, err := s.CreateSnapshot(ctx, "old")
	require.NoError(t, err)
	// Above the snapshot: overwrites of part of the run, which must keep
	// shadowing the migrated extent.
	fill(1000, 5000, 'x')
	fill(12<<10, 2<<10, 'y')

	const n = 32 << 10
	snap, err := s.Snapshot("old")
	require.NoError(t, err)
	wantOld, wantOldHoles := arrayState(t, snap, p, n)
	snap.Close()
	v := s.Latest()
	wantNew, wantNewHoles := arrayState(t, v, p, n)
	v.Close()

	_, err = s.Aggregate(ctx)
	require.NoError(t, err)
	// The run below the snapshot moved; the two newer writes are above
	// the low-water mark and stay where they are.
	require.Equal(t, uint64(16<<10), s.Stats().MigratedBytes)
	h, d := heapKinds(t, s, p)
	require.Equal(t, 2, h)
	require.Equal(t, 1, d)

	snap, err = s.Snapshot("old")
	require.NoError(t, err)
	gotOld, gotOldHoles := arrayState(t, snap, p, n)
	snap.Close()
	v = s.Latest()
	gotNew, gotNewHoles := arrayState(t, v, p, n)
	v.Close()
	require.Equal(t, wantOld, gotOld)
	require.Equal(t, wantOldHoles, gotOldHoles)
	require.Equal(t, wantNew, gotNew)
	require.Equal(t, wantNewHoles, gotNewHoles)

	// With the snapshot gone, the 5,000-byte overwrite moves too; the
	// 2 KiB one, shorter than a block, stays in the heap.
	require.NoError(t, s.DeleteSnapshot(ctx, "old"))
	_, err = s.Aggregate(ctx)
	require.NoError(t, err)
	v = s.Latest()
	gotNew, gotNewHoles = arrayState(t, v, p, n)
	v.Close()
	require.Equal(t, wantNew, gotNew)
	require.Equal(t, wantNewHoles, gotNewHoles)
	h, d = heapKinds(t, s, p)
	require.Equal(t, 1, h)
	require.Equal(t, 2, d)
	require.Equal(t, uint64(16<<10+5000), s.Stats().MigratedBytes)
}

func TestMigrationLeavesAnExtentSplitByAHole(t *testing.T) {
	_, s := openStoreThreshold(t, 64<<10)
	ctx := context.Background()
	p := path(9, "d", "")
	b := make([]byte, 12<<10)
	for i := range b {
		b[i] = byte(i)
	}
	_, err := s.Update(ctx, UpdateOptions{}, func(tx *Tx) error { return tx.WriteArray(p, 0, b, nil) })
	require.NoError(t, err)
	// A punch cuts the extent's visible bytes into [0, 4 KiB) and
	// [5 KiB, 12 KiB): two runs, neither of which holds all of it.
	_, err = s.Update(ctx, UpdateOptions{}, func(tx *Tx) error { return tx.PunchArray(p, 4<<10, 5<<10) })
	require.NoError(t, err)
	_, err = s.Aggregate(ctx)
	require.NoError(t, err)
	require.Zero(t, s.Stats().MigratedBytes)
	v := s.Latest()
	defer v.Close()
	got := make([]byte, 12<<10)
	require.NoError(t, v.ReadArray(p, 0, got))
	want := append([]byte{}, b...)
	clear(want[4<<10 : 5<<10])
	require.Equal(t, want, got)
}

func TestMigrationOfAFullDataBlobLeavesTheHeap(t *testing.T) {
	_, s := openStoreThreshold(t, 64<<10)
	ctx := context.Background()
	p := path(10, "d", "")
	for off := uint64(0); off < 32<<10; off += 4 << 10 {
		_, err := s.Update(ctx, UpdateOptions{}, func(tx *Tx) error { return tx.WriteArray(p, off, make([]byte, 4<<10), nil) })
		require.NoError(t, err)
	}
	// Every data block held by a reservation: no room to move to.
	var held []alloc.Extent
	for {
		exts, err := s.p.Extents().Reserve(nil, 1)
		if err != nil {
			break
		}
		held = append(held, exts...)
	}
	_, err := s.Aggregate(ctx)
	require.NoError(t, err)
	require.Zero(t, s.Stats().MigratedBytes)
	s.p.Extents().Cancel(held)
	_, err = s.Aggregate(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(32<<10), s.Stats().MigratedBytes)
}

func TestHeapPastHalfSendsBlocksToTheDataBlob(t *testing.T) {
	_, s := openStoreThreshold(t, 64<<10)
	ctx := context.Background()
	p := path(11, "d", "")
	write := func(off uint64) {
		_, err := s.Update(ctx, UpdateOptions{}, func(tx *Tx) error { return tx.WriteArray(p, off, make([]byte, 8<<10), nil) })
		require.NoError(t, err)
	}
	write(0)
	h, d := heapKinds(t, s, p)
	require.Equal(t, 1, h)
	require.Zero(t, d)
	// Fill the heap past half with values under a block, which always go
	// there.
	for i := 0; ; i++ {
		st := s.p.HeapAlloc().Stats()
		if st.Free < st.Total/2 {
			break
		}
		_, err := s.Update(ctx, UpdateOptions{}, func(tx *Tx) error {
			for j := 0; j < 64; j++ {
				if err := tx.Put(path(12, "v", string(rune('a'+j))+string(rune(i))), make([]byte, 3000)); err != nil {
					return err
				}
			}
			return nil
		})
		require.NoError(t, err)
	}
	write(64 << 10)
	h, d = heapKinds(t, s, p)
	require.Equal(t, 1, h)
	require.Equal(t, 1, d)
}
