package btree

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"sort"

	"github.com/stretchr/testify/require"

	"vosfs/umem"
)

// model is what a tree must hold: a map with its keys, for random picks.
type model struct {
	m    map[string][]byte
	live []string       // the keys, in no order
	at   map[string]int // index of each key in live
}

func newModel() *model { return &model{m: map[string][]byte{}, at: map[string]int{}} }

func (m *model) put(k string, v []byte) {
	if _, ok := m.m[k]; !ok {
		m.at[k] = len(m.live)
		m.live = append(m.live, k)
	}
	m.m[k] = v
}

func (m *model) del(k string) {
	i, ok := m.at[k]
	if !ok {
		return
	}
	last := m.live[len(m.live)-1]
	m.live[i] = last
	m.at[last] = i
	m.live = m.live[:len(m.live)-1]
	delete(m.at, k)
	delete(m.m, k)
}

func (m *model) pick(rng *rand.Rand) string { return m.live[rng.IntN(len(m.live))] }

func (m *model) sorted() []string {
	keys := slices.Clone(m.live)
	slices.Sort(keys)
	return keys
}

// keyGen makes keys of 1 to 300 bytes that often share long prefixes, plus
// the empty key and keys of MaxKeySize now and then.
type keyGen struct {
	rng      *rand.Rand
	prefixes [][]byte
}

func newKeyGen(rng *rand.Rand) *keyGen {
	g := &keyGen{rng: rng}
	for _, n := range []int{0, 1, 3, 8, 16, 40, 120, 250} {
		g.prefixes = append(g.prefixes, g.bytes(n))
	}
	return g
}

// bytes are random over a small alphabet (so keys collide in prefixes) with
// the extreme bytes mixed in.
func (g *keyGen) bytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		switch r := g.rng.IntN(20); {
		case r == 0:
			b[i] = 0
		case r == 1:
			b[i] = 0xff
		default:
			b[i] = 'a' + byte(r%4)
		}
	}
	return b
}

func (g *keyGen) key() []byte {
	switch r := g.rng.IntN(200); {
	case r == 0:
		return nil
	case r <= 2:
		return append(bytes.Clone(g.prefixes[g.rng.IntN(len(g.prefixes))]), g.bytes(MaxKeySize)...)[:MaxKeySize]
	}
	n := 1 + g.rng.IntN(300)
	if g.rng.IntN(2) == 0 {
		n = 1 + g.rng.IntN(12)
	}
	p := g.prefixes[g.rng.IntN(len(g.prefixes))]
	if len(p) >= n {
		return bytes.Clone(p[:n])
	}
	return append(bytes.Clone(p), g.bytes(n-len(p))...)
}

// verify compares the tree with the model: Get of every key and of absent
// ones, the full iteration, iterations from random starts and SeekLE.
func verify(e *env, tr Tree, m *model, g *keyGen) {
	t := e.t
	t.Helper()
	keys := m.sorted()
	e.view(func(r umem.Reader) error {
		for _, k := range keys {
			v, ok, err := tr.Get(r, []byte(k))
			require.NoError(t, err)
			require.True(t, ok, "key %q", k)
			require.Equal(t, m.m[k], v, "key %q", k)
		}
		for range 200 {
			k := g.key()
			_, want := m.m[string(k)]
			_, ok, err := tr.Get(r, k)
			require.NoError(t, err)
			require.Equal(t, want, ok, "key %q", k)
		}

		it := tr.Seek(r, nil)
		i := 0
		for it.Next() {
			require.Less(t, i, len(keys), "extra key %q", it.Key())
			require.Equal(t, keys[i], string(it.Key()))
			require.Equal(t, m.m[keys[i]], it.Value())
			i++
		}
		require.NoError(t, it.Err())
		require.Equal(t, len(keys), i)
		require.False(t, it.Next())

		for range 50 {
			start := g.key()
			if len(keys) > 0 && g.rng.IntN(2) == 0 {
				start = []byte(keys[g.rng.IntN(len(keys))])
			}
			j := sort.SearchStrings(keys, string(start))
			it := tr.Seek(r, start)
			for n := 0; n < 30 && it.Next(); n++ {
				require.Less(t, j, len(keys), "extra key %q", it.Key())
				require.Equal(t, keys[j], string(it.Key()), "seek %q step %d", start, n)
				require.Equal(t, m.m[keys[j]], it.Value())
				j++
			}
			require.NoError(t, it.Err())
			if j == len(keys) {
				require.False(t, it.Next())
			}
		}

		for range 200 {
			k := g.key()
			if len(keys) > 0 && g.rng.IntN(3) == 0 {
				k = []byte(keys[g.rng.IntN(len(keys))])
			}
			j := sort.SearchStrings(keys, string(k))
			if j == len(keys) || keys[j] != string(k) {
				j--
			}
			gk, gv, ok, err := tr.SeekLE(r, k)
			require.NoError(t, err)
			if j < 0 {
				require.False(t, ok, "SeekLE %q found %q", k, gk)
				continue
			}
			require.True(t, ok, "SeekLE %q", k)
			require.Equal(t, keys[j], string(gk), "SeekLE %q", k)
			require.Equal(t, m.m[keys[j]], gv)
		}
		return nil
	})
	st := e.check()
	require.Equal(t, len(keys), st.Keys)
}
