package vos

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"

	"vosfs/alloc"
	"vosfs/pool"
)

// Filesystem-shaped transactions, as fs/ issues them, on the real disk:
// a 4 KiB write (the inode must exist; the extent; the size as a max merge;
// the times as a merge) and a create (the name must be absent; mode, size,
// links and times of the new inode; the entry; the parent's times). Each
// reports, per operation, the log bytes written (padding included), the
// bytes of the records themselves, the log syncs and the tree inserts; with
// -benchmem the allocations. sync waits for each commit; async commits
// without waiting and makes everything durable every 64 operations, as
// fsync does.

const (
	benchMaxID   = 17
	benchTimesID = 16
)

func benchFSStore(b *testing.B) *Store {
	s := benchStore(b, pool.Config{DataSize: 1 << 30, MetaSize: 256 << 20, WALSize: 64 << 20})
	require.NoError(b, s.RegisterMerge(benchMaxID, "bench.max64", func(base []byte, exists bool, ops [][]byte) ([]byte, error) {
		var m uint64
		if exists {
			m = binary.LittleEndian.Uint64(base)
		}
		for _, o := range ops {
			m = max(m, binary.LittleEndian.Uint64(o))
		}
		return binary.LittleEndian.AppendUint64(nil, m), nil
	}))
	require.NoError(b, s.RegisterMerge(benchTimesID, "bench.times", func(base []byte, exists bool, ops [][]byte) ([]byte, error) {
		out := make([]byte, 24)
		if exists {
			copy(out, base)
		}
		for _, o := range ops {
			for i := 0; i < 24; i += 8 {
				binary.LittleEndian.PutUint64(out[i:], max(binary.LittleEndian.Uint64(out[i:]), binary.LittleEndian.Uint64(o[i:])))
			}
		}
		return out, nil
	}))
	return s
}

type fsBenchKeys struct{ attr, size, links, times, data Path }

func fsKeys(oid uint64) fsBenchKeys {
	return fsBenchKeys{
		attr:  Path{OID: oid, Dkey: []byte{0}, Akey: []byte("a")},
		size:  Path{OID: oid, Dkey: []byte{0}, Akey: []byte("s")},
		links: Path{OID: oid, Dkey: []byte{0}, Akey: []byte("n")},
		times: Path{OID: oid, Dkey: []byte{0}, Akey: []byte("t")},
		data:  Path{OID: oid, Dkey: []byte{1}, Akey: []byte("d")},
	}
}

// runFSOps runs b.N operations one after the other and reports the costs.
func runFSOps(b *testing.B, s *Store, async bool, op func(i int, tx *Tx) error) {
	ctx := context.Background()
	p0, s0 := s.Pool().Stats(), s.Stats()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Update(ctx, UpdateOptions{Async: async}, func(tx *Tx) error { return op(i, tx) }); err != nil {
			b.Fatal(err)
		}
		if async && i%64 == 63 {
			if err := s.Pool().Sync(); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := s.Pool().Sync(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	p1, s1 := s.Pool().Stats(), s.Stats()
	n := float64(b.N)
	b.ReportMetric(float64(p1.Log.BytesWritten-p0.Log.BytesWritten)/n, "log-B/op")
	b.ReportMetric(float64(p1.Log.RecordBytes-p0.Log.RecordBytes)/n, "rec-B/op")
	b.ReportMetric(float64(p1.Log.Syncs-p0.Log.Syncs)/n, "syncs/op")
	b.ReportMetric(float64(s1.TreeInserts-s0.TreeInserts)/n, "inserts/op")
}

func BenchmarkFSWrite4K(b *testing.B) {
	for _, mode := range []string{"sync", "async"} {
		b.Run(mode, func(b *testing.B) {
			s := benchFSStore(b)
			k := fsKeys(FirstOID)
			_, err := s.Update(context.Background(), UpdateOptions{}, func(tx *Tx) error {
				if err := tx.Put(k.attr, make([]byte, 40)); err != nil {
					return err
				}
				return tx.Put(k.size, make([]byte, 8))
			})
			require.NoError(b, err)
			const fileBlocks = 16 << 10 // a 64 MiB file
			rng := rand.New(rand.NewSource(1))
			data := make([]byte, 4096)
			rng.Read(data)
			var hint alloc.Hint
			size, tm := make([]byte, 8), make([]byte, 24)
			runFSOps(b, s, mode == "async", func(i int, tx *Tx) error {
				off := uint64(rng.Intn(fileBlocks)) * 4096
				if err := tx.Predicate(Predicate{Path: k.attr, Kind: Exists}); err != nil {
					return err
				}
				if err := tx.WriteArray(k.data, off, data, &hint); err != nil {
					return err
				}
				binary.LittleEndian.PutUint64(size, off+4096)
				if err := tx.Merge(k.size, "bench.max64", size); err != nil {
					return err
				}
				binary.LittleEndian.PutUint64(tm[8:], uint64(i))
				binary.LittleEndian.PutUint64(tm[16:], uint64(i))
				return tx.Merge(k.times, "bench.times", tm)
			})
		})
	}
}

func BenchmarkFSCreate(b *testing.B) {
	for _, mode := range []string{"sync", "async"} {
		b.Run(mode, func(b *testing.B) {
			s := benchFSStore(b)
			dir := fsKeys(FirstOID)
			_, err := s.Update(context.Background(), UpdateOptions{}, func(tx *Tx) error {
				return tx.Put(dir.attr, make([]byte, 40))
			})
			require.NoError(b, err)
			ctx := context.Background()
			attr, zero, one, tm := make([]byte, 40), make([]byte, 8), []byte{1, 0, 0, 0, 0, 0, 0, 0}, make([]byte, 24)
			ent := make([]byte, 12)
			runFSOps(b, s, mode == "async", func(i int, tx *Tx) error {
				oid, err := s.NewOID(ctx)
				if err != nil {
					return err
				}
				name := []byte(fmt.Sprintf("file-%08d", i))
				entry := Path{OID: FirstOID | 1<<62, Dkey: name, Akey: []byte("e")}
				if err := tx.Predicate(Predicate{Path: entry, Kind: Absent}); err != nil {
					return err
				}
				if err := tx.Predicate(Predicate{Path: dir.attr, Kind: Exists}); err != nil {
					return err
				}
				if _, _, err := tx.Get(dir.attr); err != nil {
					return err
				}
				k := fsKeys(oid)
				for _, kv := range []struct {
					p Path
					v []byte
				}{{k.attr, attr}, {k.size, zero}, {k.links, one}, {k.times, tm}} {
					if err := tx.Put(kv.p, kv.v); err != nil {
						return err
					}
				}
				binary.LittleEndian.PutUint64(ent, oid)
				if err := tx.Put(entry, ent); err != nil {
					return err
				}
				return tx.Merge(dir.times, "bench.times", tm)
			})
		})
	}
}
