package alloc

import (
	"errors"
	"fmt"
	"sync"

	"vosfs/umem"
	"vosfs/wal"
)

// HeapUnit is the allocation unit of the heap allocator, in bytes.
const HeapUnit = 64

// Heap allocates space of an arena inside the metadata heap in HeapUnit
// units. Its persistent state is a bitmap in the heap, one bit per unit (set
// = allocated); its free index is rebuilt from the bitmap at open.
type Heap struct {
	h         *umem.Heap
	bitmapOff uint64 // heap offset of the bitmap
	arenaOff  uint64 // heap offset of unit 0
	units     uint64 // units in the arena

	// mu guards the fields below. It is taken after the heap lock (commit
	// and abort hooks run with the heap write-locked), never before it.
	mu    sync.Mutex
	free  *FreeIndex   // clear units neither reserved, nor set aside, nor owned by an open tx
	spare spare        // clear units set aside as the deletion reserve
	resv  reservations // units taken by Reserve, not yet allocated
	fault error        // first internal failure of a hook, reported by Check
}

// HeapRes is a reservation of heap space made by Heap.Reserve.
type HeapRes struct {
	off, size uint64
}

// Off is the heap offset of the reserved space.
func (r HeapRes) Off() uint64 { return r.off }

// Size is the reserved size in bytes: the requested size rounded up to
// whole units.
func (r HeapRes) Size() uint64 { return r.size }

// Span is a range of heap space: Size bytes at heap offset Off.
type Span struct {
	Off, Size uint64
}

// HeapStats are a heap allocator's figures, in bytes.
type HeapStats struct {
	Total    uint64 // the arena
	Free     uint64 // reservable now (the deletion reserve not counted)
	Reserved uint64 // reserved, or published by a transaction not yet ended
	// Spare is the free space set aside as the deletion reserve (only
	// ReserveFreeing takes it), and SpareTarget what it is refilled to.
	Spare, SpareTarget uint64
}

// NewHeap opens the allocator of the arena of arenaSize bytes at heap offset
// arenaOff, whose bitmap of arenaSize/HeapUnit bits is at heap offset
// bitmapOff. Both must lie inside h and not overlap; the arena must be
// unit-aligned. It rebuilds the free index from the bitmap, so it must not
// run while transactions change the bitmap.
func NewHeap(h *umem.Heap, bitmapOff, arenaOff, arenaSize uint64) (*Heap, error) {
	if h == nil {
		return nil, fmt.Errorf("%w: nil heap", ErrLayout)
	}
	if arenaSize == 0 || arenaSize%HeapUnit != 0 || arenaOff%HeapUnit != 0 {
		return nil, fmt.Errorf("%w: arena at %d of %d bytes is empty or not aligned to %d-byte units", ErrLayout, arenaOff, arenaSize, HeapUnit)
	}
	units := arenaSize / HeapUnit
	mapBytes := bitmapBytes(units)
	switch {
	case !fits(arenaOff, arenaSize, h.Size()):
		return nil, fmt.Errorf("%w: arena [%d, +%d) outside the heap of %d bytes", ErrLayout, arenaOff, arenaSize, h.Size())
	case !fits(bitmapOff, mapBytes, h.Size()):
		return nil, fmt.Errorf("%w: heap bitmap [%d, +%d) outside the heap of %d bytes", ErrLayout, bitmapOff, mapBytes, h.Size())
	case overlaps(bitmapOff, mapBytes, arenaOff, arenaSize):
		return nil, fmt.Errorf("%w: heap bitmap [%d, +%d) overlaps the arena [%d, +%d)", ErrLayout, bitmapOff, mapBytes, arenaOff, arenaSize)
	}
	a := &Heap{h: h, bitmapOff: bitmapOff, arenaOff: arenaOff, units: units, free: NewFreeIndex(), spare: spare{idx: NewFreeIndex()}, resv: newReservations()}
	if err := rebuild(h, bitmapOff, units, a.free); err != nil {
		return nil, fmt.Errorf("alloc: open heap allocator: %w", err)
	}
	return a, nil
}

// unitsFor converts a byte size to units, rounding up.
func unitsFor(size uint64) uint64 { return size/HeapUnit + min(size%HeapUnit, 1) }

// where names a range of units as heap space.
func (a *Heap) where(r Range) string {
	return fmt.Sprintf("heap [%d, +%d bytes) (units %v)", a.arenaOff+r.Start*HeapUnit, r.Count*HeapUnit, r)
}

