package btree

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"vosfs/pool"
	"vosfs/umem"
)

// exercise runs every operation on tr and returns the errors they gave.
// A panic fails the test.
func exercise(t *testing.T, tr Tree, w Writer) (errs []error) {
	t.Helper()
	r := w.Reader()
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("panic: %v", p)
		}
	}()
	keys := [][]byte{nil, []byte("k0000"), []byte("k0150"), []byte("k0299"), []byte("zzz")}
	for _, k := range keys {
		_, _, err := tr.Get(r, k)
		errs = append(errs, err)
		_, _, _, err = tr.SeekLE(r, k)
		errs = append(errs, err)
		it := tr.Seek(r, k)
		for n := 0; it.Next() && n < 1000; n++ {
		}
		errs = append(errs, it.Err())
	}
	_, _, err := tr.Check(r)
	errs = append(errs, err)
	for _, k := range keys {
		_, err := tr.Put(w, k, []byte("12345678"))
		errs = append(errs, err)
		_, err = tr.Delete(w, k)
		errs = append(errs, err)
	}
	errs = append(errs, tr.Destroy(w))
	return errs
}

// Damaged nodes make operations fail with ErrCorrupt, never panic; Check
// finds every kind of damage.
func TestCorruption(t *testing.T) {
	tr := Tree{RootPtr: pool.RootOffset, ValueSize: 8}
	e := newEnv(t, testConfig(), tr)
	e.update(func(tx *pool.Tx) error {
		for i := 0; i < 300; i++ {
			k := []byte(fmt.Sprintf("k%04d", i))
			if _, err := tr.Put(tx, append(k, bytes.Repeat([]byte{'x'}, 100)...), []byte("abcdefgh")); err != nil {
				return err
			}
		}
		return nil
	})
	var root, leaf node
	e.view(func(r umem.Reader) error {
		off, err := r.Uint64(tr.RootPtr)
		require.NoError(t, err)
		root, err = readNode(r, off, tr.ValueSize)
		require.NoError(t, err)
		require.Equal(t, 1, root.level)
		leaf, err = root.descend(r, 0, tr.ValueSize)
		require.NoError(t, err)
		return nil
	})
	u16 := func(v uint16) []byte { return []byte{byte(v), byte(v >> 8)} }
	u64 := func(v uint64) []byte { b := make([]byte, 8); le.PutUint64(b, v); return b }
	leafSlot0 := uint64(leaf.slot(0))
	for _, c := range []struct {
		name string
		off  uint64
		b    []byte
	}{
		{"root kind", root.off + offKind, []byte{0}},
		{"root level", root.off + offLevel, []byte{7}},
		{"root count", root.off + offCount, u16(0xffff)},
		{"root low", root.off + offLow, u16(NodeSize + 1)},
		{"root garbage", root.off + offGarbage, u16(NodeSize)},
		{"root link null", root.off + offLink, u64(0)},
		{"root link outside heap", root.off + offLink, u64(1 << 60)},
		{"root link to itself", root.off + offLink, u64(root.off)},
		{"root link misplaced", root.off + offLink, u64(leaf.off + 64)},
		{"leaf slot in header", leaf.off + hdrSize, u16(5)},
		{"leaf slot past end", leaf.off + hdrSize, u16(NodeSize - 1)},
		{"leaf key length", leaf.off + leafSlot0, u16(0xffff)},
		{"leaf key length overrun", leaf.off + leafSlot0, u16(NodeSize)},
		{"leaf key order", leaf.off + leafSlot0 + recHead, []byte("z")},
		{"leaf link", leaf.off + offLink, u64(root.off)},
		{"leaf garbage", leaf.off + offGarbage, u16(64)},
		{"leaf kind", leaf.off + offKind, []byte{kindInternal}},
		{"root pointer outside heap", tr.RootPtr, u64(1 << 62)},
	} {
		t.Run(c.name, func(t *testing.T) {
			stop := errors.New("stop")
			_, err := e.p.Update(context.Background(), func(tx *pool.Tx) error {
				require.NoError(t, tx.Write(c.off, c.b))
				_, _, err := tr.Check(tx.Reader())
				require.Error(t, err)
				if c.name != "root pointer outside heap" {
					require.ErrorIs(t, err, ErrCorrupt)
				}
				for _, err := range exercise(t, tr, tx) {
					if err != nil && c.name != "root pointer outside heap" {
						require.ErrorIs(t, err, ErrCorrupt)
					}
				}
				return stop
			})
			require.ErrorIs(t, err, stop)
		})
	}
	st := e.check()
	require.Equal(t, 300, st.Keys)
}
