package btree

import (
	"bytes"
	"fmt"
	"slices"

	"vosfs/alloc"
	"vosfs/umem"
)

// Stats describe a tree, as found by Check.
type Stats struct {
	Depth    int    // levels: 0 for an empty tree, 1 for a lone leaf
	Nodes    int    // leaves and internal nodes
	Leaves   int    // leaf nodes
	Keys     int    // entries in the leaves
	Bytes    uint64 // heap bytes of the nodes: Nodes * NodeSize
	Used     uint64 // bytes in use: headers, slots and live records
	Garbage  uint64 // bytes of holes left by deletes and splits
	KeyBytes uint64 // bytes of the keys in the leaves
}

// Check verifies the whole tree: every node's header and records are sane
// and its records do not overlap; keys ascend strictly within each node and
// across the leaves; every subtree's keys lie within the bounds its
// parent's separators set; all leaves are at the same depth (each child's
// level is one below its parent's); no leaf is empty and an internal root
// has at least two children; no node is reachable twice and no two nodes
// overlap. It returns the tree's figures and the heap span of every node,
// for the allocator's checker. Errors wrap ErrCorrupt.
func (t Tree) Check(r umem.Reader) (Stats, []alloc.Span, error) {
	var st Stats
	if err := t.checkValueSize(); err != nil {
		return st, nil, err
	}
	root, err := t.root(r)
	if err != nil || root == 0 {
		return st, nil, err
	}
	ck := checker{r: r, vs: t.ValueSize, seen: make(map[uint64]bool)}
	rn, err := readNode(r, root, t.ValueSize)
	if err != nil {
		return st, nil, err
	}
	if !rn.leaf() && rn.n == 0 {
		return st, nil, corruptf(root, "root with a single child")
	}
	st.Depth = rn.level + 1
	if err := ck.walk(rn, nil, nil, &st); err != nil {
		return st, nil, err
	}
	slices.SortFunc(ck.spans, func(a, b alloc.Span) int { return cmpU64(a.Off, b.Off) })
	for i := 1; i < len(ck.spans); i++ {
		if ck.spans[i-1].Off+NodeSize > ck.spans[i].Off {
			return st, nil, corruptf(ck.spans[i].Off, "overlaps the node at %d", ck.spans[i-1].Off)
		}
	}
	st.Bytes = uint64(st.Nodes) * NodeSize
	return st, ck.spans, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

type checker struct {
	r       umem.Reader
	vs      int
	seen    map[uint64]bool
	spans   []alloc.Span
	last    []byte // last key seen in a leaf
	hasLast bool
	recs    []uint64 // scratch: record extents of a node
}

// walk checks the subtree of nd, whose keys must lie in [lo, hi) (hi nil:
// unbounded).
func (ck *checker) walk(nd node, lo, hi []byte, st *Stats) error {
	if ck.seen[nd.off] {
		return corruptf(nd.off, "reachable twice")
	}
	ck.seen[nd.off] = true
	ck.spans = append(ck.spans, alloc.Span{Off: nd.off, Size: NodeSize})
	st.Nodes++
	if err := ck.records(nd, st); err != nil {
		return err
	}
	var prev []byte
	for i := 0; i < nd.n; i++ {
		k, err := nd.key(i)
		if err != nil {
			return err
		}
		if i > 0 && bytes.Compare(prev, k) >= 0 {
			return corruptf(nd.off, "entry %d: key %q not above %q", i, k, prev)
		}
		if bytes.Compare(k, lo) < 0 || (hi != nil && bytes.Compare(k, hi) >= 0) {
			return corruptf(nd.off, "entry %d: key %q outside [%q, %q)", i, k, lo, hi)
		}
		prev = k
	}
	if nd.leaf() {
		st.Leaves++
		st.Keys += nd.n
		for i := 0; i < nd.n; i++ {
			k, _ := nd.key(i)
			if ck.hasLast && bytes.Compare(ck.last, k) >= 0 {
				return corruptf(nd.off, "key %q after %q in an earlier leaf", k, ck.last)
			}
			ck.last, ck.hasLast = k, true
			st.KeyBytes += uint64(len(k))
		}
		return nil
	}
	for c := -1; c < nd.n; c++ {
		clo, chi := lo, hi
		if c >= 0 {
			clo, _ = nd.key(c)
		}
		if c+1 < nd.n {
			chi, _ = nd.key(c + 1)
		}
		ch, err := nd.descend(ck.r, c, ck.vs)
		if err != nil {
			return err
		}
		if err := ck.walk(ch, clo, chi, st); err != nil {
			return fmt.Errorf("child %d of node at %d: %w", c, nd.off, err)
		}
	}
	return nil
}

// records checks that the records of nd lie in its record area without
// overlapping, and that with the holes they fill it exactly.
func (ck *checker) records(nd node, st *Stats) error {
	recs := ck.recs[:0]
	live := 0
	for i := 0; i < nd.n; i++ {
		off, klen, err := nd.record(i)
		if err != nil {
			return err
		}
		rs := nd.recSize(klen)
		live += rs
		recs = append(recs, uint64(off)<<32|uint64(off+rs))
	}
	ck.recs = recs
	slices.Sort(recs)
	for i := 1; i < len(recs); i++ {
		if recs[i-1]&0xffffffff > recs[i]>>32 {
			return corruptf(nd.off, "records at %d and %d overlap", recs[i-1]>>32, recs[i]>>32)
		}
	}
	if live+nd.garbage != NodeSize-nd.low {
		return corruptf(nd.off, "%d bytes of records and %d of holes in a record area of %d", live, nd.garbage, NodeSize-nd.low)
	}
	st.Used += uint64(nd.slotsEnd() + live)
	st.Garbage += uint64(nd.garbage)
	return nil
}
