package btree

import (
	"bytes"
	"errors"
	"testing"

	"vosfs/umem"
)

// fuzzHeap lays out a heap for FuzzNodeDecode: the root pointer at 0 names
// the node at NodeSize, whose bytes (and those of the node after it) come
// from the fuzzer; nodes 4 to 7 are for fuzzAlloc.
func fuzzHeap(data []byte) *umem.Heap {
	img := make([]byte, 8*NodeSize)
	le.PutUint64(img, NodeSize)
	copy(img[NodeSize:3*NodeSize], data)
	h := umem.New(uint64(len(img)))
	if err := h.Load(bytes.NewReader(img), 0, nil); err != nil {
		panic(err)
	}
	return h
}

// seedNodes builds a valid two-level tree image for the corpus: an internal
// root at NodeSize over leaves at 2*NodeSize and 3*NodeSize (the second leaf
// lies outside the fuzzed bytes, so mutations see a dangling child too).
func seedNodes(vs int) []byte {
	sc := new(scratch)
	out := make([]byte, 2*NodeSize)
	e := sc.edit(0)
	e.init(out[:NodeSize], NodeSize, 1, 2*NodeSize, childSize)
	e.insert(0, []byte("m"), le.AppendUint64(nil, 3*NodeSize))
	copy(out, e.b)
	e = sc.edit(0)
	e.init(out[NodeSize:], 2*NodeSize, 0, 0, vs)
	for i, k := range []string{"", "a", "b\x00", "b\xff", "ca", "l"} {
		e.insert(i, []byte(k), bytes.Repeat([]byte{byte(i)}, vs))
	}
	e.remove(2)
	copy(out[NodeSize:], e.b)
	return out
}

// FuzzNodeDecode feeds arbitrary bytes as tree nodes to every read path and
// to Check: they may fail, never panic or loop.
func FuzzNodeDecode(f *testing.F) {
	f.Add(seedNodes(8), uint8(8))
	f.Add(seedNodes(0), uint8(0))
	f.Add(seedNodes(8)[NodeSize:], uint8(8))
	f.Add([]byte{}, uint8(8))
	f.Fuzz(func(t *testing.T, data []byte, vs uint8) { decodeAll(data, vs) })
}

// decodeAll runs every read path, Check and the write paths over data.
func decodeAll(data []byte, vs uint8) {
	{
		if len(data) > 2*NodeSize {
			data = data[:2*NodeSize]
		}
		b := make([]byte, NodeSize)
		copy(b, data)
		if nd, err := parseNode(b, NodeSize, int(vs)); err == nil {
			for i := 0; i < nd.n; i++ {
				nd.entry(i)
			}
			nd.search([]byte("b"))
		}
		tr := Tree{RootPtr: 0, ValueSize: int(vs)}
		h := fuzzHeap(data)
		_ = h.View(func(r umem.Reader) error {
			for _, k := range [][]byte{nil, []byte("a"), []byte("b\x00"), []byte("m"), []byte("zz")} {
				tr.Get(r, k)
				tr.SeekLE(r, k)
				it := tr.Seek(r, k)
				for n := 0; n < 5000 && it.Next(); n++ {
					_, _ = it.Key(), it.Value()
				}
			}
			tr.Check(r)
			return nil
		})
		// The write paths too, in a transaction thrown away.
		tx := h.Begin(1 << 20)
		w := &fuzzWriter{Tx: tx, next: 4 * NodeSize, freed: map[uint64]bool{}}
		for i, k := range [][]byte{[]byte("b"), nil, []byte("zz"), []byte("a"), []byte("b\x00")} {
			if i%2 == 0 {
				tr.Put(w, k, make([]byte, tr.ValueSize))
			} else {
				tr.Delete(w, k)
			}
		}
		tr.Destroy(w)
		tx.Abort()
	}
}

// fuzzWriter hands out nodes 4 to 7 of the fuzz heap and, like the real
// allocator, refuses to free a node twice.
type fuzzWriter struct {
	*umem.Tx
	next  uint64
	freed map[uint64]bool
}

func (w *fuzzWriter) Alloc(size uint64) (uint64, error) {
	if w.next+size > 8*NodeSize {
		return 0, errors.New("fuzz heap full")
	}
	off := w.next
	w.next += size
	return off, nil
}

func (w *fuzzWriter) Free(off, size uint64) error {
	if w.freed[off] {
		return errors.New("double free")
	}
	w.freed[off] = true
	return nil
}
