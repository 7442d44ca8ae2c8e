package vos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"vosfs/blob"
	"vosfs/pool"
	"vosfs/umem"
)

// recordOf returns the newest record under the key prefix of p's value or
// array extent at array offset off (value: extent false).
func recordOf(t *testing.T, s *Store, p Path, extent bool, off uint64) rec {
	t.Helper()
	var r rec
	require.NoError(t, s.p.View(func(rd umem.Reader) error {
		key := p.valueKey(^uint64(0) >> 1)
		if extent {
			key = p.extKey(off, ^uint64(0)>>1)
		}
		it := s.tree.Seek(rd, key)
		if !it.Next() {
			return fmt.Errorf("no record at %x", key)
		}
		var err error
		r, err = decodeRec(it.Value())
		return err
	}))
	return r
}

// flipData flips one byte of the data blob at data block block, byte at.
func flipData(t *testing.T, mfs *blob.MemFS, block, at uint64) {
	t.Helper()
	f, err := mfs.Open("pool/" + pool.DataFile)
	require.NoError(t, err)
	defer f.Close()
	pos := int64(pool.DataOffset + block*blockSize + at)
	b := make([]byte, 1)
	_, err = f.ReadAt(b, pos)
	require.NoError(t, err)
	b[0] ^= 0x5a
	_, err = f.WriteAt(b, pos)
	require.NoError(t, err)
	require.NoError(t, f.Sync())
}

// flipHeap changes one byte of the heap at off behind the store's back (a
// pool transaction that vos did not make), as damage to heap pages would.
func flipHeap(t *testing.T, s *Store, off uint64) {
	t.Helper()
	var b byte
	require.NoError(t, s.p.View(func(r umem.Reader) error {
		got, err := r.Bytes(off, 1)
		b = got[0]
		return err
	}))
	_, err := s.p.Update(context.Background(), func(tx *pool.Tx) error { return tx.Write(off, []byte{b ^ 0x5a}) })
	require.NoError(t, err)
}

type logCapture struct {
	mu    sync.Mutex
	lines []string
}

