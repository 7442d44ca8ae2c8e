package alloc

import (
	"errors"
	"fmt"

	"github.com/google/btree"
)

// Range is Count units starting at unit Start (units of whichever allocator
// uses it: heap units or data blocks).
type Range struct {
	Start, Count uint64
}

// End is the unit after the range.
func (r Range) End() uint64 { return r.Start + r.Count }

func (r Range) String() string { return fmt.Sprintf("[%d, +%d)", r.Start, r.Count) }

// validRange reports whether r is non-empty and does not wrap around.
func validRange(r Range) bool { return r.Count > 0 && r.Start <= ^uint64(0)-r.Count }

// btreeDegree is the degree of the index trees.
const btreeDegree = 16

// FreeIndex is an in-memory index of free extents. Extents are kept
// coalesced: no two overlap or touch. It is indexed twice: by start (to find
// neighbours and the extent holding a unit) and by (Count, Start) (to find
// the best fit). A FreeIndex is not safe for concurrent use; its owner
// guards it.
type FreeIndex struct {
	byStart *btree.BTreeG[Range]
	bySize  *btree.BTreeG[Range]
	total   uint64
}

// NewFreeIndex returns an empty index.
func NewFreeIndex() *FreeIndex {
	return &FreeIndex{
		byStart: btree.NewG(btreeDegree, func(a, b Range) bool { return a.Start < b.Start }),
		bySize: btree.NewG(btreeDegree, func(a, b Range) bool {
			if a.Count != b.Count {
				return a.Count < b.Count
			}
			return a.Start < b.Start
		}),
	}
}

// Total is the number of free units.
func (x *FreeIndex) Total() uint64 { return x.total }

// Len is the number of free extents.
func (x *FreeIndex) Len() int { return x.byStart.Len() }

// atOrBefore returns the extent with the highest start <= unit.
func (x *FreeIndex) atOrBefore(unit uint64) (Range, bool) {
	var r Range
	found := false
	x.byStart.DescendLessOrEqual(Range{Start: unit}, func(e Range) bool {
		r, found = e, true
		return false
	})
	return r, found
}

// after returns the extent with the lowest start > unit.
func (x *FreeIndex) after(unit uint64) (Range, bool) {
	var r Range
	found := false
	if unit == ^uint64(0) {
		return r, false
	}
	x.byStart.AscendGreaterOrEqual(Range{Start: unit + 1}, func(e Range) bool {
		r, found = e, true
		return false
	})
	return r, found
}

func (x *FreeIndex) add(r Range) {
	x.byStart.ReplaceOrInsert(r)
	x.bySize.ReplaceOrInsert(r)
	x.total += r.Count
}

func (x *FreeIndex) del(r Range) {
	x.byStart.Delete(r)
	x.bySize.Delete(r)
	x.total -= r.Count
}

// Insert adds [start, start+count) to the index, merging it with free
// neighbours that touch it. If any unit of it is already free it returns an
// error wrapping ErrOverlap and changes nothing (space freed twice).
func (x *FreeIndex) Insert(start, count uint64) error {
	r := Range{start, count}
	if !validRange(r) {
		return fmt.Errorf("%w: insert %v", ErrBadRange, r)
	}
	p, hasP := x.atOrBefore(start)
	if hasP && p.End() > start {
		return fmt.Errorf("%w: inserting %v, already free %v", ErrOverlap, r, p)
	}
	s, hasS := x.after(start)
	if hasS && s.Start < r.End() {
		return fmt.Errorf("%w: inserting %v, already free %v", ErrOverlap, r, s)
	}
	if hasP && p.End() == start {
		x.del(p)
		r = Range{p.Start, p.Count + r.Count}
	}
	if hasS && s.Start == r.End() {
		x.del(s)
		r.Count += s.Count
	}
	x.add(r)
	return nil
}

// Remove takes [start, start+count) out of the index; the range must lie
// within one free extent, which is split around it. Otherwise it returns an
// error wrapping ErrNotFree and changes nothing.
func (x *FreeIndex) Remove(start, count uint64) error {
	r := Range{start, count}
	if !validRange(r) {
		return fmt.Errorf("%w: remove %v", ErrBadRange, r)
	}
	e, ok := x.atOrBefore(start)
	if !ok || e.End() < r.End() {
		return fmt.Errorf("%w: remove %v", ErrNotFree, r)
	}
	x.del(e)
	if e.Start < start {
		x.add(Range{e.Start, start - e.Start})
	}
	if r.End() < e.End() {
		x.add(Range{r.End(), e.End() - r.End()})
	}
	return nil
}

// Find returns the free extent holding unit.
func (x *FreeIndex) Find(unit uint64) (Range, bool) {
	e, ok := x.atOrBefore(unit)
	if !ok || e.End() <= unit {
		return Range{}, false
	}
	return e, true
}

// Contains reports whether [start, start+count) is wholly free.
func (x *FreeIndex) Contains(start, count uint64) bool {
	r := Range{start, count}
	if !validRange(r) {
		return false
	}
	e, ok := x.Find(start)
	return ok && e.End() >= r.End()
}

// FindBestFit returns the smallest extent of at least n units, the one with
// the lowest start among equals.
func (x *FreeIndex) FindBestFit(n uint64) (Range, bool) {
	var r Range
	found := false
	if n == 0 {
		return r, false
	}
	x.bySize.AscendGreaterOrEqual(Range{Count: n}, func(e Range) bool {
		r, found = e, true
		return false
	})
	return r, found
}

// Largest returns the largest extent, the one with the lowest start among
// equals.
func (x *FreeIndex) Largest() (Range, bool) {
	m, ok := x.bySize.Max()
	if !ok {
		return Range{}, false
	}
	return x.FindBestFit(m.Count)
}

// Ascend calls fn for each free extent in start order until fn returns
// false.
func (x *FreeIndex) Ascend(fn func(Range) bool) { x.byStart.Ascend(fn) }

// Verify checks the index's own invariants: extents non-empty, neither
// overlapping nor touching, both orders holding the same extents, and the
// free total matching. It returns every violation found.
func (x *FreeIndex) Verify() error {
	var errs []error
	var prev Range
	first := true
	var sum uint64
	x.byStart.Ascend(func(e Range) bool {
		if !validRange(e) {
			errs = append(errs, fmt.Errorf("%w: free extent %v is empty or wraps", ErrInconsistent, e))
		}
		if !first {
			switch {
			case prev.End() > e.Start:
				errs = append(errs, fmt.Errorf("%w: free extents %v and %v overlap", ErrInconsistent, prev, e))
			case prev.End() == e.Start:
				errs = append(errs, fmt.Errorf("%w: free extents %v and %v touch (not coalesced)", ErrInconsistent, prev, e))
			}
		}
		if !x.bySize.Has(e) {
			errs = append(errs, fmt.Errorf("%w: free extent %v missing from the size order", ErrInconsistent, e))
		}
		prev, first, sum = e, false, sum+e.Count
		return true
	})
	if x.bySize.Len() != x.byStart.Len() {
		errs = append(errs, fmt.Errorf("%w: free index holds %d extents by start, %d by size", ErrInconsistent, x.byStart.Len(), x.bySize.Len()))
	}
	if sum != x.total {
		errs = append(errs, fmt.Errorf("%w: free extents sum to %d units, total says %d", ErrInconsistent, sum, x.total))
	}
	return errors.Join(errs...)
}
