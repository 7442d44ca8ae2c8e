package btree

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"vosfs/alloc"
	"vosfs/pool"
	"vosfs/umem"
	"vosfs/wal"
)

func TestEmptyTree(t *testing.T) {
	tr := Tree{RootPtr: pool.RootOffset, ValueSize: 8}
	e := newEnv(t, testConfig(), tr)
	e.view(func(r umem.Reader) error {
		_, ok, err := tr.Get(r, []byte("a"))
		require.NoError(t, err)
		require.False(t, ok)
		it := tr.Seek(r, nil)
		require.False(t, it.Next())
		require.NoError(t, it.Err())
		_, _, ok, err = tr.SeekLE(r, []byte("z"))
		require.NoError(t, err)
		require.False(t, ok)
		return nil
	})
	require.False(t, e.del(tr, []byte("a")))
	require.Equal(t, Stats{}, e.check())
	e.update(func(tx *pool.Tx) error { return tr.Destroy(tx) })
}

func TestPutGetDelete(t *testing.T) {
	tr := Tree{RootPtr: pool.RootOffset, ValueSize: 4}
	e := newEnv(t, testConfig(), tr)
	free := e.p.Stats().Heap.Free
	require.False(t, e.put(tr, []byte("b"), []byte("val1")))
	require.False(t, e.put(tr, nil, []byte("empt")))
	require.True(t, e.put(tr, []byte("b"), []byte("val2")))
	v, ok := e.get(tr, []byte("b"))
	require.True(t, ok)
	require.Equal(t, []byte("val2"), v)
	v, ok = e.get(tr, []byte{})
	require.True(t, ok)
	require.Equal(t, []byte("empt"), v)
	_, ok = e.get(tr, []byte("a"))
	require.False(t, ok)
	require.Equal(t, Stats{Depth: 1, Nodes: 1, Leaves: 1, Keys: 2, Bytes: NodeSize,
		Used: hdrSize + 2*slotSize + 2*recHead + 1 + 2*4, KeyBytes: 1}, e.check())
	require.Equal(t, free-NodeSize, e.p.Stats().Heap.Free)

	e.view(func(r umem.Reader) error {
		k, v, ok, err := tr.SeekLE(r, []byte("a"))
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, []byte{}, k)
		require.Equal(t, []byte("empt"), v)
		k, _, ok, err = tr.SeekLE(r, []byte("zz"))
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, []byte("b"), k)
		return nil
	})

	require.True(t, e.del(tr, []byte("b")))
	require.False(t, e.del(tr, []byte("b")))
	require.True(t, e.del(tr, nil))
	require.Equal(t, Stats{}, e.check())
	require.Equal(t, free, e.p.Stats().Heap.Free)
}

func TestLimits(t *testing.T) {
	tr := Tree{RootPtr: pool.RootOffset, ValueSize: 8}
	e := newEnv(t, testConfig(), tr)
	long := bytes.Repeat([]byte("k"), MaxKeySize+1)
	_, err := e.p.Update(context.Background(), func(tx *pool.Tx) error {
		_, err := tr.Put(tx, long, make([]byte, 8))
		return err
	})
	require.ErrorIs(t, err, ErrKeyTooLong)
	_, err = e.p.Update(context.Background(), func(tx *pool.Tx) error {
		_, err := tr.Delete(tx, long)
		return err
	})
	require.ErrorIs(t, err, ErrKeyTooLong)
	require.NoError(t, e.p.View(func(r umem.Reader) error {
		_, _, err := tr.Get(r, long)
		require.ErrorIs(t, err, ErrKeyTooLong)
		// Seeking past a long bound is fine.
		it := tr.Seek(r, long)
		require.False(t, it.Next())
		require.NoError(t, it.Err())
		return nil
	}))
	_, err = e.p.Update(context.Background(), func(tx *pool.Tx) error {
		_, err := tr.Put(tx, []byte("k"), make([]byte, 7))
		return err
	})
	require.ErrorIs(t, err, ErrValueSize)
	bad := Tree{RootPtr: pool.RootOffset, ValueSize: MaxValueSize + 1}
	require.NoError(t, e.p.View(func(r umem.Reader) error {
		_, _, err := bad.Get(r, nil)
		require.ErrorIs(t, err, ErrValueSize)
		return nil
	}))
	require.False(t, e.put(tr, long[:MaxKeySize], []byte("12345678")))
	v, ok := e.get(tr, long[:MaxKeySize])
	require.True(t, ok)
	require.Equal(t, []byte("12345678"), v)
}

