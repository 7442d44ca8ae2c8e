package btree

import "vosfs/umem"

// Iter walks a tree in ascending key order. It reads the heap in place: it
// is valid only while the caller holds the read lock (inside pool.View) or is
// inside the transaction, and while the tree is not changed. Key and Value
// alias the heap under the same terms.
//
//	it := t.Seek(r, start)
//	for it.Next() {
//		use(it.Key(), it.Value())
//	}
//	if err := it.Err(); err != nil { ... }
type Iter struct {
	c        cursor
	key, val []byte
	err      error
	started  bool
	done     bool
}

// cursor is a position in the tree: the path of nodes from the root to a
// leaf, with the child index taken at each internal node (-1 for the
// leftmost child) and the entry index in the leaf.
type cursor struct {
	r     umem.Reader
	vs    int
	stack []cframe
}

type cframe struct {
	nd  node
	pos int
}

// Seek returns an iterator over the keys >= start, in ascending order. Its
// first Next moves to the first of them.
func (t Tree) Seek(r umem.Reader, start []byte) *Iter {
	it := &Iter{c: cursor{r: r, vs: t.ValueSize}}
	found, err := it.c.seek(t, start)
	it.err = err
	it.done = err != nil || !found
	return it
}

// Next moves to the next key and reports whether there is one. It returns
// false at the end or on error (see Err).
func (it *Iter) Next() bool {
	if it.done {
		it.key, it.val = nil, nil
		return false
	}
	if it.started {
		it.c.top().pos++
	}
	it.started = true
	k, v, ok, err := it.c.forward()
	if err != nil || !ok {
		it.err, it.done = err, true
		it.key, it.val = nil, nil
		return false
	}
	it.key, it.val = k, v
	return true
}

// Key is the current key; it aliases the heap.
func (it *Iter) Key() []byte { return it.key }

// Value is the current value; it aliases the heap.
func (it *Iter) Value() []byte { return it.val }

// Err is the error that ended the iteration, if any.
func (it *Iter) Err() error { return it.err }

// SeekLE returns the greatest key <= key and its value. Both alias the heap,
// as for Get.
func (t Tree) SeekLE(r umem.Reader, key []byte) (k, v []byte, ok bool, err error) {
	c := cursor{r: r, vs: t.ValueSize}
	found, err := c.seek(t, key)
	if err != nil || !found {
		return nil, nil, false, err
	}
	leaf := c.top()
	if leaf.pos < leaf.nd.n {
		k, v, err := leaf.nd.entry(leaf.pos)
		if err != nil {
			return nil, nil, false, err
		}
		if string(k) == string(key) {
			return k, v, true, nil
		}
	}
	leaf.pos--
	return c.backward()
}

func (c *cursor) top() *cframe { return &c.stack[len(c.stack)-1] }

// seek positions the cursor at the first key >= key (possibly past the end
// of its leaf). It reports false for an empty tree.
func (c *cursor) seek(t Tree, key []byte) (bool, error) {
	if err := t.checkValueSize(); err != nil {
		return false, err
	}
	root, err := t.root(c.r)
	if err != nil || root == 0 {
		return false, err
	}
	nd, err := readNode(c.r, root, c.vs)
	if err != nil {
		return false, err
	}
	c.stack = make([]cframe, 0, nd.level+1)
	for !nd.leaf() {
		i, err := nd.childFor(key)
		if err != nil {
			return false, err
		}
		c.stack = append(c.stack, cframe{nd, i})
		if nd, err = nd.descend(c.r, i, c.vs); err != nil {
			return false, err
		}
	}
	i, _, err := nd.search(key)
	if err != nil {
		return false, err
	}
	c.stack = append(c.stack, cframe{nd, i})
	return true, nil
}

// forward returns the entry at the cursor, moving first to the next leaf
// with entries if the cursor is past the end of its leaf.
func (c *cursor) forward() (k, v []byte, ok bool, err error) {
	for {
		f := c.top()
		if f.pos < f.nd.n {
			k, v, err := f.nd.entry(f.pos)
			return k, v, err == nil, err
		}
		// Up to the first ancestor with a next child, then down its
		// leftmost path.
		for {
			c.stack = c.stack[:len(c.stack)-1]
			if len(c.stack) == 0 {
				return nil, nil, false, nil
			}
			if f = c.top(); f.pos+1 < f.nd.n {
				f.pos++
				break
			}
		}
		for !f.nd.leaf() {
			ch, err := f.nd.descend(c.r, f.pos, c.vs)
			if err != nil {
				return nil, nil, false, err
			}
			pos := -1
			if ch.leaf() {
				pos = 0
			}
			c.stack = append(c.stack, cframe{ch, pos})
			f = c.top()
		}
	}
}

// backward returns the entry at the cursor, moving first to the previous
// leaf with entries if the cursor is before the start of its leaf.
func (c *cursor) backward() (k, v []byte, ok bool, err error) {
	for {
		f := c.top()
		if f.pos >= 0 {
			k, v, err := f.nd.entry(f.pos)
			return k, v, err == nil, err
		}
		for {
			c.stack = c.stack[:len(c.stack)-1]
			if len(c.stack) == 0 {
				return nil, nil, false, nil
			}
			if f = c.top(); f.pos >= 0 {
				f.pos--
				break
			}
		}
		for !f.nd.leaf() {
			ch, err := f.nd.descend(c.r, f.pos, c.vs)
			if err != nil {
				return nil, nil, false, err
			}
			c.stack = append(c.stack, cframe{ch, ch.n - 1})
			f = c.top()
		}
	}
}
