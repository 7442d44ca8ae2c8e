package btree

// Merging: a leaf whose live bytes fall below mergeBelow after a delete is
// emptied into a sibling (under the same parent) if the two together take at
// most mergeUpTo, and then unlinked and freed. Leaves thus stay at least a
// quarter full under deletes, except where a leaf has no sibling close
// enough, while a merged leaf still has room for inserts.
const (
	mergeBelow = NodeSize / 4
	mergeUpTo  = NodeSize * 3 / 4
)

// live is the space a node's entries take: slots and live records.
func (nd *node) live() int { return slotSize*nd.n + NodeSize - nd.low - nd.garbage }

// merge empties the small leaf at off, the child taken at the last step of
// path, into its right sibling (or its left one if it is the last child),
// and removes it from the parent.
func (o *op) merge(off uint64, path []frame) error {
	f := path[len(path)-1]
	parent, err := o.read(f.off)
	if err != nil {
		return err
	}
	small, err := o.read(off)
	if err != nil {
		return err
	}
	c, si := f.c, f.c+1 // the small leaf's child index, its sibling's
	if si >= parent.n {
		if c < 0 {
			return nil // an only child
		}
		si = c - 1
	}
	sib, err := parent.descend(o.r, si, o.t.ValueSize)
	if err != nil {
		return err
	}
	if small.live()+sib.live() > mergeUpTo {
		return nil
	}
	e := o.sc.edit(0)
	e.load(sib)
	for j := 0; j < small.n; j++ {
		k, v, err := small.entry(j)
		if err != nil {
			return err
		}
		at := e.n // after the left sibling's entries
		if si > c {
			at = j // before the right sibling's
		}
		if ok, err := e.insert(at, k, v); err != nil || !ok {
			return orCorrupt(err, sib.off, "merged leaves do not fit")
		}
	}
	if err := e.flush(o.w); err != nil {
		return err
	}
	if err := o.free(small.off); err != nil {
		return err
	}
	// Drop the parent's entry for the right one of the pair; if that was
	// the sibling, the small leaf's pointer now leads to the sibling.
	drop := c
	if si > c {
		if err := o.setChild(parent, c, sib.off); err != nil {
			return err
		}
		drop = si
	}
	e = o.sc.edit(0)
	e.load(parent)
	if err := e.remove(drop); err != nil {
		return err
	}
	if err := e.flush(o.w); err != nil {
		return err
	}
	if len(path) == 1 && e.n == 0 {
		return o.collapse(parent)
	}
	return nil
}
