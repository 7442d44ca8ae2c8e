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