// span converts heap space to units of the arena.
func (a *Heap) span(off, size uint64) (Range, error) {
	if size == 0 || off < a.arenaOff || (off-a.arenaOff)%HeapUnit != 0 {
		return Range{}, fmt.Errorf("%w: heap span [%d, +%d) is empty or not at a unit of the arena at %d", ErrBadRange, off, size, a.arenaOff)
	}
	r := Range{(off - a.arenaOff) / HeapUnit, unitsFor(size)}
	if r.Count > a.units || r.Start > a.units-r.Count {
		return Range{}, fmt.Errorf("%w: heap span [%d, +%d) outside the arena [%d, +%d)", ErrBadRange, off, size, a.arenaOff, a.units*HeapUnit)
	}
	return r, nil
}

func (a *Heap) res(r Range) HeapRes {
	return HeapRes{off: a.arenaOff + r.Start*HeapUnit, size: r.Count * HeapUnit}
}

// Reserve takes size bytes (rounded up to units) from the free space, best
// fit, leaving the deletion reserve alone. It works in memory only and
// never takes the heap lock. The space is the caller's until it is
// cancelled or published. It returns an error wrapping ErrNoSpace if no
// free extent is large enough.
func (a *Heap) Reserve(size uint64) (HeapRes, error) { return a.reserve(size, false) }

// ReserveFreeing is Reserve for a transaction that gives space back (a
// delete, a truncate, aggregation): when the free space has no room it
// takes from the deletion reserve.
func (a *Heap) ReserveFreeing(size uint64) (HeapRes, error) { return a.reserve(size, true) }

func (a *Heap) reserve(size uint64, freeing bool) (HeapRes, error) {
	if size == 0 {
		return HeapRes{}, fmt.Errorf("%w: heap reservation of 0 bytes", ErrBadRange)
	}
	n := unitsFor(size)
	a.mu.Lock()
	defer a.mu.Unlock()
	from := a.free
	e, ok := from.FindBestFit(n)
	if !ok && freeing {
		from = a.spare.idx
		e, ok = from.FindBestFit(n)
	}
	if !ok {
		big, _ := a.free.Largest()
		kept := ""
		if n := a.spare.idx.Total(); n > 0 {
			kept = fmt.Sprintf(" (and %d bytes of deletion reserve)", n*HeapUnit)
		}
		return HeapRes{}, fmt.Errorf("%w: heap reservation of %d bytes: %d bytes free, largest free extent %d bytes%s",
			ErrNoSpace, size, a.free.Total()*HeapUnit, big.Count*HeapUnit, kept)
	}
	r := Range{e.Start, n}
	if err := from.Remove(r.Start, r.Count); err != nil {
		return HeapRes{}, err
	}
	a.resv.add(r)
	return a.res(r), nil
}

// Cancel returns a reservation that was not published to the free space.
// A reservation already cancelled or published is left alone.
func (a *Heap) Cancel(res HeapRes) {
	r, err := a.span(res.off, res.size)
	if err != nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.resv.held(r) {
		return
	}
	a.resv.remove(r)
	a.insertLocked(r)
}

// insertLocked returns r to the free index, and refills the deletion
// reserve from it; a failure means the allocator's state is corrupt and is
// kept for Check.
func (a *Heap) insertLocked(r Range) {
	to := a.free
	if a.spare.touches(r) {
		to = a.spare.idx // space cut from the reserve goes back to it whole
	}
	if err := to.Insert(r.Start, r.Count); err != nil {
		if a.fault == nil {
			a.fault = fmt.Errorf("returning %s to the free index: %w", a.where(r), err)
		}
		return
	}
	if held, target := a.spare.idx.Total(), a.spare.target; to == a.spare.idx && held > target {
		// Beyond the target: the excess of r is free space.
		a.moveLocked(a.spare.idx, a.free, Range{r.Start, min(r.Count, held-target)})
	}
	a.refillLocked()
}

// Publish allocates a reservation in tx by setting its bits. From then on the
// space belongs to the transaction: if tx aborts, the space is free again;
// if it commits, the space is allocated. This holds even when Publish fails
// (the transaction can then only abort), except with umem.ErrTxDone, when
// the reservation stays the caller's. A reservation not held (never made,
// cancelled or already published) gives an error wrapping ErrNotReserved.
func (a *Heap) Publish(tx *umem.Tx, res HeapRes) error {
	r, err := a.span(res.off, res.size)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotReserved, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.resv.held(r) {
		return fmt.Errorf("%w: heap [%d, +%d)", ErrNotReserved, res.off, res.size)
	}
	err = changeBits(tx, a.bitmapOff, r.Start, r.Count, true)
	if errors.Is(err, umem.ErrTxDone) {
		return err
	}
	a.resv.publish(r)
	tx.OnCommit(func(wal.ID) {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.resv.remove(r)
	})
	tx.OnAbort(func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.resv.remove(r)
		a.insertLocked(r)
	})
	return err
}

