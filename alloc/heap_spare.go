package alloc

import "fmt"

// spare is the heap allocator's deletion reserve: free space set aside in
// an index of its own, which ordinary reservations never see and those of
// transactions that give space back (ReserveFreeing) take when the free
// space has no room. Such transactions (a delete, a truncate, aggregation)
// add a little before they free much more — tombstones, and the tree nodes
// their insertion splits — so on a heap full of live data they would fail
// with everything else. A total of free bytes is not enough: a heap full
// of small values, half of them freed, has plenty free in holes that no
// tree node fits; so the reserve is kept in extents of at least chunk
// units (the largest single allocation such a transaction makes), cut
// from the top of the largest free extents, and refilled the same way
// whenever space is freed. Its owner guards it.
type spare struct {
	idx    *FreeIndex
	target uint64 // units the reserve is refilled to
	chunk  uint64 // least extent it is refilled with
}

// touches reports whether r borders on (or lies in) an extent of the
// reserve: it was cut from it (a freeing transaction's small allocation),
// and goes back to it, so that the reserve stays in whole chunks.
func (s *spare) touches(r Range) bool {
	if r.Start > 0 {
		if _, ok := s.idx.Find(r.Start - 1); ok {
			return true
		}
	}
	_, ok := s.idx.Find(r.End())
	return ok
}

// SetDeletionReserve sets the deletion reserve to bytes of the free space
// (rounded up to units), kept in extents of at least chunk bytes, and sets
// that much aside now if the free space has it (else as space is freed).
// A smaller reserve than the one held returns the excess to the free
// space.
func (a *Heap) SetDeletionReserve(bytes, chunk uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.spare.target = min(unitsFor(bytes), a.units)
	a.spare.chunk = max(unitsFor(chunk), 1)
	for a.spare.idx.Total() > a.spare.target {
		e, _ := a.spare.idx.Largest()
		n := min(e.Count, a.spare.idx.Total()-a.spare.target)
		a.moveLocked(a.spare.idx, a.free, Range{e.Start, n})
	}
	a.refillLocked()
}

// refillLocked tops the deletion reserve up to its target from the
// largest free extents of at least a chunk, taking their top end.
func (a *Heap) refillLocked() {
	for a.spare.idx.Total() < a.spare.target {
		e, ok := a.free.Largest()
		if !ok || e.Count < a.spare.chunk {
			return
		}
		want := a.spare.target - a.spare.idx.Total()
		n := min(e.Count, (want+a.spare.chunk-1)/a.spare.chunk*a.spare.chunk)
		a.moveLocked(a.free, a.spare.idx, Range{e.End() - n, n})
	}
}

// moveLocked moves r, free in from, to to.
func (a *Heap) moveLocked(from, to *FreeIndex, r Range) {
	if err := from.Remove(r.Start, r.Count); err != nil {
		panic(fmt.Sprintf("alloc: heap free index: %v", err)) // r was just found there
	}
	if err := to.Insert(r.Start, r.Count); err != nil && a.fault == nil {
		a.fault = fmt.Errorf("setting %s aside: %w", a.where(r), err)
	}
}
