package vos

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"vosfs/blob"
	"vosfs/pool"
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
	require.Equal(t, 300+1+301, n) // the chain below its top, the fold, the versions and their punch
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
