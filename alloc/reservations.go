package alloc

import (
	"cmp"
	"slices"
)

// reservations are extents taken out of the free index but not (yet)
// allocated in the bitmap. A reservation is held by its caller until it is
// cancelled or published; once published it belongs to the transaction that
// set its bits, and leaves the set when that transaction commits (the space
// is then allocated) or aborts (the space is free again). Its owner guards
// it.
type reservations struct {
	m     map[uint64]reservation // by first unit
	units uint64                 // total units reserved
}

type reservation struct {
	count     uint64
	published bool // bits set by a transaction that has not ended yet
}

func newReservations() reservations { return reservations{m: make(map[uint64]reservation)} }

func (s *reservations) add(r Range) {
	s.m[r.Start] = reservation{count: r.Count}
	s.units += r.Count
}

// held reports whether r is exactly a reservation still held by its caller.
func (s *reservations) held(r Range) bool {
	v, ok := s.m[r.Start]
	return ok && v.count == r.Count && !v.published
}

func (s *reservations) publish(r Range) { s.m[r.Start] = reservation{count: r.Count, published: true} }

func (s *reservations) remove(r Range) {
	if v, ok := s.m[r.Start]; ok && v.count == r.Count {
		delete(s.m, r.Start)
		s.units -= r.Count
	}
}

// sorted returns the reservations in start order, with their state.
func (s *reservations) sorted() ([]Range, []bool) {
	rs := make([]Range, 0, len(s.m))
	for start, v := range s.m {
		rs = append(rs, Range{start, v.count})
	}
	slices.SortFunc(rs, func(a, b Range) int { return cmp.Compare(a.Start, b.Start) })
	pub := make([]bool, len(rs))
	for i, r := range rs {
		pub[i] = s.m[r.Start].published
	}
	return rs, pub
}
