package vos

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func u64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

func TestNoLostUpdate(t *testing.T) {
	_, s := openStore(t)
	ctx := context.Background()
	c := path(1, "c", "")
	put(t, s, c, string(u64(0)))
	t1, t2 := s.Begin(), s.Begin()
	for _, tx := range []*Tx{t1, t2} {
		v, ok, err := tx.Get(c)
		require.NoError(t, err)
		require.True(t, ok)
		require.NoError(t, tx.Put(c, u64(binary.LittleEndian.Uint64(v)+1)))
	}
	r1, err := t1.Commit(ctx)
	require.NoError(t, err)
	require.Equal(t, Committed, r1.Status)
	r2, err := t2.Commit(ctx)
	require.NoError(t, err)
	require.Equal(t, Aborted, r2.Status, "the second increment read a stale value")
	got, _ := get(t, s, c)
	require.Equal(t, uint64(1), binary.LittleEndian.Uint64([]byte(got)))
	st := s.Stats()
	require.Equal(t, uint64(1), st.Conflicts)
	require.Equal(t, uint64(1), st.Aborts)
}

// Write skew: each transaction reads both keys and writes one; serially
// only one may commit.
func TestNoWriteSkew(t *testing.T) {
	_, s := openStore(t)
	ctx := context.Background()
	x, y := path(1, "x", ""), path(1, "y", "")
	put(t, s, x, "on")
	put(t, s, y, "on")
	t1, t2 := s.Begin(), s.Begin()
	for _, tx := range []*Tx{t1, t2} {
		for _, p := range []Path{x, y} {
			_, _, err := tx.Get(p)
			require.NoError(t, err)
		}
	}
	require.NoError(t, t1.Punch(x))
	require.NoError(t, t2.Punch(y))
	r1, err := t1.Commit(ctx)
	require.NoError(t, err)
	require.Equal(t, Committed, r1.Status)
	r2, err := t2.Commit(ctx)
	require.NoError(t, err)
	require.Equal(t, Aborted, r2.Status)
	_, ok := get(t, s, y)
	require.True(t, ok, "one of the two stays on")
}

// A transaction that saw a key range empty aborts if a key appeared in it.
func TestNoPhantom(t *testing.T) {
	_, s := openStore(t)
	ctx := context.Background()
	t1 := s.Begin()
	n := 0
	require.NoError(t, t1.ListDkeys(9, nil, false, 0, func([]byte) bool { n++; return true }))
	require.Zero(t, n)
	require.NoError(t, t1.Put(path(10, "summary", ""), []byte("dir 9 is empty")))
	put(t, s, path(9, "newcomer", ""), "x")
	r, err := t1.Commit(ctx)
	require.NoError(t, err)
	require.Equal(t, Aborted, r.Status)

	// Disjoint work in the same object does not conflict: replay.
	t2 := s.Begin()
	_, ok, err := t2.Get(path(9, "mine", ""))
	require.NoError(t, err)
	require.False(t, ok)
	require.NoError(t, t2.Put(path(9, "mine", ""), []byte("y")))
	put(t, s, path(9, "other", ""), "z")
	r, err = t2.Commit(ctx)
	require.NoError(t, err)
	require.Equal(t, Committed, r.Status)
	require.Equal(t, uint64(1), s.Stats().Replays)
}

// Merges from concurrent transactions never conflict.
func TestConcurrentMergesDoNotConflict(t *testing.T) {
	_, s := openStore(t)
	ctx := context.Background()
	c := path(1, "hits", "")
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				_, err := s.Update(ctx, UpdateOptions{}, func(tx *Tx) error { return tx.Merge(c, MergeAdd64, u64(1)) })
				require.NoError(t, err)
			}
		}()
	}
	wg.Wait()
	got, _ := get(t, s, c)
	require.Equal(t, uint64(320), binary.LittleEndian.Uint64([]byte(got)))
	require.Zero(t, s.Stats().Aborts)
}

// Concurrent read-modify-write increments with retries: none lost.
func TestConcurrentIncrementsWithRetry(t *testing.T) {
	_, s := openStore(t)
	ctx := context.Background()
	c := path(1, "n", "")
	put(t, s, c, string(u64(0)))
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				_, err := s.Update(ctx, UpdateOptions{Retries: 1000}, func(tx *Tx) error {
					v, _, err := tx.Get(c)
					if err != nil {
						return err
					}
					return tx.Put(c, u64(binary.LittleEndian.Uint64(v)+1))
				})
				require.NoError(t, err)
			}
		}()
	}
	wg.Wait()
	got, _ := get(t, s, c)
	require.Equal(t, uint64(200), binary.LittleEndian.Uint64([]byte(got)))
}

// runVMStarts is the replay benchmark's workload: n concurrent
// transactions, each creating a few keys in its own subtree of one shared
// parent object (after xenstored's parallel VM starts), with a client
// round trip between its reads and its commit.
func runVMStarts(t testing.TB, s *Store, n int, noReplay bool) (time.Duration, uint64) {
	ctx := context.Background()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := s.Update(ctx, UpdateOptions{Retries: 1 << 20, NoReplay: noReplay}, func(tx *Tx) error {
				for _, k := range []string{"name", "memory", "vcpus"} {
					p := path(1, fmt.Sprintf("vm-%d/%s", i, k), "")
					if _, ok, err := tx.Get(p); err != nil || ok {
						return fmt.Errorf("%v exists: %v", p, err)
					}
				}
				time.Sleep(time.Millisecond) // the client's round trip
				for _, k := range []string{"name", "memory", "vcpus"} {
					if err := tx.Put(path(1, fmt.Sprintf("vm-%d/%s", i, k), ""), []byte(k)); err != nil {
						return err
					}
				}
				return nil
			})
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	return time.Since(start), s.Stats().Aborts
}

func TestReplayAvoidsAborts(t *testing.T) {
	_, s := openStore(t)
	d, aborts := runVMStarts(t, s, 300, false)
	require.Zero(t, aborts)
	t.Logf("300 VM starts with replay: %v, %d aborts, %d replays", d, aborts, s.Stats().Replays)
}

func BenchmarkVMStarts(b *testing.B) {
	for _, mode := range []struct {
		name     string
		noReplay bool
	}{{"replay", false}, {"abort-and-retry", true}} {
		b.Run(mode.name, func(b *testing.B) {
			var aborts uint64
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				_, s := openStoreB(b)
				b.StartTimer()
				_, a := runVMStarts(b, s, 300, mode.noReplay)
				aborts += a
			}
			b.ReportMetric(float64(aborts)/float64(b.N), "aborts/op")
		})
	}
}
