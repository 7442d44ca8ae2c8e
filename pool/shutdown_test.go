package pool

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"vosfs/umem"
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

// TestShutdownAcknowledgedAsync shuts down with flags 0 and 1 while writers
// commit without waiting (UpdateAsync): every transaction acknowledged
// is there after reopening.
func TestShutdownAcknowledgedAsync(t *testing.T) {
	for _, flag := range []ShutdownFlag{ShutdownDefault, ShutdownLogFlush} {
		t.Run(fmt.Sprint(flag), func(t *testing.T) {
			const writers = 4
			mfs, p := openTest(t)
			ctx := context.Background()
			var acked [writers]atomic.Uint64
			var wg sync.WaitGroup
			for g := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := uint64(1); ; i++ {
						_, err := p.UpdateAsync(ctx, func(tx *Tx) error {
							return tx.PutUint64(RootOffset+8*uint64(g), i)
						})
						if err != nil {
							require.ErrorIs(t, err, ErrShutdown)
							return
						}
						acked[g].Store(i)
					}
				}()
			}
			require.Eventually(t, func() bool {
				for g := range writers {
					if acked[g].Load() < 3 {
						return false
					}
				}
				return true
			}, 10*time.Second, time.Millisecond, "every writer commits")
			require.NoError(t, p.Shutdown(flag))
			wg.Wait()
			require.ErrorIs(t, p.Close(), ErrShutdown)

			p, err := Open(mfs, "pool", crashOptions())
			require.NoError(t, err)
			defer p.Close()
			require.NoError(t, p.View(func(r umem.Reader) error {
				for g := range writers {
					v, err := r.Uint64(RootOffset + 8*uint64(g))
					if err != nil {
						return err
					}
					require.GreaterOrEqual(t, v, acked[g].Load(), "writer %d: acknowledged transactions lost", g)
					require.LessOrEqual(t, v, acked[g].Load()+1, "writer %d", g)
				}
				return nil
			}))
		})
	}
}
