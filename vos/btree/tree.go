package btree

import (
	"fmt"

	"vosfs/umem"
)

// Writer is what a transaction offers the tree: *pool.Tx satisfies it.
type Writer interface {
	// Reader reads the heap as the transaction has changed it so far.
	Reader() umem.Reader
	// Write copies p to the heap at off, logging it.
	Write(off uint64, p []byte) error
	// PutUint64 stores v at off, logging it.
	PutUint64(off uint64, v uint64) error
	// Alloc allocates size bytes of heap space.
	Alloc(size uint64) (uint64, error)
	// Free frees heap space given by Alloc.
	Free(off, size uint64) error
}

// Tree is a B+tree in the heap, named by its root pointer: the heap offset
// of a uint64, owned by the caller, that holds the root node's offset (0 for
// an empty tree). ValueSize is the size of every value, in [0,
// MaxValueSize]; it is not stored, so every user of a tree must give the
// same. A Tree is a plain value: copy it freely.
type Tree struct {
	RootPtr   uint64
	ValueSize int
}

func (t Tree) checkValueSize() error {
	if t.ValueSize < 0 || t.ValueSize > MaxValueSize {
		return fmt.Errorf("%w: tree value size %d outside [0, %d]", ErrValueSize, t.ValueSize, MaxValueSize)
	}
	return nil
}

func checkKey(key []byte) error {
	if len(key) > MaxKeySize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrKeyTooLong, len(key), MaxKeySize)
	}
	return nil
}

// root reads the root pointer.
func (t Tree) root(r umem.Reader) (uint64, error) {
	off, err := r.Uint64(t.RootPtr)
	if err != nil {
		return 0, fmt.Errorf("btree: root pointer at %d: %w", t.RootPtr, err)
	}
	return off, nil
}

// Get returns the value of key. The value aliases the heap: it is valid
// while the caller holds the read lock (View) or is inside the transaction,
// and the tree is not changed. A key longer than MaxKeySize gives
// ErrKeyTooLong.
func (t Tree) Get(r umem.Reader, key []byte) (val []byte, ok bool, err error) {
	if err := t.checkValueSize(); err != nil {
		return nil, false, err
	}
	if err := checkKey(key); err != nil {
		return nil, false, err
	}
	off, err := t.root(r)
	if err != nil || off == 0 {
		return nil, false, err
	}
	nd, err := readNode(r, off, t.ValueSize)
	if err != nil {
		return nil, false, err
	}
	for !nd.leaf() {
		c, err := nd.childFor(key)
		if err != nil {
			return nil, false, err
		}
		if nd, err = nd.descend(r, c, t.ValueSize); err != nil {
			return nil, false, err
		}
	}
	i, eq, err := nd.search(key)
	if err != nil || !eq {
		return nil, false, err
	}
	_, v, err := nd.entry(i)
	if err != nil {
		return nil, false, err
	}
	return v, true, nil
}

// frame is one step of a descent: a node and the index of the child taken
// (-1 for the leftmost child) or, in a leaf, of the entry.
type frame struct {
	off uint64
	c   int
}

// op is the context of one change of the tree.
type op struct {
	t  Tree
	w  Writer
	r  umem.Reader
	sc *scratch
}

func newOp(t Tree, w Writer) *op {
	return &op{t: t, w: w, r: w.Reader(), sc: scratchPool.Get().(*scratch)}
}

func (o *op) release() {
	scratchPool.Put(o.sc)
	o.sc = nil
}

func (o *op) read(off uint64) (node, error) { return readNode(o.r, off, o.t.ValueSize) }

// descendTo walks from the root to the leaf whose range holds key and
// returns the leaf with the path of internal nodes above it (root first).
func (o *op) descendTo(root uint64, key []byte) (node, []frame, error) {
	path := o.sc.path[:0]
	nd, err := o.read(root)
	if err != nil {
		return node{}, nil, err
	}
	for !nd.leaf() {
		c, err := nd.childFor(key)
		if err != nil {
			return node{}, nil, err
		}
		path = append(path, frame{nd.off, c})
		if nd, err = nd.descend(o.r, c, o.t.ValueSize); err != nil {
			return node{}, nil, err
		}
	}
	o.sc.path = path
	return nd, path, nil
}

// alloc allocates a node and returns its heap offset and bytes.
func (o *op) alloc() (uint64, []byte, error) {
	off, err := o.w.Alloc(NodeSize)
	if err != nil {
		return 0, nil, fmt.Errorf("btree: allocate a node: %w", err)
	}
	b, err := o.r.Bytes(off, NodeSize)
	if err != nil {
		return 0, nil, fmt.Errorf("btree: allocated node at %d: %w", off, err)
	}
	return off, b, nil
}

func (o *op) free(off uint64) error {
	if err := o.w.Free(off, NodeSize); err != nil {
		return fmt.Errorf("btree: free node at %d: %w", off, err)
	}
	return nil
}

func (o *op) setRoot(off uint64) error {
	if err := o.w.PutUint64(o.t.RootPtr, off); err != nil {
		return fmt.Errorf("btree: set root pointer at %d: %w", o.t.RootPtr, err)
	}
	return nil
}

// setChild points child c (-1: the leftmost) of internal node nd at off.
func (o *op) setChild(nd node, c int, off uint64) error {
	at := uint64(offLink)
	if c >= 0 {
		vo, err := nd.valueOff(c)
		if err != nil {
			return err
		}
		at = uint64(vo)
	}
	if err := o.w.PutUint64(nd.off+at, off); err != nil {
		return fmt.Errorf("btree: set child pointer in node at %d: %w", nd.off, err)
	}
	return nil
}
