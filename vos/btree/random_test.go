package btree

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"vosfs/pool"
)

// TestRandomOps runs 50,000 seeded random inserts, overwrites and deletes
// in batches of one transaction each, and after every batch compares the
// tree with a model, checks it and checks the pool's allocator against its
// nodes. The tree grows, then shrinks; then the pool is closed and reopened,
// and crashed and reopened, and must hold exactly the model; finally every
// key is deleted, which must free every node.
func TestRandomOps(t *testing.T) {
	const (
		batches  = 125
		perBatch = 400
		vs       = 16
	)
	tr := Tree{RootPtr: pool.RootOffset, ValueSize: vs}
	e := newEnv(t, testConfig(), tr)
	emptyFree := e.p.Stats().Heap.Free
	rng := rand.New(rand.NewPCG(testSeed(t, 1), 2))
	g := newKeyGen(rng)
	m := newModel()
	value := func() []byte {
		v := make([]byte, vs)
		for i := range v {
			v[i] = byte(rng.Uint32())
		}
		return v
	}

	var maxStats Stats
	for b := 0; b < batches; b++ {
		// Grow for the first 60% of the batches, then shrink.
		pNew, pOver := 60, 80
		if b >= batches*6/10 {
			pNew, pOver = 35, 50
		}
		e.update(func(tx *pool.Tx) error {
			for range perBatch {
				r := rng.IntN(100)
				switch {
				case r < pNew || len(m.live) == 0:
					k, v := g.key(), value()
					_, had := m.m[string(k)]
					replaced, err := tr.Put(tx, k, v)
					require.NoError(t, err)
					require.Equal(t, had, replaced)
					m.put(string(k), v)
				case r < pOver:
					k := m.pick(rng)
					v := value()
					if rng.IntN(4) == 0 {
						v = bytes.Clone(m.m[k])
					}
					replaced, err := tr.Put(tx, []byte(k), v)
					require.NoError(t, err)
					require.True(t, replaced)
					m.put(k, v)
				case r < 95:
					k := m.pick(rng)
					found, err := tr.Delete(tx, []byte(k))
					require.NoError(t, err)
					require.True(t, found, "key %q", k)
					m.del(k)
				default:
					k := g.key()
					_, had := m.m[string(k)]
					found, err := tr.Delete(tx, k)
					require.NoError(t, err)
					require.Equal(t, had, found)
					m.del(string(k))
				}
			}
			return nil
		})
		verify(e, tr, m, g)
		if st := e.check(); st.Nodes > maxStats.Nodes {
			maxStats = st
		}
	}
	t.Logf("largest tree: %+v; end: %d keys", maxStats, len(m.live))

	e.crash()
	verify(e, tr, m, g)
	e.reopen()
	verify(e, tr, m, g)

	// Delete everything, in random order; every node must be freed.
	keys := m.sorted()
	rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	for len(keys) > 0 {
		n := min(len(keys), 500)
		e.update(func(tx *pool.Tx) error {
			for _, k := range keys[:n] {
				found, err := tr.Delete(tx, []byte(k))
				require.NoError(t, err)
				require.True(t, found)
				m.del(k)
			}
			return nil
		})
		keys = keys[n:]
		verify(e, tr, m, g)
	}
	st := e.check()
	require.Equal(t, Stats{}, st)
	require.Equal(t, emptyFree, e.p.Stats().Heap.Free)
	e.crash()
	verify(e, tr, m, g)
	require.Equal(t, emptyFree, e.p.Stats().Heap.Free)
}
