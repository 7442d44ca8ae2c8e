package vos

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"vosfs/alloc"
	"vosfs/blob"
	"vosfs/pool"
)

func testConfig() pool.Config {
	return pool.Config{DataSize: pool.DataOffset + 16<<20, MetaSize: 16 << 20, WALSize: 8192 + 4<<20, RecordLimit: 1 << 20}
}

// openStore opens a store on a fresh MemFS pool; it is checked and closed
// on cleanup.
func openStore(t *testing.T) (*blob.MemFS, *Store) {
	t.Helper()
	mfs := blob.NewMemFS(1)
	require.NoError(t, pool.Create(mfs, "pool", testConfig()))
	return mfs, reopenStore(t, mfs)
}

func reopenStore(t *testing.T, mfs *blob.MemFS) *Store {
	t.Helper()
	p, err := pool.Open(mfs, "pool", pool.Options{})
	require.NoError(t, err)
	s, err := Open(p, Options{AggregateInterval: -1})
	require.NoError(t, err)
	t.Cleanup(func() {
		// A store whose disk a test crashed is abandoned, not checked.
		if err := s.Check(); !errors.Is(err, blob.ErrCrashed) {
			require.NoError(t, err, "store check on teardown")
		}
		s.Close()
		p.Close()
	})
	return s
}

func path(oid uint64, dkey, akey string) Path {
	return Path{OID: oid, Dkey: []byte(dkey), Akey: []byte(akey)}
}

func put(t *testing.T, s *Store, p Path, val string) Result {
	t.Helper()
	res, err := s.Update(context.Background(), UpdateOptions{}, func(tx *Tx) error { return tx.Put(p, []byte(val)) })
	require.NoError(t, err)
	return res
}

func get(t *testing.T, s *Store, p Path) (string, bool) {
	t.Helper()
	v := s.Latest()
	defer v.Close()
	b, ok, err := v.Get(p)
	require.NoError(t, err)
	return string(b), ok
}

func TestPutGetVersions(t *testing.T) {
	_, s := openStore(t)
	a := path(1, "d", "a")
	r1 := put(t, s, a, "one")
	r2 := put(t, s, a, "two, a value long enough for the heap")
	require.Equal(t, r1.Epoch+1, r2.Epoch)
	got, ok := get(t, s, a)
	require.True(t, ok)
	require.Equal(t, "two, a value long enough for the heap", got)

	old := &View{s: s, epoch: s.pin(r1.Epoch)}
	defer old.Close()
	b, ok, err := old.Get(a)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "one", string(b), "a read at an older epoch sees the older version")

	_, err = s.Update(context.Background(), UpdateOptions{}, func(tx *Tx) error { return tx.Punch(a) })
	require.NoError(t, err)
	_, ok = get(t, s, a)
	require.False(t, ok)
}

func TestLargeValueGoesToDataBlob(t *testing.T) {
	_, s := openStore(t)
	big := make([]byte, DefaultThreshold+4096+100)
	for i := range big {
		big[i] = byte(i * 7)
	}
	p := path(2, "d", "big")
	_, err := s.Update(context.Background(), UpdateOptions{}, func(tx *Tx) error { return tx.Put(p, big) })
	require.NoError(t, err)
	require.Equal(t, uint64(DefaultThreshold/4096+2), s.p.Stats().Data.Blocks-s.p.Stats().Data.Free)
	got, ok := get(t, s, p)
	require.True(t, ok)
	require.Equal(t, string(big), got)
}

func TestArrayWriteReadPunch(t *testing.T) {
	_, s := openStore(t)
	p := path(3, "data", "")
	ctx := context.Background()
	body := make([]byte, 3*4096)
	for i := range body {
		body[i] = byte(i)
	}
	_, err := s.Update(ctx, UpdateOptions{}, func(tx *Tx) error { return tx.WriteArray(p, 1000, body, nil) })
	require.NoError(t, err)
	_, err = s.Update(ctx, UpdateOptions{}, func(tx *Tx) error { return tx.WriteArray(p, 5000, []byte("overwrite"), nil) })
	require.NoError(t, err)
	_, err = s.Update(ctx, UpdateOptions{}, func(tx *Tx) error { return tx.PunchArray(p, 9000, 9100) })
	require.NoError(t, err)

	want := make([]byte, 20000)
	copy(want[1000:], body)
	copy(want[5000:], "overwrite")
	clear(want[9000:9100])
	v := s.Latest()
	defer v.Close()
	got := make([]byte, 20000)
	require.NoError(t, v.ReadArray(p, 0, got))
	require.Equal(t, want, got)

	segs, err := v.Segments(p, 0, 20000)
	require.NoError(t, err)
	var holes [][2]uint64
	for _, sg := range segs {
		if sg.Hole {
			holes = append(holes, [2]uint64{sg.Off, sg.Off + sg.Len})
		}
	}
	require.Equal(t, [][2]uint64{{0, 1000}, {9000, 9100}, {1000 + 3*4096, 20000}}, holes)
}

