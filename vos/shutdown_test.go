package vos

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"vosfs/blob"
	"vosfs/pool"
)

// TestShutdown shuts the store down with each flag after a durable and an
// asynchronous transaction: later transactions fail with ErrFailed and
// ErrShutdown, and reopening finds the durable one, and the asynchronous
// one too when the flag flushes the log.
func TestShutdown(t *testing.T) {
	for _, flag := range []ShutdownFlag{ShutdownDefault, ShutdownLogFlush, ShutdownNoLogFlush} {
		t.Run(fmt.Sprint(flag), func(t *testing.T) {
			ctx := context.Background()
			mfs := blob.NewMemFS(1)
			require.NoError(t, pool.Create(mfs, "pool", testConfig()))
			p, err := pool.Open(mfs, "pool", pool.Options{})
			require.NoError(t, err)
			s, err := Open(p, Options{AggregateInterval: -1})
			require.NoError(t, err)
			a, b := path(1, "d", "a"), path(1, "d", "b")
			put(t, s, a, "durable")
			_, err = s.Update(ctx, UpdateOptions{Async: true}, func(tx *Tx) error { return tx.Put(b, []byte("acknowledged")) })
			require.NoError(t, err)

			require.NoError(t, s.Shutdown(flag))
			require.ErrorIs(t, s.Failed(), ErrShutdown)
			_, err = s.Update(ctx, UpdateOptions{}, func(tx *Tx) error { return tx.Put(a, []byte("late")) })
			require.ErrorIs(t, err, ErrFailed)
			require.ErrorIs(t, err, ErrShutdown)
			require.NoError(t, s.Close())
			require.ErrorIs(t, p.Close(), ErrShutdown)

			s = reopenStore(t, mfs)
			got, ok := get(t, s, a)
			require.True(t, ok)
			require.Equal(t, "durable", got)
			if flag != ShutdownNoLogFlush {
				got, ok = get(t, s, b)
				require.True(t, ok, "an acknowledged transaction is durable after a shutdown that flushes the log")
				require.Equal(t, "acknowledged", got)
			}
		})
	}
}

func TestShutdownBadFlag(t *testing.T) {
	_, s := openStore(t)
	require.ErrorIs(t, s.Shutdown(3), ErrBadShutdownFlag)
	require.NoError(t, s.Failed())
}