// Alloc reserves size bytes and publishes them in tx; it returns the heap
// offset. It leaves the deletion reserve alone.
func (a *Heap) Alloc(tx *umem.Tx, size uint64) (uint64, error) { return a.alloc(tx, size, false) }

// AllocFreeing is Alloc for a transaction that gives space back: it may
// take the deletion reserve (ReserveFreeing).
func (a *Heap) AllocFreeing(tx *umem.Tx, size uint64) (uint64, error) { return a.alloc(tx, size, true) }

func (a *Heap) alloc(tx *umem.Tx, size uint64, freeing bool) (uint64, error) {
	res, err := a.reserve(size, freeing)
	if err != nil {
		return 0, err
	}
	if err := a.Publish(tx, res); err != nil {
		a.Cancel(res) // a no-op if tx took the reservation
		return 0, err
	}
	return res.off, nil
}

// Free releases size bytes at heap offset off (the span given to Alloc or
// Reserve) in tx by clearing their bits. The space becomes reservable when
// tx commits. Space not wholly allocated gives an error wrapping
// ErrNotAllocated and changes nothing.
func (a *Heap) Free(tx *umem.Tx, off, size uint64) error {
	r, err := a.span(off, size)
	if err != nil {
		return err
	}
	ok, err := allBits(tx.Reader(), a.bitmapOff, r.Start, r.Count, true)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: free of %s", ErrNotAllocated, a.where(r))
	}
	if err := changeBits(tx, a.bitmapOff, r.Start, r.Count, false); err != nil {
		return err
	}
	tx.OnCommit(func(wal.ID) {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.insertLocked(r)
	})
	return nil
}

// Stats returns the allocator's figures.
func (a *Heap) Stats() HeapStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return HeapStats{
		Total:       a.units * HeapUnit,
		Free:        a.free.Total() * HeapUnit,
		Reserved:    a.resv.units * HeapUnit,
		Spare:       a.spare.idx.Total() * HeapUnit,
		SpareTarget: a.spare.target * HeapUnit,
	}
}

// Check verifies the allocator against its bitmap and refs, every live
// allocation known to the layer above. Call it outside any transaction on
// the heap. It reports, joined: a broken free index; free extents with
// allocated units; clear units neither free nor reserved; references that
// are misaligned, outside the arena, overlapping or not allocated; and
// allocated units no reference covers. The deletion reserve counts as free.
func (a *Heap) Check(refs []Span) error {
	c := &checker{where: a.where, unit: "units"}
	err := a.h.View(func(rd umem.Reader) error {
		bm, err := loadBitset(rd, a.bitmapOff, a.units)
		if err != nil {
			return err
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.fault != nil {
			c.addf("%v", a.fault)
		}
		c.add(a.free.Verify())
		c.add(a.spare.idx.Verify())
		var clears []claim
		a.free.Ascend(func(e Range) bool {
			clears = append(clears, claim{"free extent " + a.where(e), e})
			return true
		})
		a.spare.idx.Ascend(func(e Range) bool {
			clears = append(clears, claim{"deletion reserve extent " + a.where(e), e})
			return true
		})
		rs, pub := a.resv.sorted()
		for i, r := range rs {
			if pub[i] {
				c.addf("reservation %s is published by a transaction that has not ended", a.where(r))
				continue
			}
			clears = append(clears, claim{"reservation " + a.where(r), r})
		}
		claims := make([]claim, 0, len(refs))
		for i, s := range refs {
			what := fmt.Sprintf("reference %d (heap [%d, +%d bytes))", i, s.Off, s.Size)
			r, err := a.span(s.Off, s.Size)
			if err != nil {
				c.addf("%s: %v", what, err)
				continue
			}
			claims = append(claims, claim{what, r})
		}
		c.checkBitmap(bm, a.units, clears, claims)
		return nil
	})
	if err != nil {
		c.addf("reading the heap bitmap: %v", err)
	}
	return c.err()
}
