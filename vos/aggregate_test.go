package vos

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"vosfs/alloc"
	"vosfs/blob"
	"vosfs/pool"
	"vosfs/umem"
)

// Aggregation runs in several transactions; a crash between any two of
// them must leave every key's visible value as it was. The workload makes
// a merge chain of 300 operands on one key (its fold drops more versions
// than one aggregation transaction holds) and 300 versions under a punch
// on another, then crashes aggregation at each of its sync points.
func TestAggregationCrashKeepsValues(t *testing.T) {
	ctx := context.Background()
	chain, punched := path(1, "chain", ""), path(1, "gone", "")
	build := func(mfs *blob.MemFS) (*pool.Pool, *Store) {
		require.NoError(t, pool.Create(mfs, "pool", testConfig()))
		p, err := pool.Open(mfs, "pool", pool.Options{})
		require.NoError(t, err)
		s, err := Open(p, Options{AggregateInterval: -1})
		require.NoError(t, err)
		put(t, s, chain, "base:")
		for i := 0; i < 300; i++ {
			_, err := s.Update(ctx, UpdateOptions{}, func(tx *Tx) error {
				if err := tx.Merge(chain, MergeConcat, []byte(fmt.Sprintf("%d,", i))); err != nil {
					return err
				}
				return tx.Put(punched, []byte(fmt.Sprintf("version %d", i)))
			})
			require.NoError(t, err)
		}
		_, err = s.Update(ctx, UpdateOptions{}, func(tx *Tx) error { return tx.Punch(punched) })
		require.NoError(t, err)
		return p, s
	}
	want := "base:"
	for i := 0; i < 300; i++ {
		want += fmt.Sprintf("%d,", i)
	}

	mfs := blob.NewMemFS(1)
	p, s := build(mfs)
	_, before := mfs.Ops()
	n, err := s.Aggregate(ctx)
	require.NoError(t, err)
	// The chain of 300 operands on a base folds in two pieces (foldChunk
	// each at most): the lower 254 with the base into the 47th operand,
	// then that value and the 46 above it into the top. Dropped: the
	// base and 253 operands, then 46 entries; the two folds; the 300
	// versions and their punch.
	require.Equal(t, (1+253)+46+2+301, n)
	_, after := mfs.Ops()
	syncs := after - before
	require.Greater(t, syncs, 2, "aggregation takes several transactions")
	s.Close()
	p.Close()

	for k := 1; k <= syncs; k++ {
		mfs := blob.NewMemFS(int64(k))
		p, s := build(mfs)
		mfs.CrashAtSync(k)
		_, _ = s.Aggregate(ctx)
		s.Close()
		p.Close()
		s2 := reopenStore(t, mfs.CrashImage())
		got, ok := get(t, s2, chain)
		require.True(t, ok, "crash at aggregation sync %d", k)
		require.Equal(t, want, got, "crash at aggregation sync %d", k)
		_, ok = get(t, s2, punched)
		require.False(t, ok, "crash at aggregation sync %d: a punched value came back", k)
		_, err := s2.Aggregate(ctx)
		require.NoError(t, err)
		got, _ = get(t, s2, chain)
		require.Equal(t, want, got)
	}
}

// A read that finds a long merge chain has the key folded in the
// background, without waiting for a pass over everything.
func TestLongChainIsFoldedAfterARead(t *testing.T) {
	for _, foldChain := range []int{0, -1} {
		t.Run(fmt.Sprint(foldChain), func(t *testing.T) {
			mfs := blob.NewMemFS(1)
			require.NoError(t, pool.Create(mfs, "pool", testConfig()))
			p, err := pool.Open(mfs, "pool", pool.Options{})
			require.NoError(t, err)
			defer p.Close()
			s, err := Open(p, Options{AggregateInterval: -1, FoldChain: foldChain})
			require.NoError(t, err)
			defer s.Close()
			ctx := context.Background()
			c := path(5, "n", "")
			want := ""
			for i := 0; i < DefaultFoldChain+10; i++ {
				_, err := s.Update(ctx, UpdateOptions{}, func(tx *Tx) error { return tx.Merge(c, MergeConcat, []byte{byte('a' + i%26)}) })
				require.NoError(t, err)
				want += string(rune('a' + i%26))
			}
			chain := func() int {
				n := 0
				require.NoError(t, p.View(func(r umem.Reader) error {
					prefix := append(c.prefix(nil), subValue)
					it := s.tree.Seek(r, prefix)
					for it.Next() && bytes.HasPrefix(it.Key(), prefix) {
						n++
					}
					return it.Err()
				}))
				return n
			}
			require.Equal(t, DefaultFoldChain+10, chain())
			got, ok := get(t, s, c)
			require.True(t, ok)
			require.Equal(t, want, got)
			if foldChain < 0 {
				time.Sleep(200 * time.Millisecond)
				require.Equal(t, DefaultFoldChain+10, chain())
				require.Zero(t, s.Stats().ChainsFolded)
				return
			}
			require.Eventually(t, func() bool { return s.Stats().ChainsFolded == 1 }, 5*time.Second, 5*time.Millisecond)
			require.Equal(t, 1, chain())
			got, _ = get(t, s, c)
			require.Equal(t, want, got)
			require.NoError(t, s.Check())
		})
	}
}

// A merge chain far longer than one transaction can drop folds, piece by
// piece, into one value.
func TestVeryLongChainFolds(t *testing.T) {
	_, s := openStore(t)
	ctx := context.Background()
	c := path(6, "n", "")
	const n = 12000
	for i := 1; i <= n; i++ {
		_, err := s.Update(ctx, UpdateOptions{}, func(tx *Tx) error {
			return tx.Merge(c, MergeAdd64, binary.LittleEndian.AppendUint64(nil, uint64(i)))
		})
		require.NoError(t, err)
	}
	_, err := s.Aggregate(ctx)
	require.NoError(t, err)
	got, ok := get(t, s, c)
	require.True(t, ok)
	require.Equal(t, uint64(n*(n+1)/2), binary.LittleEndian.Uint64([]byte(got)))
	entries := 0
	require.NoError(t, s.p.View(func(r umem.Reader) error {
		prefix := append(c.prefix(nil), subValue)
		it := s.tree.Seek(r, prefix)
		for it.Next() && bytes.HasPrefix(it.Key(), prefix) {
			entries++
		}
		return it.Err()
	}))
	require.Equal(t, 1, entries)
}

// A heap full of versions nobody sees is aggregated back even when the
// folds of the same round find no space for their values.
func TestFullHeapIsAggregatedBack(t *testing.T) {
	_, s := openStore(t)
	ctx := context.Background()
	dead := path(7, "v", "")
	chain := path(7, "c", "")
	big := make([]byte, 3000)
	// Versions of one value and a merge chain, until the heap is full.
	var err error
	for i := 0; err == nil; i++ {
		_, err = s.Update(ctx, UpdateOptions{}, func(tx *Tx) error {
			if err := tx.Put(dead, big); err != nil {
				return err
			}
			return tx.Merge(chain, MergeConcat, big[:1000])
		})
	}
	require.ErrorIs(t, err, alloc.ErrNoSpace)
	// The chain's fold needs more heap than is left; the old versions of
	// the value free it.
	_, err = s.Aggregate(ctx)
	require.NoError(t, err)
	_, err = s.Update(ctx, UpdateOptions{}, func(tx *Tx) error { return tx.Put(path(8, "after", ""), big) })
	require.NoError(t, err)
	got, ok := get(t, s, dead)
	require.True(t, ok)
	require.Equal(t, string(big), got)
}
