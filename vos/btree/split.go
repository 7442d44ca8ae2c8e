package btree

import "bytes"

// splitResult is what a split asks of the parent: the child pointer that led
// to the split node must point to left, and the entry (sep, right) must
// follow it. One of left and right is the split node, the other is new;
// newLeft says the new node is the left one, so the pointer changes.
type splitResult struct {
	sep         []byte // owned copy: never aliases the heap
	left, right uint64
	newLeft     bool
}

// split makes room for the entry key, val at index i of the full node nd by
// moving part of nd to a new node, and inserts the entry on its side.
//
// An entry after the last one (and, in a leaf, before the first) goes alone
// into the new node, leaving nd unchanged: ascending or descending runs of
// inserts then fill their nodes completely. Otherwise the entries are cut at
// the middle byte; the upper part is written to the new node and nd merely
// forgets it (its header changes, the records become holes).
func (o *op) split(nd node, i int, key, val []byte) (splitResult, error) {
	switch {
	case i == nd.n && nd.leaf():
		last, err := nd.key(nd.n - 1)
		if err != nil {
			return splitResult{}, err
		}
		sep, err := separator(nd.off, last, key)
		if err != nil {
			return splitResult{}, err
		}
		off, err := o.single(0, 0, key, val)
		return splitResult{sep: sep, left: nd.off, right: off}, err
	case i == 0 && nd.leaf():
		first, err := nd.key(0)
		if err != nil {
			return splitResult{}, err
		}
		sep, err := separator(nd.off, key, first)
		if err != nil {
			return splitResult{}, err
		}
		off, err := o.single(0, 0, key, val)
		return splitResult{sep: sep, left: off, right: nd.off, newLeft: true}, err
	case i == nd.n:
		// An internal node: the new separator moves up, its child becomes
		// the leftmost child of a new node without entries.
		off, err := o.single(nd.level, le.Uint64(val), nil, nil)
		return splitResult{sep: bytes.Clone(key), left: nd.off, right: off}, err
	}
	return o.splitMiddle(nd, i, key, val)
}

// single writes a new node of the given level and leftmost child: a leaf
// holding the one entry key, val, or an internal node without entries.
func (o *op) single(level int, link uint64, key, val []byte) (uint64, error) {
	off, cur, err := o.alloc()
	if err != nil {
		return 0, err
	}
	vs := childSize
	if level == 0 {
		vs = o.t.ValueSize
	}
	e := o.sc.edit(1)
	e.init(cur, off, level, link, vs)
	if level == 0 {
		if _, err := e.insert(0, key, val); err != nil {
			return 0, err
		}
	}
	return off, e.flush(o.w)
}

// splitMiddle splits nd at its middle byte. The entries are numbered as if
// key, val were already at index i: n+1 of them.
func (o *op) splitMiddle(nd node, i int, key, val []byte) (splitResult, error) {
	item := func(j int) ([]byte, []byte, error) {
		switch {
		case j < i:
			return nd.entry(j)
		case j == i:
			return key, val, nil
		}
		return nd.entry(j - 1)
	}
	size := func(k []byte) int { return slotSize + recHead + len(k) + nd.vs }
	total := 0
	for j := 0; j <= nd.n; j++ {
		k, _, err := item(j)
		if err != nil {
			return splitResult{}, err
		}
		total += size(k)
	}
	// cut is the first entry whose end passes the middle byte. A leaf keeps
	// [0, cut) and moves [cut, n]; an internal node keeps [0, cut), sends
	// the separator of entry cut up and moves (cut, n] behind its child.
	cut, acc := 0, 0
	for ; cut <= nd.n; cut++ {
		k, _, err := item(cut)
		if err != nil {
			return splitResult{}, err
		}
		if acc += size(k); 2*acc >= total {
			break
		}
	}
	var res splitResult
	first := cut + 1 // first entry of the new node
	link := uint64(0)
	if nd.leaf() {
		// Both halves of a leaf hold at least one entry.
		cut = min(max(cut, 1), nd.n)
		if rc, ok, err := runCut(nd, i, key); err != nil {
			return res, err
		} else if ok {
			acc := 0
			for j := 0; j < rc; j++ {
				k, _, err := item(j)
				if err != nil {
					return res, err
				}
				acc += size(k)
			}
			if acc <= NodeSize-hdrSize && total-acc <= NodeSize-hdrSize {
				cut = rc
			}
		}
		first = cut
		lk, _, err := item(cut - 1)
		if err != nil {
			return res, err
		}
		rk, _, err := item(cut)
		if err != nil {
			return res, err
		}
		if res.sep, err = separator(nd.off, lk, rk); err != nil {
			return res, err
		}
	} else {
		k, v, err := item(cut)
		if err != nil {
			return res, err
		}
		res.sep, link = bytes.Clone(k), le.Uint64(v)
	}

	// The new node, written before nd changes (the items alias nd).
	off, cur, err := o.alloc()
	if err != nil {
		return res, err
	}
	e := o.sc.edit(1)
	e.init(cur, off, nd.level, link, nd.vs)
	for j := first; j <= nd.n; j++ {
		k, v, err := item(j)
		if err != nil {
			return res, err
		}
		if ok, err := e.insert(e.n, k, v); err != nil || !ok {
			return res, orCorrupt(err, off, "split half does not fit")
		}
	}
	if err := e.flush(o.w); err != nil {
		return res, err
	}

	// nd keeps the entries before cut, the new one included if it is there.
	keep := cut
	if i < cut {
		keep = cut - 1
	}
	e = o.sc.edit(0)
	e.load(nd)
	if err := e.truncate(keep); err != nil {
		return res, err
	}
	if i < cut {
		if ok, err := e.insert(i, key, val); err != nil || !ok {
			return res, orCorrupt(err, nd.off, "split half does not fit")
		}
	}
	res.left, res.right = nd.off, off
	return res, e.flush(o.w)
}

// runCut looks for a run boundary at the insert position i of leaf nd
// (0 < i < n): if the new key shares a clearly longer prefix with one
// neighbour than with the other, it continues that neighbour's run (say,
// the next version of one object among many objects' versions), and the leaf
// is best cut right there, the new key on its run's side: the other run's
// node then fills no further and is left full instead of half empty. It
// returns the cut in the numbering of splitMiddle. Keys without such
// structure (random ones) rarely differ by two bytes of prefix, and keep the
// middle cut.
func runCut(nd node, i int, key []byte) (int, bool, error) {
	if i == 0 || i >= nd.n {
		return 0, false, nil
	}
	lk, err := nd.key(i - 1)
	if err != nil {
		return 0, false, err
	}
	rk, err := nd.key(i)
	if err != nil {
		return 0, false, err
	}
	l, r := commonPrefix(lk, key), commonPrefix(key, rk)
	switch {
	case l >= r+2:
		return i + 1, true, nil
	case r >= l+2:
		return i, true, nil
	}
	return 0, false, nil
}

func commonPrefix(a, b []byte) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// separator returns the shortest key s with a < s <= b: the separator of two
// adjacent nodes whose keys end with a and start with b. It is a copy.
func separator(off uint64, a, b []byte) ([]byte, error) {
	n := commonPrefix(a, b)
	if n == len(b) || (n < len(a) && a[n] > b[n]) {
		return nil, corruptf(off, "keys out of order")
	}
	return bytes.Clone(b[:n+1]), nil
}

func orCorrupt(err error, off uint64, what string) error {
	if err != nil {
		return err
	}
	return corruptf(off, "%s", what)
}
