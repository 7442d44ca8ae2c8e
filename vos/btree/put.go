package btree

import (
	"bytes"
	"fmt"
)

// Put inserts key with val, or overwrites the value of key, and reports
// whether it overwrote. val must be ValueSize bytes and key at most
// MaxKeySize. An overwrite with the same value logs nothing; a different
// value logs only the bytes that changed.
func (t Tree) Put(w Writer, key, val []byte) (replaced bool, err error) {
	if err := t.checkValueSize(); err != nil {
		return false, err
	}
	if len(val) != t.ValueSize {
		return false, fmt.Errorf("%w: value of %d bytes, tree values are %d", ErrValueSize, len(val), t.ValueSize)
	}
	if err := checkKey(key); err != nil {
		return false, err
	}
	o := newOp(t, w)
	defer o.release()
	root, err := t.root(o.r)
	if err != nil {
		return false, err
	}
	if root == 0 {
		return false, o.plant(key, val)
	}
	leaf, path, err := o.descendTo(root, key)
	if err != nil {
		return false, err
	}
	i, eq, err := leaf.search(key)
	if err != nil {
		return false, err
	}
	if eq {
		vo, err := leaf.valueOff(i)
		if err != nil {
			return false, err
		}
		if cur := leaf.b[vo : vo+t.ValueSize]; !bytes.Equal(cur, val) {
			if err := writeDiff(w, leaf.off+uint64(vo), cur, val); err != nil {
				return false, err
			}
		}
		return true, nil
	}
	split, res, err := o.insert(leaf, i, key, val)
	var child [childSize]byte
	for d := len(path) - 1; split && err == nil; d-- {
		if d < 0 {
			return false, o.grow(len(path)+1, res)
		}
		var parent node
		if parent, err = o.read(path[d].off); err != nil {
			break
		}
		if res.newLeft {
			if err = o.setChild(parent, path[d].c, res.left); err != nil {
				break
			}
		}
		le.PutUint64(child[:], res.right)
		split, res, err = o.insert(parent, path[d].c+1, res.sep, child[:])
	}
	return false, err
}

// plant makes the first leaf of an empty tree.
func (o *op) plant(key, val []byte) error {
	off, cur, err := o.alloc()
	if err != nil {
		return err
	}
	e := o.sc.edit(0)
	e.init(cur, off, 0, 0, o.t.ValueSize)
	if _, err := e.insert(0, key, val); err != nil {
		return err
	}
	if err := e.flush(o.w); err != nil {
		return err
	}
	return o.setRoot(off)
}

// grow puts a new root of the given level above the two halves of the old
// root.
func (o *op) grow(level int, res splitResult) error {
	if level > maxLevel {
		return fmt.Errorf("btree: tree higher than %d levels", maxLevel)
	}
	off, cur, err := o.alloc()
	if err != nil {
		return err
	}
	var child [childSize]byte
	le.PutUint64(child[:], res.right)
	e := o.sc.edit(0)
	e.init(cur, off, level, res.left, childSize)
	if _, err := e.insert(0, res.sep, child[:]); err != nil {
		return err
	}
	if err := e.flush(o.w); err != nil {
		return err
	}
	return o.setRoot(off)
}

// insert adds the entry key, val at index i of nd, splitting nd if it has no
// room.
func (o *op) insert(nd node, i int, key, val []byte) (bool, splitResult, error) {
	e := o.sc.edit(0)
	e.load(nd)
	ok, err := e.insert(i, key, val)
	if err != nil {
		return false, splitResult{}, err
	}
	if ok {
		return false, splitResult{}, e.flush(o.w)
	}
	res, err := o.split(nd, i, key, val)
	return err == nil, res, err
}
