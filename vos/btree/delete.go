package btree

// Delete removes key and reports whether it was there. A leaf left empty is
// freed and unlinked from its parent (and so on up while parents empty), and
// a root left with a single child is replaced by that child. A key longer
// than MaxKeySize gives ErrKeyTooLong.
func (t Tree) Delete(w Writer, key []byte) (found bool, err error) {
	if err := t.checkValueSize(); err != nil {
		return false, err
	}
	if err := checkKey(key); err != nil {
		return false, err
	}
	o := newOp(t, w)
	defer o.release()
	root, err := t.root(o.r)
	if err != nil || root == 0 {
		return false, err
	}
	leaf, path, err := o.descendTo(root, key)
	if err != nil {
		return false, err
	}
	i, eq, err := leaf.search(key)
	if err != nil || !eq {
		return false, err
	}
	if leaf.n > 1 {
		e := o.sc.edit(0)
		e.load(leaf)
		if err := e.remove(i); err != nil {
			return false, err
		}
		if err := e.flush(w); err != nil {
			return false, err
		}
		if len(path) > 0 && e.live() < mergeBelow {
			return true, o.merge(leaf.off, path)
		}
		return true, nil
	}
	return true, o.unlink(leaf.off, path)
}

// unlink frees the node at off, which lost its last entry (or, for an
// internal node, its only child), and removes it from its parent; a parent
// left without children goes the same way. Then the root collapses.
func (o *op) unlink(off uint64, path []frame) error {
	if err := o.free(off); err != nil {
		return err
	}
	for d := len(path) - 1; d >= 0; d-- {
		parent, err := o.read(path[d].off)
		if err != nil {
			return err
		}
		c := path[d].c
		if parent.n == 0 {
			// Its only child is gone.
			if err := o.free(parent.off); err != nil {
				return err
			}
			continue
		}
		e := o.sc.edit(0)
		e.load(parent)
		if c < 0 {
			// The first entry's child becomes the leftmost one.
			first, err := parent.child(0)
			if err != nil {
				return err
			}
			le.PutUint64(e.b[offLink:], first)
			e.front.add(offLink, offLink+childSize)
			c = 0
		}
		if err := e.remove(c); err != nil {
			return err
		}
		if err := e.flush(o.w); err != nil {
			return err
		}
		if d > 0 || parent.n > 1 {
			return nil
		}
		return o.collapse(parent)
	}
	// The whole tree is gone.
	return o.setRoot(0)
}

// collapse replaces a root left with a single child by that child, as many
// times as that holds.
func (o *op) collapse(root node) error {
	off := root.off
	for {
		nd, err := o.read(off)
		if err != nil {
			return err
		}
		if nd.leaf() || nd.n > 0 {
			break
		}
		if err := o.free(off); err != nil {
			return err
		}
		off = nd.link()
	}
	if off == root.off {
		return nil
	}
	return o.setRoot(off)
}
