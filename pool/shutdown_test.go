package pool

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestShutdown stops the pool with each flag after acknowledged work: later
// writes fail with ErrFailed wrapping ErrShutdown, Close reports the failure,
// and reopening recovers exactly the acknowledged (durable) state.
func TestShutdown(t *testing.T) {
	for _, flag := range []ShutdownFlag{ShutdownDefault, ShutdownLogFlush, ShutdownNoLogFlush} {
		t.Run(fmt.Sprint(flag), func(t *testing.T) {
			mfs, p := openTest(t)
			ctx := context.Background()
			m := newModel()
			w := &workload{p: p, m: m, largeMax: 4}
			require.NoError(t, w.setup(ctx))
			rng := newRand(int64(flag) + 1)
			for i := 0; i < 20; i++ {
				require.NoError(t, w.step(ctx, rng))
			}
			require.NoError(t, p.Shutdown(flag))
			require.ErrorIs(t, p.Err(), ErrFailed)
			require.ErrorIs(t, p.Err(), ErrShutdown)
			_, err := p.Update(ctx, func(*Tx) error { return nil })
			require.ErrorIs(t, err, ErrShutdown)
			require.ErrorIs(t, p.Close(), ErrShutdown)

			p, err = Open(mfs, "pool", crashOptions())
			require.NoError(t, err)
			defer p.Close()
			require.False(t, p.Recovery().Clean)
			require.NoError(t, verify(p, m))
		})
	}
}

func TestShutdownBadFlag(t *testing.T) {
	_, p := openTest(t)
	defer p.Close()
	require.ErrorIs(t, p.Shutdown(3), ErrBadShutdownFlag)
	require.NoError(t, p.Err(), "a refused shutdown leaves the pool running")
}