func (l *logCapture) logf(format string, args ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

// TestVerifiedReads damages a data extent, a heap-held extent, a heap value
// and a data-blob value, and reads each through the latest state, a
// snapshot and a transaction: every read that touches the damage fails with
// ErrChecksum naming the object and blob position, leaves no damaged byte in
// the caller's buffer, is counted, and is logged once per place; reads of the
// undamaged parts return exact bytes.
func TestVerifiedReads(t *testing.T) {
	mfs := blob.NewMemFS(1)
	require.NoError(t, pool.Create(mfs, "pool", testConfig()))
	p, err := pool.Open(mfs, "pool", pool.Options{})
	require.NoError(t, err)
	var lc logCapture
	s, err := Open(p, Options{AggregateInterval: -1, Logf: lc.logf})
	require.NoError(t, err)
	defer func() { s.Close(); p.Close() }()
	ctx := context.Background()

	big := bytes.Repeat([]byte("0123456789abcdef"), 6*blockSize/16) // six blocks, above the threshold: the data blob
	small := bytes.Repeat([]byte("heap"), 256)                      // 1 KiB: the heap
	arr, harr := path(1, "d", "arr"), path(1, "d", "harr")
	val, dval, ok := path(2, "d", "val"), path(2, "d", "dval"), path(2, "d", "ok")
	_, err = s.Update(ctx, UpdateOptions{}, func(tx *Tx) error {
		for _, w := range []struct {
			p   Path
			off uint64
		}{{arr, 0}, {arr, uint64(len(big))}} {
			if err := tx.WriteArray(w.p, w.off, big, nil); err != nil {
				return err
			}
		}
		if err := tx.WriteArray(harr, 0, small, nil); err != nil {
			return err
		}
		if err := tx.Put(val, small); err != nil {
			return err
		}
		if err := tx.Put(ok, []byte("fine")); err != nil {
			return err
		}
		return tx.Put(dval, big)
	})
	require.NoError(t, err)
	_, err = s.CreateSnapshot(ctx, "before")
	require.NoError(t, err)

	ext := recordOf(t, s, arr, true, uint64(len(big))) // the second extent
	require.Equal(t, uint8(recData), ext.kind)
	hext := recordOf(t, s, harr, true, 0)
	require.Equal(t, uint8(recHeap), hext.kind)
	hval := recordOf(t, s, val, false, 0)
	require.Equal(t, uint8(recHeap), hval.kind)
	dv := recordOf(t, s, dval, false, 0)
	require.Equal(t, uint8(recData), dv.kind)

	flipData(t, mfs, ext.loc+1, 100) // the second extent's second block
	flipData(t, mfs, dv.loc, 7)
	flipHeap(t, s, hext.loc+3)
	flipHeap(t, s, hval.loc+500)

	snap, err := s.Snapshot("before")
	require.NoError(t, err)
	defer snap.Close()
	latest := s.Latest()
	defer latest.Close()
	readers := map[string]*View{"latest": latest, "snapshot": snap}
	wantErr := func(err error, p Path, where string) {
		t.Helper()
		require.ErrorIs(t, err, ErrChecksum)
		require.Contains(t, err.Error(), p.String())
		require.Contains(t, err.Error(), where)
	}
	extWhere := fmt.Sprintf("data blob block %d", ext.loc)
	for name, v := range readers {
		t.Run(name, func(t *testing.T) {
			// The first extent alone reads back exactly.
			buf := make([]byte, len(big))
			require.NoError(t, v.ReadArray(arr, 0, buf))
			require.Equal(t, big, buf)
			// Any read touching the damaged extent fails, even one of its
			// first block only (the damage is in its second), and the
			// caller's buffer holds none of the extent's bytes.
			for _, c := range []struct{ off, n uint64 }{
				{uint64(len(big)), 10},                      // head of the damaged extent
				{uint64(len(big)) - 100, 200},               // across both extents
				{0, uint64(2 * len(big))},                   // both whole
				{uint64(len(big)), uint64(len(big))},        // the damaged one whole
				{uint64(len(big)) + blockSize + 90, 20},     // right at the damage
				{uint64(2*len(big)) - 1, 1},                 // its last byte
				{uint64(2*len(big)) - blockSize, blockSize}, // its last block
			} {
				buf := bytes.Repeat([]byte{0xee}, int(c.n))
				err := v.ReadArray(arr, c.off, buf)
				wantErr(err, arr, extWhere)
				for i := uint64(0); i < c.n; i++ {
					if at := c.off + i; at >= uint64(len(big)) && buf[i] != 0xee && buf[i] != 0 {
						t.Fatalf("read [%d,+%d): byte %d of the damaged extent reached the buffer: %#x", c.off, c.n, at, buf[i])
					}
				}
			}
			err := v.ReadArray(harr, 10, make([]byte, 10))
			wantErr(err, harr, fmt.Sprintf("heap offset %#x", hext.loc))
			_, _, err = v.Get(val)
			wantErr(err, val, fmt.Sprintf("heap offset %#x", hval.loc))
			_, _, err = v.Get(dval)
			wantErr(err, dval, fmt.Sprintf("data blob block %d", dv.loc))
			got, found, err := v.Get(ok)
			require.NoError(t, err)
			require.True(t, found)
			require.Equal(t, "fine", string(got))
		})
	}
	// A transaction reads the same way.
	tx := s.Begin()
	err = tx.ReadArray(arr, uint64(len(big)), make([]byte, 8))
	wantErr(err, arr, extWhere)
	_, _, err = tx.Get(val)
	wantErr(err, val, "heap offset")
	tx.Abort()

	// Four damaged places, each logged once however often it was read.
	lc.mu.Lock()
	lines := append([]string(nil), lc.lines...)
	lc.mu.Unlock()
	require.Len(t, lines, 4, "%q", lines)
	for _, w := range []string{extWhere, fmt.Sprintf("heap offset %#x", hext.loc), fmt.Sprintf("heap offset %#x", hval.loc), fmt.Sprintf("data blob block %d", dv.loc)} {
		n := 0
		for _, l := range lines {
			if strings.Contains(l, w) {
				n++
			}
		}
		require.Equal(t, 1, n, "log lines naming %s: %q", w, lines)
	}
	// Every refused read counted: 7 cases + 3 others per view, 2 in the tx.
	require.Equal(t, uint64(2*10+2), s.Stats().ChecksumErrors)
	// Check finds the same damage.
	require.True(t, errors.Is(s.Check(), ErrInconsistent))
}
