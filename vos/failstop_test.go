package vos

import (
	"bytes"
	"context"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"vosfs/blob"
	"vosfs/pool"
)

// A data-blob write that fails before the transaction's critical section
// (the store awaits its large writes there) stops the pool, as every blob
// write failure does: the update fails with ErrFailed wrapping the errno,
// Failed says so, every later update and read fails, and the reopened store
// holds exactly what was acknowledged before.
func TestDataWriteFailureStopsTheStore(t *testing.T) {
	mfs := blob.NewMemFS(1)
	require.NoError(t, pool.Create(mfs, "pool", testConfig()))
	p, err := pool.Open(mfs, "pool", pool.Options{Logf: func(string, ...any) {}})
	require.NoError(t, err)
	s, err := Open(p, Options{AggregateInterval: -1})
	require.NoError(t, err)
	ctx := context.Background()
	big := bytes.Repeat([]byte("acknowledged"), 8<<10) // 96 KiB: a data-blob value
	a, b := path(FirstOID, "d", "a"), path(FirstOID, "d", "b")
	_, err = s.Update(ctx, UpdateOptions{}, func(tx *Tx) error { return tx.Put(a, big) })
	require.NoError(t, err)
	require.NoError(t, s.Failed())

	mfs.InjectFile("pool/data.blob", blob.OpWrite, 1, syscall.EIO)
	_, err = s.Update(ctx, UpdateOptions{}, func(tx *Tx) error { return tx.Put(b, big) })
	require.ErrorIs(t, err, ErrFailed)
	require.ErrorIs(t, err, syscall.EIO)
	require.ErrorIs(t, s.Failed(), ErrFailed)

	_, err = s.Update(ctx, UpdateOptions{}, func(tx *Tx) error { return tx.Put(b, []byte("small")) })
	require.ErrorIs(t, err, ErrFailed, "a failed store takes no update, however small")
	v := s.Latest()
	_, _, err = v.Get(a)
	v.Close()
	require.ErrorIs(t, err, ErrFailed, "nor serves reads")
	before, _ := mfs.Ops()
	s.Close()
	require.ErrorIs(t, p.Close(), ErrFailed)
	after, _ := mfs.Ops()
	require.Equal(t, before, after, "closing a failed store writes nothing")

	s = reopenStore(t, mfs)
	v = s.Latest()
	defer v.Close()
	got, ok, err := v.Get(a)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, big, got)
	_, ok, err = v.Get(b)
	require.NoError(t, err)
	require.False(t, ok, "the failed update left nothing")
}
