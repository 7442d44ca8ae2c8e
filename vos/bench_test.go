package vos

import (
	"context"
	"fmt"
	"math/rand"
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
	"vosfs/pool"
)

// Benchmarks on the real disk (OSFS with O_DIRECT).

func benchStore(b *testing.B, cfg pool.Config) *Store {
	dir := filepath.Join(b.TempDir(), "pool")
	fsys := blob.NewOSFS(true)
	require.NoError(b, pool.Create(fsys, dir, cfg))
	p, err := pool.Open(fsys, dir, pool.Options{})
	require.NoError(b, err)
	s, err := Open(p, Options{AggregateInterval: -1})
	require.NoError(b, err)
	b.Cleanup(func() { s.Close(); require.NoError(b, p.Close()) })
	return s
}

// BenchmarkSmallUpdate: one Put of 64 bytes per transaction, durable, with
// 1 to 64 goroutines; reports commits/s and p50/p99 latency.
func BenchmarkSmallUpdate(b *testing.B) {
	for _, n := range []int{1, 4, 16, 64} {
		b.Run(fmt.Sprintf("goroutines=%d", n), func(b *testing.B) {
			s := benchStore(b, pool.Config{DataSize: 1 << 30, MetaSize: 256 << 20, WALSize: 64 << 20})
			ctx := context.Background()
			val := make([]byte, 64)
			lat := make([][]time.Duration, n)
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for g := 0; g < n; g++ {
				wg.Add(1)
				go func(g int) {
					defer wg.Done()
					for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
						start := time.Now()
						_, err := s.Update(ctx, UpdateOptions{}, func(tx *Tx) error {
							return tx.Put(path(uint64(g+1), fmt.Sprintf("k%d", i%1000), ""), val)
						})
						if err != nil {
							b.Error(err)
							return
						}
						lat[g] = append(lat[g], time.Since(start))
					}
				}(g)
			}
			wg.Wait()
			b.StopTimer()
			reportLatency(b, lat)
		})
	}
}

func reportLatency(b *testing.B, lat [][]time.Duration) {
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

// BenchmarkLargeWrite: 1 MiB array writes (data-blob extents, O_DIRECT),
// one per transaction, 4 writers; against BenchmarkRawDataWrite, the same
// bytes written straight to a data blob file with O_DIRECT and fdatasync.
func BenchmarkLargeWrite(b *testing.B) {
	s := benchStore(b, pool.Config{DataSize: 8 << 30, MetaSize: 256 << 20, WALSize: 64 << 20})
	ctx := context.Background()
	const size = 1 << 20
	b.SetBytes(size)
	var next atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			buf := make([]byte, size)
			var hint alloc.Hint
			for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
				off := uint64(i%4096) * size
				_, err := s.Update(ctx, UpdateOptions{}, func(tx *Tx) error {
					return tx.WriteArray(path(uint64(g+1), "data", ""), off, buf, &hint)
				})
				if err != nil {
					b.Error(err)
					return
				}
				if i%512 == 0 {
					if _, err := s.Aggregate(ctx); err != nil {
						b.Error(err)
						return
					}
				}
			}
		}(g)
	}
	wg.Wait()
}

func BenchmarkRawDataWrite(b *testing.B) {
	f, err := blob.NewOSFS(true).Create(filepath.Join(b.TempDir(), "raw"))
	require.NoError(b, err)
	defer f.Close()
	const size = 1 << 20
	b.SetBytes(size)
	var next atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, size)
			for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
				if _, err := f.WriteAt(buf, (i%4096)*size); err != nil {
					b.Error(err)
					return
				}
				if err := f.Sync(); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// BenchmarkReadOverwrittenArray reads an array built from 4 KiB writes and
// then half overwritten by 4 KiB writes at random (no aggregation), so each
// read resolves overlapping extents by epoch. VOSFS_ARRAY_BYTES sets the
// array size (default 1 GiB).
func BenchmarkReadOverwrittenArray(b *testing.B) {
	size := uint64(1 << 30)
	if v := os.Getenv("VOSFS_ARRAY_BYTES"); v != "" {
		_, err := fmt.Sscan(v, &size)
		require.NoError(b, err)
	}
	s := benchStore(b, pool.Config{DataSize: 2*size + 64<<20, MetaSize: 512 << 20, WALSize: 256 << 20, RecordLimit: 16 << 20})
	ctx := context.Background()
	p := path(1, "data", "")
	block := make([]byte, 4096)
	var hint alloc.Hint
	write := func(offs []uint64) {
		for len(offs) > 0 {
			n := min(len(offs), 256)
			_, err := s.Update(ctx, UpdateOptions{}, func(tx *Tx) error {
				for _, off := range offs[:n] {
					if err := tx.WriteArray(p, off, block, &hint); err != nil {
						return err
					}
				}
				return nil
			})
			require.NoError(b, err)
			offs = offs[n:]
		}
	}
	var offs []uint64
	for off := uint64(0); off < size; off += 4096 {
		offs = append(offs, off)
	}
	write(offs)
	rng := rand.New(rand.NewSource(1))
	rng.Shuffle(len(offs), func(i, j int) { offs[i], offs[j] = offs[j], offs[i] })
	half := offs[:len(offs)/2]
	sort.Slice(half, func(i, j int) bool { return half[i] < half[j] }) // one extent per offset per transaction
	write(half)
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(size))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		v := s.Latest()
		for off := uint64(0); off < size; off += uint64(len(buf)) {
			if err := v.ReadArray(p, off, buf); err != nil {
				b.Fatal(err)
			}
		}
		v.Close()
	}
}

// BenchmarkReadArray reads a 256 MiB array written in extents of ext bytes,
// read back in pieces of chunk bytes (the kernel's 128 KiB reads over 1 MiB
// extents is the case where a read verifies more than it returns).
func BenchmarkReadArray(b *testing.B) {
	const size = 256 << 20
	for _, c := range []struct{ ext, chunk int }{{1 << 20, 1 << 20}, {1 << 20, 128 << 10}, {128 << 10, 128 << 10}, {4 << 10, 128 << 10}} {
		b.Run(fmt.Sprintf("ext=%dK/read=%dK", c.ext>>10, c.chunk>>10), func(b *testing.B) {
			s := benchStore(b, pool.Config{DataSize: size + 64<<20, MetaSize: 512 << 20, WALSize: 256 << 20, RecordLimit: 16 << 20})
			ctx := context.Background()
			p := path(1, "data", "")
			wbuf := make([]byte, c.ext)
			rand.New(rand.NewSource(1)).Read(wbuf)
			var hint alloc.Hint
			for off := 0; off < size; {
				_, err := s.Update(ctx, UpdateOptions{}, func(tx *Tx) error {
					for i := 0; i < max(1, (1<<20)/c.ext) && off < size; i++ {
						if err := tx.WriteArray(p, uint64(off), wbuf, &hint); err != nil {
							return err
						}
						off += c.ext
					}
					return nil
				})
				require.NoError(b, err)
			}
			buf := make([]byte, c.chunk)
			b.SetBytes(size)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				v := s.Latest()
				for off := uint64(0); off < size; off += uint64(len(buf)) {
					if err := v.ReadArray(p, off, buf); err != nil {
						b.Fatal(err)
					}
				}
				v.Close()
			}
		})
	}
}
