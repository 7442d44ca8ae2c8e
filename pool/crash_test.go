package pool

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"vosfs/blob"
	"vosfs/wal"
)

func isCrashed(err error) bool { return errors.Is(err, blob.ErrCrashed) }

// crashConfig is a small pool whose log wraps and throttles within a few
// dozen transactions, so crashes land in checkpoints and throttled waits too.
func crashConfig() Config {
	return Config{DataSize: DataOffset + 2<<20, MetaSize: 1 << 20, WALSize: wal.RingOffset + wal.MinRingSize, RecordLimit: 16 << 10}
}

// crashOptions kick the checkpointer late, so writers are throttled on
// every lap of the ring, and crashes land in throttled waits too.
func crashOptions() Options {
	return Options{CheckpointInterval: 20 * time.Millisecond, HighWater: 0.95}
}

// crashRun is one crash state: a workload on a fresh pool, crashed where arm
// says, recovered (itself crashed at recoveryCrash mutations if > 0), and
// checked.
type crashRun struct {
	seed          int64
	goroutines    int
	steps         int
	arm           func(*blob.MemFS)
	recoveryCrash int
}

func (c crashRun) String() string {
	return fmt.Sprintf("seed=%d goroutines=%d steps=%d recoveryCrash=%d", c.seed, c.goroutines, c.steps, c.recoveryCrash)
}

// run returns the number of sync points the workload reached, the crashed
// pool's counters, and an error describing any violation.
func (c crashRun) run() (syncs int, st Stats, err error) {
	ctx := context.Background()
	fs := blob.NewMemFS(c.seed)
	if err := Create(fs, "pool", crashConfig()); err != nil {
		return 0, st, err
	}
	p, err := Open(fs, "pool", crashOptions())
	if err != nil {
		return 0, st, err
	}
	m := newModel()
	w := &workload{p: p, m: m, largeMax: 8}
	if c.arm != nil {
		c.arm(fs)
	}
	if err := w.setup(ctx); err != nil {
		if !isCrash(err) {
			return 0, st, fmt.Errorf("setup: %w", err)
		}
		c.goroutines = 0
	}
	var wg sync.WaitGroup
	errs := make(chan error, c.goroutines)
	for g := 0; g < c.goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(c.seed*100 + int64(g)))
			for i := 0; i < c.steps; i++ {
				if err := w.step(ctx, rng); err != nil {
					if !isCrash(err) {
						errs <- fmt.Errorf("step: %w", err)
					}
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, st, err
	}
	_, syncs = fs.Ops()
	st = p.Stats()
	img := fs.CrashImage()
	if img == nil {
		img = fs.Crash()
	}
	_ = p.Close() // stops the abandoned pool's goroutines; its disk is gone

	if c.recoveryCrash > 0 {
		img.CrashAfter(c.recoveryCrash)
		if p2, err := Open(img, "pool", crashOptions()); err == nil {
			_ = p2.Close()
		} else if !isCrash(err) {
			return syncs, st, fmt.Errorf("recovery: %w", err)
		}
		if img2 := img.CrashImage(); img2 != nil {
			img = img2
		} else {
			img = img.Crash()
		}
	}

	p, err = Open(img, "pool", crashOptions())
	if err != nil {
		return syncs, st, fmt.Errorf("reopen: %w", err)
	}
	if err := verify(p, m); err != nil {
		p.Close()
		return syncs, st, fmt.Errorf("after crash: %w", err)
	}
	// The recovered pool takes new transactions and closes clean.
	w.p = p
	if err := w.setup(ctx); err != nil {
		p.Close()
		return syncs, st, fmt.Errorf("setup after recovery: %w", err)
	}
	rng := rand.New(rand.NewSource(c.seed))
	for i := 0; i < 5; i++ {
		if err := w.step(ctx, rng); err != nil {
			p.Close()
			return syncs, st, fmt.Errorf("after recovery: %w", err)
		}
	}
	if err := p.Close(); err != nil {
		return syncs, st, fmt.Errorf("close after recovery: %w", err)
	}
	p, err = Open(img, "pool", crashOptions())
	if err != nil {
		return syncs, st, fmt.Errorf("reopen after clean close: %w", err)
	}
	defer p.Close()
	if r := p.Recovery(); !r.Clean || r.Records != 0 {
		return syncs, st, fmt.Errorf("clean close left %+v", r)
	}
	return syncs, st, verify(p, m)
}

// crashStates is the number of random crash states; VOSFS_CRASH_STATES
// overrides it (a long run), -short lowers it (the race-detector run).
func crashStates(t *testing.T, full int) int {
	if v := os.Getenv("VOSFS_CRASH_STATES"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err)
		return n
	}
	if testing.Short() {
		return full / 10
	}
	return full
}

// Every sync point of a single-writer workload, one crash each.
func TestCrashAtEverySyncPoint(t *testing.T) {
	base := crashRun{seed: 1, goroutines: 1, steps: 300}
	total, st, err := base.run()
	require.NoError(t, err)
	require.Greater(t, total, 50)
	// The sync points include checkpoints and throttled waits.
	require.GreaterOrEqual(t, st.Checkpoint.Checkpoints, uint64(3))
	require.GreaterOrEqual(t, st.Log.ThrottleEvents, uint64(2))
	t.Logf("workload: %d commits, %d checkpoints, %d throttle events", st.Commits, st.Checkpoint.Checkpoints, st.Log.ThrottleEvents)
	if testing.Short() {
		total = min(total, 60)
	}
	for n := 1; n <= total; n++ {
		c := base
		c.seed = int64(1000 + n)
		c.arm = func(fs *blob.MemFS) { fs.CrashAtSync(n) }
		_, _, err := c.run()
		require.NoError(t, err, "crash at sync %d: %v", n, c)
	}
	t.Logf("%d crash states at sync points", total)
}

// Random crash points between syncs, several concurrent committers, and
// crashes during recovery.
func TestCrashRandom(t *testing.T) {
	states := crashStates(t, 2000)
	seed := time.Now().UnixNano()
	if v := os.Getenv("VOSFS_CRASH_SEED"); v != "" {
		var err error
		seed, err = strconv.ParseInt(v, 10, 64)
		require.NoError(t, err)
	}
	t.Logf("VOSFS_CRASH_SEED=%d", seed)
	rng := rand.New(rand.NewSource(seed))
	for i := 0; i < states; i++ {
		c := crashRun{seed: rng.Int63(), goroutines: 1 + rng.Intn(4), steps: 10 + rng.Intn(30)}
		at := 1 + rng.Intn(400)
		c.arm = func(fs *blob.MemFS) { fs.CrashAfter(at) }
		if rng.Intn(4) == 0 {
			c.recoveryCrash = 1 + rng.Intn(60)
		}
		_, _, err := c.run()
		require.NoError(t, err, "state %d: %v crashAfter=%d (rerun with VOSFS_CRASH_SEED=%d)", i, c, at, seed)
	}
	t.Logf("%d random crash states", states)
}
