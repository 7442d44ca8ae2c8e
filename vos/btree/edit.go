package btree

import (
	"slices"
	"sync"
)

// An edit is a change of one node, made on a scratch image of it and then
// logged as the bytes that differ from the heap. The edit remembers which
// parts of the image it touched (front: header and slots; back: records), so
// that only those are compared.
//
// Loading an existing node copies only its header and slots. Its records
// are copied into the image (ensureRecords) only by the operations that move
// them; until then they are read from the heap, where they are unchanged.
type edit struct {
	node           // over the image
	cur     []byte // the node's bytes in the heap
	front   span   // touched part of [0, slotsEnd)
	back    span   // touched part of [low, NodeSize)
	recs    bool   // the image holds the node's records
	origLow int    // start of the record area in the heap
	sc      *scratch
}

// span is a byte range [lo, hi) of a node; empty when lo >= hi.
type span struct{ lo, hi int }

func (s *span) add(lo, hi int) {
	if lo >= hi {
		return
	}
	if s.lo >= s.hi {
		*s = span{lo, hi}
		return
	}
	s.lo, s.hi = min(s.lo, lo), max(s.hi, hi)
}

// scratch holds the buffers of one operation; pooled to keep operations free
// of large allocations.
type scratch struct {
	img    [2][NodeSize]byte
	edits  [2]edit
	sorted []uint64
	path   []frame
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// edit returns scratch edit k (0 or 1) over scratch image k.
func (sc *scratch) edit(k int) *edit {
	e := &sc.edits[k]
	*e = edit{node: node{b: sc.img[k][:]}, sc: sc}
	return e
}

// load starts an edit of the existing node nd.
func (e *edit) load(nd node) {
	img := e.b
	copy(img[:nd.slotsEnd()], nd.b)
	e.node = nd
	e.b = img
	e.cur = nd.b
	e.origLow = nd.low
}

// ensureRecords copies the node's records into the image. The records the
// edit placed lie below origLow and stay.
func (e *edit) ensureRecords() {
	if !e.recs {
		copy(e.b[e.origLow:], e.cur[e.origLow:])
		e.recs = true
	}
}

// recordSize locates record i and returns the size of the record.
func (e *edit) recordSize(i int) (off, rs int, err error) {
	src := e.cur
	if e.recs {
		src = e.b
	}
	off, klen, err := e.recordIn(src, i)
	return off, e.recSize(klen), err
}

// init starts an edit that makes the heap bytes cur, at heap offset off, an
// empty node of the given level (0: leaf) and leftmost child.
func (e *edit) init(cur []byte, off uint64, level int, link uint64, vs int) {
	e.node = node{b: e.b, off: off, low: NodeSize, level: level, vs: vs}
	e.cur = cur
	e.recs = true
	le.PutUint64(e.b[offLink:], link)
	e.b[offKind] = kindInternal
	if level == 0 {
		e.b[offKind] = kindLeaf
	}
	e.b[offLevel] = byte(level)
	e.front = span{0, hdrSize}
	e.putHeader()
}

func (e *edit) putHeader() {
	le.PutUint16(e.b[offCount:], uint16(e.n))
	le.PutUint16(e.b[offLow:], uint16(e.low))
	le.PutUint16(e.b[offGarbage:], uint16(e.garbage))
	e.front.add(offCount, hdrSize)
}

// room is the contiguous free space between the slots and the records.
func (e *edit) room() int { return e.low - e.slotsEnd() }

// insert adds the entry key, val at index i, sliding the records together
// first if only the holes make room. It reports false, changing nothing
// logged, if the node cannot hold the entry.
func (e *edit) insert(i int, key, val []byte) (bool, error) {
	rs := recHead + len(key) + len(val)
	need := rs + slotSize
	if e.room() < need {
		if e.room()+e.garbage < need {
			return false, nil
		}
		if err := e.compact(); err != nil {
			return false, err
		}
		if e.room() < need {
			return false, nil
		}
	}
	off := e.low - rs
	if off+rs > e.origLow {
		// The record area moved up (its records are gone): the record
		// lands where the heap's records were read from.
		e.ensureRecords()
	}
	le.PutUint16(e.b[off:], uint16(len(key)))
	copy(e.b[off+recHead:], key)
	copy(e.b[off+recHead+len(key):], val)
	e.back.add(off, off+rs)
	s, end := hdrSize+slotSize*i, e.slotsEnd()
	copy(e.b[s+slotSize:end+slotSize], e.b[s:end])
	le.PutUint16(e.b[s:], uint16(off))
	e.front.add(s, end+slotSize)
	e.n++
	e.low = off
	e.putHeader()
	return true, nil
}

// remove deletes entry i, leaving a hole where its record was (or moving
// the start of the record area if the record was first).
func (e *edit) remove(i int) error {
	off, rs, err := e.recordSize(i)
	if err != nil {
		return err
	}
	if off == e.low {
		e.low += rs
	} else {
		e.garbage += rs
	}
	s, end := hdrSize+slotSize*i, e.slotsEnd()
	copy(e.b[s:end-slotSize], e.b[s+slotSize:end])
	e.front.add(s, end-slotSize)
	e.n--
	if e.n == 0 {
		e.low, e.garbage = NodeSize, 0
	}
	e.putHeader()
	return nil
}

// truncate drops the entries from index m on; their records become holes.
// It changes only the header.
func (e *edit) truncate(m int) error {
	for j := m; j < e.n; j++ {
		_, rs, err := e.recordSize(j)
		if err != nil {
			return err
		}
		e.garbage += rs
	}
	e.n = m
	if e.n == 0 {
		e.low, e.garbage = NodeSize, 0
	}
	e.putHeader()
	return nil
}

// compact slides the live records to the end of the node, keeping their
// order in memory, so that the holes join the free space. Records above the
// highest hole do not move and are not logged again.
func (e *edit) compact() error {
	e.ensureRecords()
	order := e.sc.sorted[:0]
	total := 0
	for i := 0; i < e.n; i++ {
		off, klen, err := e.record(i)
		if err != nil {
			return err
		}
		rs := e.recSize(klen)
		total += rs
		order = append(order, uint64(off)<<32|uint64(i)<<16|uint64(rs))
	}
	e.sc.sorted = order
	if e.slotsEnd()+total > NodeSize {
		return corruptf(e.off, "%d entries with %d bytes of records", e.n, total)
	}
	slices.Sort(order)
	dst, top := NodeSize, 0
	for j := len(order) - 1; j >= 0; j-- {
		off, i, rs := int(order[j]>>32), int(order[j]>>16&0xffff), int(order[j]&0xffff)
		dst -= rs
		if dst == off {
			continue
		}
		if top == 0 {
			top = dst + rs
		}
		copy(e.b[dst:dst+rs], e.b[off:off+rs])
		s := hdrSize + slotSize*i
		le.PutUint16(e.b[s:], uint16(dst))
		e.front.add(s, s+slotSize)
	}
	if top > 0 {
		e.back.add(dst, top)
	}
	e.low, e.garbage = dst, 0
	e.putHeader()
	return nil
}

// flush logs the edit.
func (e *edit) flush(w Writer) error {
	f, b := e.front, e.back
	if f.lo < f.hi && b.lo < b.hi && b.lo <= f.hi+mergeGap {
		// Log the few free bytes between the two as they are.
		if b.lo > f.hi {
			copy(e.b[f.hi:b.lo], e.cur[f.hi:b.lo])
		}
		f.add(b.lo, b.hi)
		b = span{}
	}
	for _, s := range []span{f, b} {
		if s.lo < s.hi {
			if err := writeDiff(w, e.off+uint64(s.lo), e.cur[s.lo:s.hi], e.b[s.lo:s.hi]); err != nil {
				return err
			}
		}
	}
	return nil
}
