package vos

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAllocated: an array's allocation counts what its visible extents
// store — heap bytes as they are, data-blob extents in whole blocks — and
// nothing for holes, punched ranges or extents wholly written over; old
// views and snapshots keep their own figure; aggregation leaves it be.
func TestAllocated(t *testing.T) {
	_, s := openStore(t)
	ctx := context.Background()
	p := path(7, "f", "data")
	alloc := func(v *View) uint64 {
		t.Helper()
		n, err := v.Allocated(p)
		require.NoError(t, err)
		return n
	}
	latest := func() uint64 {
		t.Helper()
		v := s.Latest()
		defer v.Close()
		return alloc(v)
	}
	write := func(off uint64, data []byte) {
		t.Helper()
		_, err := s.Update(ctx, UpdateOptions{}, func(tx *Tx) error { return tx.WriteArray(p, off, data, nil) })
		require.NoError(t, err)
	}
	require.Equal(t, uint64(0), latest(), "no array")

	write(5<<30, make([]byte, 4096)) // one block at 5 GiB: in the heap
	require.Equal(t, uint64(4096), latest())
	write(100, []byte("hello")) // inline-sized
	require.Equal(t, uint64(4096+5), latest())
	// A large write: its aligned body to the data blob in whole blocks,
	// its head and tail to the heap.
	big := make([]byte, s.Threshold()+4096+10)
	write(1<<20+6, big)
	head := uint64(4096 - 6)
	body := (uint64(len(big)) - head) &^ 4095
	require.Equal(t, uint64(4096+5)+head+body+(uint64(len(big))-head-body), latest())
	old := s.Latest()
	defer old.Close()
	before := alloc(old)

	// Written over entirely: the old extent counts no more.
	write(100, []byte("HELLO"))
	require.Equal(t, before, latest(), "5 bytes replace 5 bytes")
	// Punched: the block at 5 GiB is gone, the rest stays.
	_, err := s.Update(ctx, UpdateOptions{}, func(tx *Tx) error { return tx.PunchArray(p, 4<<30, 6<<30) })
	require.NoError(t, err)
	require.Equal(t, before-4096, latest())
	require.Equal(t, before, alloc(old), "the older view keeps its own")
	// Partly written over: the extent still stores all its bytes.
	write(1<<20+6+head, []byte("x"))
	require.Equal(t, before-4096+1, latest())
	old.Close()
	_, err = s.Aggregate(ctx)
	require.NoError(t, err)
	require.Equal(t, before-4096+1, latest(), "aggregation changes what is stored, not what shows")

	// The whole object punched: nothing.
	_, err = s.Update(ctx, UpdateOptions{}, func(tx *Tx) error { return tx.PunchObject(7) })
	require.NoError(t, err)
	require.Equal(t, uint64(0), latest())
	tx := s.Begin()
	n, err := tx.Allocated(p)
	tx.Abort()
	require.NoError(t, err)
	require.Equal(t, uint64(0), n)
}