// Maximal entries (MaxKeySize keys sharing long prefixes, MaxValueSize
// values) give nodes of three entries, long separators and deep trees; value
// size 0 gives a set.
func TestExtremeSizes(t *testing.T) {
	for _, vs := range []int{0, 1, MaxValueSize} {
		t.Run(fmt.Sprint(vs), func(t *testing.T) {
			tr := Tree{RootPtr: pool.RootOffset, ValueSize: vs}
			e := newEnv(t, testConfig(), tr)
			free := e.p.Stats().Heap.Free
			rng := rand.New(rand.NewPCG(uint64(vs), 7))
			g := newKeyGen(rng)
			m := newModel()
			common := bytes.Repeat([]byte{0xab}, MaxKeySize)
			key := func() []byte {
				n := MaxKeySize - rng.IntN(2)*rng.IntN(MaxKeySize)
				k := append(bytes.Clone(common[:n-min(n, 3)]), g.bytes(min(n, 3))...)
				if rng.IntN(4) == 0 {
					k = g.bytes(n)
				}
				return k
			}
			depth := 0
			for b := 0; b < 30; b++ {
				e.update(func(tx *pool.Tx) error {
					for range 60 {
						if rng.IntN(4) == 0 && len(m.live) > 0 {
							k := m.pick(rng)
							found, err := tr.Delete(tx, []byte(k))
							require.NoError(t, err)
							require.True(t, found)
							m.del(k)
							continue
						}
						k, v := key(), g.bytes(vs)
						_, err := tr.Put(tx, k, v)
						require.NoError(t, err)
						m.put(string(k), v)
					}
					return nil
				})
				verify(e, tr, m, g)
				depth = max(depth, e.check().Depth)
			}
			t.Logf("%d keys, depth %d", len(m.live), depth)
			require.GreaterOrEqual(t, depth, 4)
			for _, k := range m.sorted() {
				require.True(t, e.del(tr, []byte(k)))
			}
			require.Equal(t, Stats{}, e.check())
			require.Equal(t, free, e.p.Stats().Heap.Free)
		})
	}
}

// Errors of the Writer come back wrapped; the aborted transaction leaves the
// tree as it was.
func TestWriterErrors(t *testing.T) {
	tr := Tree{RootPtr: pool.RootOffset, ValueSize: 32}
	e := newEnv(t, pool.Config{DataSize: 4096 + 1<<20, MetaSize: 1 << 20, WALSize: 8192 + 1<<20, RecordLimit: 64 << 10}, tr)
	rng := rand.New(rand.NewPCG(8, 9))
	g := newKeyGen(rng)
	m := newModel()
	put := func(tx *pool.Tx, k []byte) error {
		v := g.bytes(32)
		_, err := tr.Put(tx, k, v)
		if err == nil {
			m.put(string(k), v)
		}
		return err
	}

	// A transaction that changes too much is refused whole.
	snapshot := func() *model {
		c := newModel()
		for k, v := range m.m {
			c.put(k, v)
		}
		return c
	}
	_, err := e.p.Update(context.Background(), func(tx *pool.Tx) error {
		for {
			if err := put(tx, g.key()); err != nil {
				return err
			}
		}
	})
	require.ErrorIs(t, err, wal.ErrRecordTooLarge)
	m = newModel()
	verify(e, tr, m, g)

	// So is one that returns an error of its own.
	for range 20 {
		e.update(func(tx *pool.Tx) error {
			for range 50 {
				if err := put(tx, g.key()); err != nil {
					return err
				}
			}
			return nil
		})
	}
	saved := snapshot()
	mine := errors.New("mine")
	_, err = e.p.Update(context.Background(), func(tx *pool.Tx) error {
		for range 60 {
			if err := put(tx, g.key()); err != nil {
				return err
			}
			if _, err := tr.Delete(tx, []byte(m.pick(rng))); err != nil {
				return err
			}
		}
		return mine
	})
	require.ErrorIs(t, err, mine)
	m = saved
	verify(e, tr, m, g)

	// Fill the heap: the insert that needs a node it cannot get fails with
	// the allocator's error, and the tree holds what was committed.
	var full error
	for full == nil {
		k := make([]byte, 200)
		binary.BigEndian.PutUint64(k, rng.Uint64())
		_, full = e.p.Update(context.Background(), func(tx *pool.Tx) error { return put(tx, k) })
	}
	require.ErrorIs(t, full, alloc.ErrNoSpace)
	verify(e, tr, m, g)
	e.crash()
	verify(e, tr, m, g)
}

// The empty key, the least of all, goes alone into a new leaf when the
// leftmost leaf is full; the greatest key into a new last leaf.
func TestEdgeKeysSplit(t *testing.T) {
	tr := Tree{RootPtr: pool.RootOffset, ValueSize: MaxValueSize}
	val := func(s string) []byte { return append([]byte(s), make([]byte, MaxValueSize-len(s))...) }
	e := newEnv(t, testConfig(), tr)
	g := newKeyGen(rand.New(rand.NewPCG(41, 42)))
	m := newModel()
	e.update(func(tx *pool.Tx) error {
		for i := 0; i < 98; i++ { // 14 full leaves of 7 entries
			k := append([]byte(fmt.Sprintf("b%04d", i)), bytes.Repeat([]byte{'x'}, 300)...)
			if _, err := tr.Put(tx, k, val("v")); err != nil {
				return err
			}
			m.put(string(k), val("v"))
		}
		return nil
	})
	before := e.check().Leaves
	require.False(t, e.put(tr, nil, val("empty")))
	m.put("", val("empty"))
	require.False(t, e.put(tr, []byte{0xff, 0xff}, val("last")))
	m.put("\xff\xff", val("last"))
	require.Equal(t, before+2, e.check().Leaves)
	verify(e, tr, m, g)
	require.True(t, e.del(tr, nil))
	m.del("")
	verify(e, tr, m, g)
}
