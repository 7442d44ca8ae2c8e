package btree

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"vosfs/blob"
	"vosfs/pool"
	"vosfs/umem"
	"vosfs/wal"
)

// TestCrashDuringUpdates cuts the power at random points of a stream of
// random update transactions, on a small log that checkpoints and wraps
// often, so that recovery replays tree changes over checkpointed images of
// every age. After each crash the tree must hold exactly the transactions
// that returned, plus possibly the one in flight, and pass every check.
func TestCrashDuringUpdates(t *testing.T) {
	tr := Tree{RootPtr: pool.RootOffset, ValueSize: 8}
	cfg := pool.Config{DataSize: 4096 + 2<<20, MetaSize: 16 << 20, WALSize: wal.RingOffset + 1<<20, RecordLimit: 128 << 10}
	e := newEnvOpts(t, cfg, pool.Options{DirtyLimit: 256 << 10}, tr)
	rng := rand.New(rand.NewPCG(testSeed(t, 21), 22))
	g := newKeyGen(rng)
	m := newModel()
	rounds := 40
	if testing.Short() {
		rounds = 10
	}
	replayed := 0
	for round := 0; round < rounds; round++ {
		e.fs.CrashAfter(1 + rng.IntN(150))
		var next *model
		for {
			next = m.clone()
			_, err := e.p.Update(t.Context(), func(tx *pool.Tx) error {
				for range 40 {
					switch r := rng.IntN(10); {
					case r < 5 || len(next.live) == 0:
						k, v := g.key(), g.bytes(8)
						if _, err := tr.Put(tx, k, v); err != nil {
							return err
						}
						next.put(string(k), v)
					case r < 7:
						k, v := next.pick(rng), g.bytes(8)
						if _, err := tr.Put(tx, []byte(k), v); err != nil {
							return err
						}
						next.put(k, v)
					default:
						k := next.pick(rng)
						if _, err := tr.Delete(tx, []byte(k)); err != nil {
							return err
						}
						next.del(k)
					}
				}
				return nil
			})
			if err != nil {
				require.True(t, errors.Is(err, blob.ErrCrashed) || errors.Is(err, pool.ErrFailed) || errors.Is(err, pool.ErrClosed), "%v", err)
				break
			}
			m = next
		}
		e.crash()
		replayed += int(e.p.Recovery().Records)
		if !holds(t, e, tr, m) {
			require.True(t, holds(t, e, tr, next), "round %d: the tree holds neither the committed state nor the one in flight", round)
			m = next
		}
		verify(e, tr, m, g)
	}
	t.Logf("%d crashes, %d records replayed, %d keys at the end", rounds, replayed, len(m.live))
}

func (m *model) clone() *model {
	c := newModel()
	for _, k := range m.live {
		c.put(k, m.m[k])
	}
	return c
}

// holds reports whether the tree holds exactly the model.
func holds(t *testing.T, e *env, tr Tree, m *model) bool {
	same := true
	require.NoError(t, e.p.View(func(r umem.Reader) error {
		n := 0
		it := tr.Seek(r, nil)
		for it.Next() {
			v, ok := m.m[string(it.Key())]
			if !ok || string(v) != string(it.Value()) {
				same = false
				return nil
			}
			n++
		}
		same = n == len(m.live)
		return it.Err()
	}))
	return same
}