func TestMergeOperators(t *testing.T) {
	_, s := openStore(t)
	ctx := context.Background()
	c := path(4, "counter", "")
	l := path(4, "log", "")
	for i := 1; i <= 10; i++ {
		_, err := s.Update(ctx, UpdateOptions{}, func(tx *Tx) error {
			if err := tx.Merge(c, MergeAdd64, binary.LittleEndian.AppendUint64(nil, uint64(i))); err != nil {
				return err
			}
			return tx.Merge(l, MergeConcat, []byte{byte('a' + i - 1)})
		})
		require.NoError(t, err)
	}
	v, ok := get(t, s, c)
	require.True(t, ok)
	require.Equal(t, uint64(55), binary.LittleEndian.Uint64([]byte(v)))
	v, _ = get(t, s, l)
	require.Equal(t, "abcdefghij", v)

	n, err := s.Aggregate(ctx)
	require.NoError(t, err)
	require.Equal(t, 18+2, n, "9 older operands of each dropped, the top ones folded")
	v, _ = get(t, s, c)
	require.Equal(t, uint64(55), binary.LittleEndian.Uint64([]byte(v)))
	v, _ = get(t, s, l)
	require.Equal(t, "abcdefghij", v)
}

func TestPredicates(t *testing.T) {
	_, s := openStore(t)
	ctx := context.Background()
	a := path(5, "d", "a")
	put(t, s, a, "x")
	res, err := s.Update(ctx, UpdateOptions{}, func(tx *Tx) error {
		if err := tx.Predicate(Predicate{Path: a, Kind: Equals, Value: []byte("y")}); err != nil {
			return err
		}
		return tx.Put(path(5, "d", "b"), []byte("never"))
	})
	require.ErrorIs(t, err, ErrPredicate)
	require.Equal(t, PredicateFailure, res.Status)
	require.Equal(t, 0, res.Failed.Index)
	require.Equal(t, "x", string(res.Failed.Saw))
	_, ok := get(t, s, path(5, "d", "b"))
	require.False(t, ok, "nothing applied")

	_, err = s.Update(ctx, UpdateOptions{}, func(tx *Tx) error {
		if err := tx.Predicate(Predicate{Path: path(5, "d", "b"), Kind: Absent}); err != nil {
			return err
		}
		return tx.Put(path(5, "d", "b"), []byte("created"))
	})
	require.NoError(t, err)
	_, err = s.Update(ctx, UpdateOptions{}, func(tx *Tx) error {
		return tx.Predicate(Predicate{Path: path(5, "d", "b"), Kind: Absent})
	})
	require.ErrorIs(t, err, ErrPredicate)
}

func TestListKeys(t *testing.T) {
	_, s := openStore(t)
	ctx := context.Background()
	for _, name := range []string{"b", "a", "c\x00z", "d"} {
		put(t, s, path(6, name, ""), "v")
	}
	_, err := s.Update(ctx, UpdateOptions{}, func(tx *Tx) error { return tx.PunchDkey(6, []byte("b")) })
	require.NoError(t, err)
	v := s.Latest()
	defer v.Close()
	var names []string
	require.NoError(t, v.ListDkeys(6, nil, false, 0, func(k []byte) bool { names = append(names, string(k)); return true }))
	require.Equal(t, []string{"a", "c\x00z", "d"}, names)
	names = nil
	require.NoError(t, v.ListDkeys(6, []byte("a"), true, 1, func(k []byte) bool { names = append(names, string(k)); return true }))
	require.Equal(t, []string{"c\x00z"}, names)
}

func TestSnapshots(t *testing.T) {
	mfs, s := openStore(t)
	ctx := context.Background()
	a := path(7, "d", "a")
	put(t, s, a, "before")
	e, err := s.CreateSnapshot(ctx, "snap1")
	require.NoError(t, err)
	_, err = s.CreateSnapshot(ctx, "snap1")
	require.ErrorIs(t, err, ErrSnapshotExists)
	put(t, s, a, "after")
	sv, err := s.Snapshot("snap1")
	require.NoError(t, err)
	b, _, err := sv.Get(a)
	require.NoError(t, err)
	require.Equal(t, "before", string(b))
	require.Equal(t, e, sv.Epoch())
	sv.Close()

	// Snapshots survive a crash.
	s.p.Sync()
	img := mfs.Crash()
	s2 := reopenStore(t, img)
	require.Equal(t, []SnapshotInfo{{Name: "snap1", Epoch: e}}, s2.Snapshots())
	sv, err = s2.Snapshot("snap1")
	require.NoError(t, err)
	b, _, err = sv.Get(a)
	require.NoError(t, err)
	require.Equal(t, "before", string(b))
	sv.Close()
	require.NoError(t, s2.DeleteSnapshot(ctx, "snap1"))
	require.ErrorIs(t, s2.DeleteSnapshot(ctx, "snap1"), ErrNoSnapshot)
}

