package vos

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"

	"vosfs/alloc"
	"vosfs/blob"
	"vosfs/pool"
	"vosfs/umem"
	"vosfs/wal"
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

func TestAddRangeKeepsRangesSortedAndCoalesced(t *testing.T) {
	seg := func(lo, hi uint64) Segment { return Segment{Off: lo, Len: hi - lo} }
	for _, tc := range []struct {
		name   string
		start  []Segment
		lo, hi uint64
		want   []Segment
	}{
		{"into nothing", nil, 10, 20, []Segment{seg(10, 20)}},
		{"empty range", []Segment{seg(10, 20)}, 5, 5, []Segment{seg(10, 20)}},
		{"before", []Segment{seg(10, 20)}, 0, 5, []Segment{seg(0, 5), seg(10, 20)}},
		{"after", []Segment{seg(10, 20)}, 30, 40, []Segment{seg(10, 20), seg(30, 40)}},
		{"touching below", []Segment{seg(10, 20)}, 5, 10, []Segment{seg(5, 20)}},
		{"touching above", []Segment{seg(10, 20)}, 20, 25, []Segment{seg(10, 25)}},
		{"inside", []Segment{seg(10, 20)}, 12, 15, []Segment{seg(10, 20)}},
		{"bridging two", []Segment{seg(0, 5), seg(10, 20), seg(30, 40)}, 3, 12, []Segment{seg(0, 20), seg(30, 40)}},
		{"covering all", []Segment{seg(0, 5), seg(10, 20), seg(30, 40)}, 0, 50, []Segment{seg(0, 50)}},
		{"between", []Segment{seg(0, 5), seg(30, 40)}, 10, 20, []Segment{seg(0, 5), seg(10, 20), seg(30, 40)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := addRange(append([]Segment(nil), tc.start...), tc.lo, tc.hi)
			require.Equal(t, tc.want, got)
		})
	}
}

// BenchmarkAggregateManyExtents: one array written as many small extents,
// the shape random 4 KiB writes leave in the heap, aggregated (and
// migrated) in one pass.
func BenchmarkAggregateManyExtents(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				mfs := blob.NewMemFS(1)
				cfg := pool.Config{DataSize: pool.DataOffset + 256<<20, MetaSize: 256 << 20, WALSize: wal.RingOffset + 64<<20}
				require.NoError(b, pool.Create(mfs, "pool", cfg))
				p, err := pool.Open(mfs, "pool", pool.Options{})
				require.NoError(b, err)
				s, err := Open(p, Options{AggregateInterval: -1, FoldChain: -1, Threshold: 64 << 10})
				require.NoError(b, err)
				rng := rand.New(rand.NewSource(1))
				arr := path(3, "d", "")
				buf := make([]byte, 4096)
				for w := 0; w < n; {
					_, err := s.Update(context.Background(), UpdateOptions{}, func(tx *Tx) error {
						for k := 0; k < 64 && w < n; k++ {
							// Two writes to one block of a transaction
							// overlap: one per block of a batch of 64.
							off := uint64(rng.Intn(n/64+1)*64+k) * 4096
							if err := tx.WriteArray(arr, off, buf, nil); err != nil {
								return err
							}
							w++
						}
						return nil
					})
					require.NoError(b, err)
				}
				b.StartTimer()
				_, err = s.Aggregate(context.Background())
				require.NoError(b, err)
				b.StopTimer()
				s.Close()
				p.Close()
			}
		})
	}
}
