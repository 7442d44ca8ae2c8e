package btree

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"vosfs/alloc"
	"vosfs/pool"
	"vosfs/umem"
	"vosfs/wal"
)

// recorder is a log that keeps only the sizes of the records given to it.
type recorder struct {
	bodies, records uint64
	next            wal.ID
}

func (l *recorder) Append(b wal.Encoder, _ []wal.DataWait) (*wal.Commit, error) {
	l.bodies += uint64(b.Len())
	l.records += wal.RecordSize(b.Len())
	l.next += 8
	return &wal.Commit{ID: l.next}, nil
}

// heapTx is a Writer over a bare umem heap and heap allocator: the same
// transaction and allocator code as the pool's, with the record sizes
// visible.
type heapTx struct {
	*umem.Tx
	a *alloc.Heap
}

func (x heapTx) Alloc(size uint64) (uint64, error) { return x.a.Alloc(x.Tx, size) }
func (x heapTx) Free(off, size uint64) error       { return x.a.Free(x.Tx, off, size) }

type bareHeap struct {
	h   *umem.Heap
	a   *alloc.Heap
	log recorder
}

func newBareHeap(t testing.TB) *bareHeap {
	const (
		size      = 64 << 20
		bitmapOff = 4096
		arenaOff  = 128 << 10
		arenaSize = 60 << 20
	)
	h := umem.New(size)
	a, err := alloc.NewHeap(h, bitmapOff, arenaOff, arenaSize)
	require.NoError(t, err)
	return &bareHeap{h: h, a: a}
}

func (b *bareHeap) update(t testing.TB, fn func(w Writer) error) {
	tx := b.h.Begin(4 << 20)
	if err := fn(heapTx{tx, b.a}); err != nil {
		tx.Abort()
		require.NoError(t, err)
	}
	_, err := tx.Commit(&b.log)
	require.NoError(t, err)
}

// TestLogBytesPerInsert measures the log record of single-insert
// transactions (32-byte keys and values) into a tree of 100,000 keys: it
// must stay far below a node. Overwrites and deletes are measured too.
func TestLogBytesPerInsert(t *testing.T) {
	const (
		base = 100_000
		ops  = 10_000
	)
	b := newBareHeap(t)
	tr := Tree{RootPtr: 2048, ValueSize: 32}
	rng := rand.New(rand.NewPCG(3, 4))
	key := func() []byte {
		k := make([]byte, 32)
		for i := 0; i < 32; i += 8 {
			binary.BigEndian.PutUint64(k[i:], rng.Uint64())
		}
		return k
	}
	val := key
	keys := make([][]byte, 0, base+ops)
	for i := 0; i < base; i += 1000 {
		b.update(t, func(w Writer) error {
			for range 1000 {
				k := key()
				keys = append(keys, k)
				if _, err := tr.Put(w, k, val()); err != nil {
					return err
				}
			}
			return nil
		})
	}

	measure := func(what string, limit uint64, fn func(w Writer, i int) error) {
		before := b.log
		for i := range ops {
			b.update(t, func(w Writer) error { return fn(w, i) })
		}
		body := (b.log.bodies - before.bodies) / ops
		rec := (b.log.records - before.records) / ops
		t.Logf("%s: %d log bytes per transaction (record body %d)", what, rec, body)
		require.Less(t, rec, limit)
	}
	measure("insert", 1024, func(w Writer, i int) error {
		k := key()
		keys = append(keys, k)
		_, err := tr.Put(w, k, val())
		return err
	})
	measure("overwrite", 256, func(w Writer, i int) error {
		_, err := tr.Put(w, keys[rng.IntN(len(keys))], val())
		return err
	})
	measure("delete", 512, func(w Writer, i int) error {
		found, err := tr.Delete(w, keys[i])
		require.True(t, found)
		return err
	})
	var st Stats
	require.NoError(t, b.h.View(func(r umem.Reader) error {
		var err error
		st, _, err = tr.Check(r)
		return err
	}))
	require.Equal(t, base+ops-ops, st.Keys)
	t.Logf("tree: %+v, fill %.0f%%", st, 100*float64(st.Used)/float64(st.Bytes))
}

// TestLogBytesPool measures the same on a pool: 10,000 single-insert
// transactions into a tree of 100,000 keys, committed without waiting so
// that group commit batches them, and the ring bytes the log wrote.
func TestLogBytesPool(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a tree of 100,000 keys")
	}
	const (
		base = 100_000
		ops  = 10_000
	)
	tr := Tree{RootPtr: pool.RootOffset, ValueSize: 32}
	e := newEnv(t, testConfig(), tr)
	rng := rand.New(rand.NewPCG(5, 6))
	key := func() []byte {
		k := make([]byte, 32)
		for i := 0; i < 32; i += 8 {
			binary.BigEndian.PutUint64(k[i:], rng.Uint64())
		}
		return k
	}
	for i := 0; i < base; i += 2000 {
		e.update(func(tx *pool.Tx) error {
			for range 2000 {
				if _, err := tr.Put(tx, key(), key()); err != nil {
					return err
				}
			}
			return nil
		})
	}
	require.NoError(t, e.p.Sync())
	before := e.p.Stats().Log
	for range ops {
		_, err := e.p.UpdateAsync(context.Background(), func(tx *pool.Tx) error {
			_, err := tr.Put(tx, key(), key())
			return err
		})
		require.NoError(t, err)
	}
	require.NoError(t, e.p.Sync())
	after := e.p.Stats().Log
	written := after.BytesWritten - before.BytesWritten
	batches := after.Batches - before.Batches
	t.Logf("pool: %d log bytes per insert (%d records in %d group commits, block padding included)",
		written/ops, after.Records-before.Records, batches)
	require.Equal(t, uint64(ops), after.Records-before.Records)
}