// After everything is deleted and aggregated, used space returns to the
// empty store's figure.
func TestAggregationReturnsSpace(t *testing.T) {
	_, s := openStore(t)
	ctx := context.Background()
	empty := s.p.Stats()
	big := make([]byte, 64<<10)
	for i := uint64(1); i <= 20; i++ {
		_, err := s.Update(ctx, UpdateOptions{}, func(tx *Tx) error {
			if err := tx.Put(path(100+i, "d", "small"), []byte("a small value of some size")); err != nil {
				return err
			}
			return tx.WriteArray(path(100+i, "f", ""), 0, big, nil)
		})
		require.NoError(t, err)
	}
	_, err := s.CreateSnapshot(ctx, "keep")
	require.NoError(t, err)
	for i := uint64(1); i <= 20; i++ {
		_, err := s.Update(ctx, UpdateOptions{}, func(tx *Tx) error { return tx.PunchObject(100 + i) })
		require.NoError(t, err)
	}
	_, err = s.Aggregate(ctx)
	require.NoError(t, err)
	require.Less(t, s.p.Stats().Data.Free, empty.Data.Free, "the snapshot still holds the data")
	require.NoError(t, s.DeleteSnapshot(ctx, "keep"))
	_, err = s.Aggregate(ctx)
	require.NoError(t, err)
	require.NoError(t, s.p.Sync())
	st := s.p.Stats()
	s.p.Extents().Age()
	st = s.p.Stats()
	require.Equal(t, empty.Heap.Free, st.Heap.Free)
	require.Equal(t, empty.Data.Free, st.Data.Free)
}

func openStoreB(b *testing.B) (*blob.MemFS, *Store) {
	mfs := blob.NewMemFS(1)
	require.NoError(b, pool.Create(mfs, "pool", testConfig()))
	p, err := pool.Open(mfs, "pool", pool.Options{})
	require.NoError(b, err)
	s, err := Open(p, Options{AggregateInterval: -1})
	require.NoError(b, err)
	b.Cleanup(func() { s.Close(); p.Close() })
	return mfs, s
}

// Overwriting far more than the data blob holds works without background
// aggregation: a reservation that finds no space aggregates first.
func TestNoSpaceAggregatesFirst(t *testing.T) {
	_, s := openStore(t)
	ctx := context.Background()
	buf := make([]byte, 64<<10)
	p := path(1, "f", "")
	for i := 0; i < 1000; i++ { // 64 MB through a 16 MiB data blob
		buf[0] = byte(i)
		_, err := s.Update(ctx, UpdateOptions{}, func(tx *Tx) error { return tx.WriteArray(p, 0, buf, nil) })
		require.NoError(t, err, "write %d", i)
	}
	require.Greater(t, s.Stats().Aggregations, uint64(0))
	got := make([]byte, len(buf))
	v := s.Latest()
	defer v.Close()
	require.NoError(t, v.ReadArray(p, 0, got))
	require.Equal(t, buf, got)
}

func TestArrayWriteIntoFragmentedSpace(t *testing.T) {
	_, s := openStore(t)
	// Hold every block, then let every other one go: the free space is
	// all single blocks, so a 64 KiB write lands in 16 extents.
	vea := s.p.Extents()
	var held []alloc.Extent
	for {
		exts, err := vea.Reserve(nil, 1)
		if errors.Is(err, alloc.ErrNoSpace) {
			break
		}
		require.NoError(t, err)
		held = append(held, exts...)
	}
	require.Greater(t, len(held), 64)
	var keep []alloc.Extent
	for i, e := range held {
		if i%2 == 0 {
			vea.Cancel([]alloc.Extent{e})
		} else {
			keep = append(keep, e)
		}
	}
	p := path(3, "data", "")
	body := make([]byte, 64<<10)
	for i := range body {
		body[i] = byte(i * 7)
	}
	_, err := s.Update(context.Background(), UpdateOptions{}, func(tx *Tx) error { return tx.WriteArray(p, 8192, body, nil) })
	require.NoError(t, err)
	vea.Cancel(keep)

	v := s.Latest()
	defer v.Close()
	got := make([]byte, len(body))
	require.NoError(t, v.ReadArray(p, 8192, got))
	require.Equal(t, body, got)
	// The teardown's check verifies each extent's logged checksum.
}
