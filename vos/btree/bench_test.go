package btree

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"vosfs/blob"
	"vosfs/pool"
	"vosfs/umem"
)

// Benchmarks on a pool (in memory) holding a tree of 100,000 random 32-byte
// keys with 32-byte values; operations run 1,000 to a transaction (Put) or a
// View (Get, scans). The pool is built once per process and shared.

const (
	benchKeys  = 100_000
	benchBatch = 1000
)

var bench struct {
	once sync.Once
	p    *pool.Pool
	tr   Tree
	keys [][]byte
	rng  *rand.Rand
	err  error
}

func benchKey(rng *rand.Rand) []byte {
	k := make([]byte, 32)
	for i := 0; i < 32; i += 8 {
		binary.BigEndian.PutUint64(k[i:], rng.Uint64())
	}
	return k
}

func benchTree(b *testing.B) (*pool.Pool, Tree, [][]byte, *rand.Rand) {
	bench.once.Do(func() {
		fs := blob.NewMemFS(1)
		cfg := pool.Config{DataSize: 4096 + 2<<20, MetaSize: 256 << 20, WALSize: 8192 + 64<<20, RecordLimit: 4 << 20}
		if bench.err = pool.Create(fs, "p", cfg); bench.err != nil {
			return
		}
		if bench.p, bench.err = pool.Open(fs, "p", pool.Options{}); bench.err != nil {
			return
		}
		bench.tr = Tree{RootPtr: pool.RootOffset, ValueSize: 32}
		bench.rng = rand.New(rand.NewPCG(11, 12))
		for i := 0; i < benchKeys && bench.err == nil; i += benchBatch {
			_, bench.err = bench.p.Update(context.Background(), func(tx *pool.Tx) error {
				for range benchBatch {
					k := benchKey(bench.rng)
					bench.keys = append(bench.keys, k)
					if _, err := bench.tr.Put(tx, k, k); err != nil {
						return err
					}
				}
				return nil
			})
		}
	})
	require.NoError(b, bench.err)
	return bench.p, bench.tr, bench.keys, bench.rng
}

// BenchmarkPut inserts new random keys; it reports the log bytes per insert
// (ring bytes written, padding of the group commits included).
func BenchmarkPut(b *testing.B) {
	p, tr, _, rng := benchTree(b)
	keys := make([][]byte, b.N)
	for i := range keys {
		keys[i] = benchKey(rng)
	}
	require.NoError(b, p.Sync())
	before := p.Stats().Log.BytesWritten
	b.ResetTimer()
	for i := 0; i < b.N; i += benchBatch {
		_, err := p.Update(context.Background(), func(tx *pool.Tx) error {
			for _, k := range keys[i:min(i+benchBatch, b.N)] {
				if _, err := tr.Put(tx, k, k); err != nil {
					return err
				}
			}
			return nil
		})
		require.NoError(b, err)
	}
	b.StopTimer()
	b.ReportMetric(float64(p.Stats().Log.BytesWritten-before)/float64(b.N), "log-B/op")
	// Take the keys out again so that the tree keeps its size.
	for i := 0; i < b.N; i += benchBatch {
		_, err := p.Update(context.Background(), func(tx *pool.Tx) error {
			for _, k := range keys[i:min(i+benchBatch, b.N)] {
				if _, err := tr.Delete(tx, k); err != nil {
					return err
				}
			}
			return nil
		})
		require.NoError(b, err)
	}
}

// BenchmarkGet looks up random keys that are present.
func BenchmarkGet(b *testing.B) {
	p, tr, keys, rng := benchTree(b)
	order := make([]int, b.N)
	for i := range order {
		order[i] = rng.IntN(len(keys))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i += benchBatch {
		require.NoError(b, p.View(func(r umem.Reader) error {
			for _, j := range order[i:min(i+benchBatch, b.N)] {
				if _, ok, err := tr.Get(r, keys[j]); err != nil || !ok {
					b.Fatalf("get: %v %v", ok, err)
				}
			}
			return nil
		}))
	}
}

// BenchmarkScan seeks to a random key and reads the next 100 entries; an op
// is one entry.
func BenchmarkScan(b *testing.B) {
	const run = 100
	p, tr, keys, rng := benchTree(b)
	b.ResetTimer()
	for i := 0; i < b.N; i += run * 10 {
		require.NoError(b, p.View(func(r umem.Reader) error {
			for range 10 {
				it := tr.Seek(r, keys[rng.IntN(len(keys))])
				for n := 0; n < run && it.Next(); n++ {
					_ = it.Value()
				}
				if err := it.Err(); err != nil {
					return err
				}
			}
			return nil
		}))
	}
}
