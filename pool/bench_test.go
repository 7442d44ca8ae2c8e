package pool

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"vosfs/alloc"
	"vosfs/blob"
	"vosfs/wal"
)

// Commit benchmarks on the real disk (OSFS, O_DIRECT): commits per second
// and p50/p99 commit latency with 1 to 64 concurrent committers, for small
// values (carried in the log record) and large ones (a 64 KiB data-blob
// extent written with direct I/O), against a baseline of one 4 KiB write and
// one fdatasync per commit on the same disk. Compare with benchstat.

var committerCounts = []int{1, 4, 16, 64}

func benchPool(b *testing.B) *Pool {
	dir := filepath.Join(b.TempDir(), "pool")
	fsys := blob.NewOSFS(true)
	require.NoError(b, Create(fsys, dir, Config{DataSize: 4 << 30, MetaSize: 64 << 20, WALSize: 64 << 20}))
	p, err := Open(fsys, dir, Options{})
	require.NoError(b, err)
	b.Cleanup(func() { require.NoError(b, p.Close()) })
	return p
}

// runCommitters runs b.N operations over n goroutines and reports the
// latency percentiles; op gets the goroutine index.
func runCommitters(b *testing.B, n int, op func(g int) error) {
	lat := make([][]time.Duration, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	b.ResetTimer()
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				start := time.Now()
				if err := op(g); err != nil {
					failed.Store(err)
					return
				}
				lat[g] = append(lat[g], time.Since(start))
			}
		}(g)
	}
	wg.Wait()
	b.StopTimer()
	if err, ok := failed.Load().(error); ok {
		b.Fatal(err)
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
}

func BenchmarkCommitSmall(b *testing.B) {
	for _, n := range committerCounts {
		b.Run(fmt.Sprintf("committers=%d", n), func(b *testing.B) {
			p := benchPool(b)
			ctx := context.Background()
			offs := make([]uint64, n)
			_, err := p.Update(ctx, func(tx *Tx) error {
				for g := range offs {
					var err error
					if offs[g], err = tx.Alloc(256); err != nil {
						return err
					}
				}
				return nil
			})
			require.NoError(b, err)
			val := make([]byte, 256)
			runCommitters(b, n, func(g int) error {
				_, err := p.Update(ctx, func(tx *Tx) error { return tx.Write(offs[g], val) })
				return err
			})
		})
	}
}

func BenchmarkCommitLarge(b *testing.B) {
	const blocks = 16 // 64 KiB
	for _, n := range committerCounts {
		b.Run(fmt.Sprintf("committers=%d", n), func(b *testing.B) {
			p := benchPool(b)
			ctx := context.Background()
			prev := make([][]alloc.Extent, n)
			bufs := make([][]byte, n)
			for g := range bufs {
				bufs[g] = make([]byte, blocks*BlockSize)
			}
			b.SetBytes(blocks * BlockSize)
			runCommitters(b, n, func(g int) error {
				exts, err := p.Extents().Reserve(nil, blocks)
				if err != nil {
					return err
				}
				var ws []*DataWrite
				data := bufs[g]
				for _, e := range exts {
					w, err := p.WriteData(e, data[:e.Count*BlockSize])
					if err != nil {
						return err
					}
					ws = append(ws, w)
					data = data[e.Count*BlockSize:]
				}
				_, err = p.Update(ctx, func(tx *Tx) error {
					if err := tx.PublishExtents(exts); err != nil {
						return err
					}
					for _, w := range ws {
						if err := tx.AddData(w); err != nil {
							return err
						}
					}
					if prev[g] != nil {
						return tx.FreeExtents(prev[g])
					}
					return nil
				})
				prev[g] = exts
				return err
			})
		})
	}
}

// BenchmarkBaselineWriteSync is what a commit costs without group commit:
// one 4 KiB O_DIRECT write and one fdatasync per commit, each committer on
// its own block of one file.
func BenchmarkBaselineWriteSync(b *testing.B) {
	for _, n := range committerCounts {
		b.Run(fmt.Sprintf("committers=%d", n), func(b *testing.B) {
			fsys := blob.NewOSFS(true)
			f, err := fsys.Create(filepath.Join(b.TempDir(), "baseline"))
			require.NoError(b, err)
			defer f.Close()
			zero := make([]byte, 1<<20)
			_, err = f.WriteAt(zero, 0) // allocated blocks, as the log ring
			require.NoError(b, err)
			require.NoError(b, f.Sync())
			buf := make([]byte, BlockSize)
			runCommitters(b, n, func(g int) error {
				if _, err := f.WriteAt(buf, int64(g%256)*BlockSize); err != nil {
					return err
				}
				return f.Sync()
			})
		})
	}
}

// TestSustainedLoad pushes far more transactions through a small log than
// it holds: writers are throttled and released by checkpoints, and nothing
// fails. VOSFS_LOAD_BYTES sets the volume (default 1 GiB, 64 MiB with -short).
func TestSustainedLoad(t *testing.T) {
	volume := uint64(1 << 30)
	if testing.Short() {
		volume = 64 << 20
	}
	if v := os.Getenv("VOSFS_LOAD_BYTES"); v != "" {
		_, err := fmt.Sscan(v, &volume)
		require.NoError(t, err)
	}
	dir := filepath.Join(t.TempDir(), "pool")
	fsys := blob.NewOSFS(true)
	require.NoError(t, Create(fsys, dir, Config{DataSize: 64 << 20, MetaSize: 16 << 20, WALSize: wal.RingOffset + 4<<20, RecordLimit: 256 << 10}))
	// The checkpointer is kicked late (90% fill), so writers do wait.
	p, err := Open(fsys, dir, Options{HighWater: 0.9})
	require.NoError(t, err)
	ctx := context.Background()
	const writers, valSize = 8, 60 << 10
	offs := make([]uint64, writers)
	_, err = p.Update(ctx, func(tx *Tx) error {
		for g := range offs {
			if offs[g], err = tx.Alloc(valSize); err != nil {
				return err
			}
		}
		return tx.PutUint64(RootOffset, offs[0])
	})
	require.NoError(t, err)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	start := time.Now()
	for g := 0; g < writers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			val := make([]byte, valSize)
			for i := uint64(0); i < volume/valSize/writers; i++ {
				val[0], val[1] = byte(g), byte(i)
				if _, err := p.Update(ctx, func(tx *Tx) error { return tx.Write(offs[g], val) }); err != nil {
					errs <- err
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	require.NoError(t, <-errs)
	s := p.Stats()
	t.Logf("%d commits, %d log bytes through a %d-byte ring in %v: %d batches, %d throttle events (%v waiting), %d checkpoints",
		s.Commits, s.Log.BytesWritten, s.Log.RingSize, time.Since(start).Round(time.Millisecond), s.Log.Batches,
		s.Log.ThrottleEvents, s.Log.ThrottleWait.Round(time.Millisecond), s.Checkpoint.Checkpoints)
	require.GreaterOrEqual(t, s.Log.BytesWritten, volume)
	require.Greater(t, s.Log.ThrottleEvents, uint64(0))
	require.Greater(t, s.Checkpoint.Checkpoints, uint64(1))
	refs := Refs{}
	for _, o := range offs {
		refs.Heap = append(refs.Heap, alloc.Span{Off: o, Size: roundUnit(valSize)})
	}
	require.NoError(t, p.Check(refs))
	require.NoError(t, p.Close())
}
