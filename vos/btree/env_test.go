package btree

import (
	"context"
	"os"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"vosfs/blob"
	"vosfs/pool"
	"vosfs/umem"
)

// The test environment: a real pool on a crashable in-memory filesystem,
// with trees rooted in the pool's root area.

func testConfig() pool.Config {
	return pool.Config{DataSize: 4096 + 2<<20, MetaSize: 32 << 20, WALSize: 8192 + 4<<20, RecordLimit: 1 << 20}
}

type env struct {
	t     testing.TB
	fs    *blob.MemFS
	p     *pool.Pool
	opts  pool.Options
	trees []Tree
}

// newEnv creates and opens a pool; the pool is checked against the trees and
// closed at cleanup.
func newEnv(t testing.TB, cfg pool.Config, trees ...Tree) *env {
	t.Helper()
	return newEnvOpts(t, cfg, pool.Options{}, trees...)
}

func newEnvOpts(t testing.TB, cfg pool.Config, opts pool.Options, trees ...Tree) *env {
	t.Helper()
	fs := blob.NewMemFS(1)
	require.NoError(t, pool.Create(fs, "p", cfg))
	p, err := pool.Open(fs, "p", opts)
	require.NoError(t, err)
	e := &env{t: t, fs: fs, p: p, opts: opts, trees: trees}
	t.Cleanup(func() {
		if e.p != nil {
			e.check()
			require.NoError(t, e.p.Close())
		}
	})
	return e
}

func (e *env) update(fn func(tx *pool.Tx) error) {
	e.t.Helper()
	_, err := e.p.Update(context.Background(), fn)
	require.NoError(e.t, err)
}

func (e *env) view(fn func(r umem.Reader) error) {
	e.t.Helper()
	require.NoError(e.t, e.p.View(fn))
}

// check runs Check on every tree and the pool's checker with their nodes as
// the only heap references, and returns the first tree's stats.
func (e *env) check() Stats {
	e.t.Helper()
	var spans []Stats
	var refs pool.Refs
	e.view(func(r umem.Reader) error {
		for _, tr := range e.trees {
			st, s, err := tr.Check(r)
			require.NoError(e.t, err)
			require.Len(e.t, s, st.Nodes)
			spans = append(spans, st)
			refs.Heap = append(refs.Heap, s...)
		}
		return nil
	})
	require.NoError(e.t, e.p.Check(refs))
	if len(spans) == 0 {
		return Stats{}
	}
	return spans[0]
}

// reopen closes the pool cleanly and opens it again.
func (e *env) reopen() {
	e.t.Helper()
	require.NoError(e.t, e.p.Close())
	e.p = nil
	p, err := pool.Open(e.fs, "p", e.opts)
	require.NoError(e.t, err)
	require.True(e.t, p.Recovery().Clean)
	e.p = p
}

// crash cuts the power (unless an armed crash already did) and opens the
// pool on what survived.
func (e *env) crash() {
	e.t.Helper()
	img := e.fs.CrashImage()
	if img == nil {
		img = e.fs.Crash()
	}
	_ = e.p.Close() // stops the dead pool's goroutines; its disk is gone
	e.p = nil
	e.fs = img
	p, err := pool.Open(e.fs, "p", e.opts)
	require.NoError(e.t, err)
	e.p = p
}

// put, get and del are single-operation helpers.
func (e *env) put(tr Tree, key, val []byte) (replaced bool) {
	e.t.Helper()
	e.update(func(tx *pool.Tx) error {
		var err error
		replaced, err = tr.Put(tx, key, val)
		return err
	})
	return replaced
}

func (e *env) get(tr Tree, key []byte) (val []byte, ok bool) {
	e.t.Helper()
	e.view(func(r umem.Reader) error {
		v, found, err := tr.Get(r, key)
		val, ok = append([]byte(nil), v...), found
		return err
	})
	return val, ok
}

func (e *env) del(tr Tree, key []byte) (found bool) {
	e.t.Helper()
	e.update(func(tx *pool.Tx) error {
		var err error
		found, err = tr.Delete(tx, key)
		return err
	})
	return found
}

// testSeed is the seed of a randomized test: def, or VOSFS_BTREE_SEED to
// replay another run. It is logged.
func testSeed(t testing.TB, def uint64) uint64 {
	t.Helper()
	seed := def
	if s := os.Getenv("VOSFS_BTREE_SEED"); s != "" {
		var err error
		seed, err = strconv.ParseUint(s, 10, 64)
		require.NoError(t, err)
	}
	t.Logf("seed %d (set VOSFS_BTREE_SEED to change)", seed)
	return seed
}
