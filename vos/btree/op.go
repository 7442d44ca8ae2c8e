package btree

import (
	"fmt"

	"vosfs/umem"
)

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

func newOp(t Tree, w Writer) op {
	return op{t: t, w: w, r: w.Reader(), sc: scratchPool.Get().(*scratch)}
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
