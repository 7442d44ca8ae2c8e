package btree

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"vosfs/pool"
	"vosfs/umem"
)

// Ascending and descending runs of inserts leave full nodes behind, and
// interleaved ascending runs (many objects each appending versions) stay
// well filled too.
func TestSequentialFill(t *testing.T) {
	const n = 20_000
	for _, c := range []struct {
		name    string
		key     func(i int) uint64
		minFill float64
	}{
		{"ascending", func(i int) uint64 { return uint64(i) }, 0.95},
		{"descending", func(i int) uint64 { return uint64(n - i) }, 0.95},
		{"interleaved", func(i int) uint64 { return uint64(i%16)<<32 | uint64(i/16) }, 0.85},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := newBareHeap(t)
			tr := Tree{RootPtr: 2048, ValueSize: 16}
			for i := 0; i < n; i += 100 {
				b.update(t, func(w Writer) error {
					for j := i; j < i+100; j++ {
						var k [16]byte
						binary.BigEndian.PutUint64(k[:], 1)
						binary.BigEndian.PutUint64(k[8:], c.key(j))
						if _, err := tr.Put(w, k[:], k[:]); err != nil {
							return err
						}
					}
					return nil
				})
			}
			var st Stats
			require.NoError(t, b.h.View(func(r umem.Reader) error {
				var err error
				st, _, err = tr.Check(r)
				return err
			}))
			fill := float64(st.Used) / float64(st.Bytes)
			t.Logf("%+v: fill %.1f%%, %d log bytes per insert", st, 100*fill, b.log.records/n)
			require.Equal(t, n, st.Keys)
			require.Greater(t, fill, c.minFill)
		})
	}
}

// Destroy frees every node; two trees in one pool do not disturb each other.
func TestDestroyAndTwoTrees(t *testing.T) {
	a := Tree{RootPtr: pool.RootOffset, ValueSize: 8}
	b := Tree{RootPtr: pool.RootOffset + 8, ValueSize: 24}
	e := newEnv(t, testConfig(), a, b)
	free := e.p.Stats().Heap.Free
	for i := 0; i < 6000; i += 500 {
		e.update(func(tx *pool.Tx) error {
			for j := i; j < i+500; j++ {
				k := []byte(fmt.Sprintf("key-%07d", j*7919%6000))
				if _, err := a.Put(tx, k, k[len(k)-8:]); err != nil {
					return err
				}
				if _, err := b.Put(tx, k, []byte(fmt.Sprintf("%s|%s|", k, k))); err != nil {
					return err
				}
			}
			return nil
		})
	}
	stats := func(tr Tree) Stats {
		var st Stats
		e.view(func(r umem.Reader) error {
			var err error
			st, _, err = tr.Check(r)
			return err
		})
		return st
	}
	sa, sb := stats(a), stats(b)
	require.Equal(t, 6000, sa.Keys)
	require.Equal(t, 6000, sb.Keys)
	e.check()
	require.Equal(t, free-sa.Bytes-sb.Bytes, e.p.Stats().Heap.Free)

	e.update(func(tx *pool.Tx) error { return a.Destroy(tx) })
	require.Equal(t, Stats{}, stats(a))
	require.Equal(t, sb, stats(b))
	e.trees = []Tree{b}
	e.check()
	require.Equal(t, free-sb.Bytes, e.p.Stats().Heap.Free)
	v, ok := e.get(b, []byte("key-0000042"))
	require.True(t, ok)
	require.Equal(t, []byte("key-0000042|key-0000042|"), v)
	e.update(func(tx *pool.Tx) error { return b.Destroy(tx) })
	require.Equal(t, Stats{}, e.check())
	require.Equal(t, free, e.p.Stats().Heap.Free)
	e.crash()
	require.Equal(t, Stats{}, e.check())
	require.Equal(t, free, e.p.Stats().Heap.Free)
}

// Random deletes of most keys leave leaves at least about a quarter full:
// small leaves are merged into their siblings.
func TestDeleteKeepsFill(t *testing.T) {
	const n = 20_000
	b := newBareHeap(t)
	tr := Tree{RootPtr: 2048, ValueSize: 16}
	rng := rand.New(rand.NewPCG(31, 32))
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = binary.BigEndian.AppendUint64(nil, rng.Uint64())
	}
	for i := 0; i < n; i += 500 {
		b.update(t, func(w Writer) error {
			for _, k := range keys[i : i+500] {
				if _, err := tr.Put(w, k, append(k, k...)); err != nil {
					return err
				}
			}
			return nil
		})
	}
	stats := func() Stats {
		var st Stats
		require.NoError(t, b.h.View(func(r umem.Reader) error {
			var err error
			st, _, err = tr.Check(r)
			return err
		}))
		return st
	}
	full := stats()
	for i := 0; i < n*9/10; i += 500 {
		b.update(t, func(w Writer) error {
			for _, k := range keys[i : i+500] {
				if found, err := tr.Delete(w, k); err != nil || !found {
					return fmt.Errorf("delete: %v %w", found, err)
				}
			}
			return nil
		})
	}
	st := stats()
	fill := float64(st.Used) / float64(st.Bytes)
	t.Logf("before: %d leaves; after deleting 90%%: %+v, fill %.1f%%", full.Leaves, st, 100*fill)
	require.Equal(t, n/10, st.Keys)
	require.Greater(t, fill, 0.25)
	require.Less(t, st.Leaves, full.Leaves/4)
}
