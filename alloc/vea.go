package alloc

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"

	"vosfs/umem"
	"vosfs/wal"
)

// BlockSize is the allocation unit of the VEA, in bytes of the data blob.
const BlockSize = 4096

// Extent is Count data blocks starting at block Block.
type Extent struct {
	Block, Count uint64
}

func (e Extent) rng() Range { return Range{e.Block, e.Count} }

func extent(r Range) Extent { return Extent{r.Start, r.Count} }

// Hint is a stream's placement hint: Reserve tries to place the stream's
// next reservation right after its last one, so that a stream written in
// order lands in order. The zero value is a hint with no history. Reserve
// reads and updates it under the allocator's lock.
type Hint struct {
	next  uint64 // the block after the stream's last reservation
	valid bool
}

// VEAStats are a VEA's figures, in blocks.
type VEAStats struct {
	Blocks   uint64 // the data blob
	Free     uint64 // reservable now
	Aging    uint64 // freed, waiting for the freeing record to be durable
	Reserved uint64 // reserved, or published by a transaction not yet ended
}

// VEA is the versioned extent allocator of the data blob. Its persistent
// state is a bitmap in the metadata heap, one bit per block (set =
// allocated); its free index is rebuilt from the bitmap at open. Freed
// blocks age until the freeing record is durable before they are reused.
type VEA struct {
	h         *umem.Heap
	bitmapOff uint64
	blocks    uint64
	durable   func() wal.ID // called with mu held: must not call into the VEA

	// mu guards the fields below. It is taken after the heap lock (commit
	// and abort hooks run with the heap write-locked), never before it.
	mu    sync.Mutex
	free  *FreeIndex   // clear blocks reservable now
	aging agingList    // clear blocks freed by records that may not be durable
	resv  reservations // blocks taken by Reserve, not yet allocated
	fault error        // first internal failure of a hook, reported by Check
}

// NewVEA opens the allocator of blocks data blocks whose bitmap is at heap
// offset bitmapOff; durable returns the log's durable ID (a record with ID
// id is durable once durable() > id). durable is called with the VEA's lock
// held and must not call back into the VEA. It rebuilds the free index from the
// bitmap, so it must not run while transactions change the bitmap.
func NewVEA(h *umem.Heap, bitmapOff, blocks uint64, durable func() wal.ID) (*VEA, error) {
	switch {
	case h == nil:
		return nil, fmt.Errorf("%w: nil heap", ErrLayout)
	case durable == nil:
		return nil, fmt.Errorf("%w: nil durable ID source", ErrLayout)
	case blocks == 0:
		return nil, fmt.Errorf("%w: data blob of 0 blocks", ErrLayout)
	case !fits(bitmapOff, bitmapBytes(blocks), h.Size()):
		return nil, fmt.Errorf("%w: data bitmap [%d, +%d) outside the heap of %d bytes", ErrLayout, bitmapOff, bitmapBytes(blocks), h.Size())
	}
	v := &VEA{h: h, bitmapOff: bitmapOff, blocks: blocks, durable: durable, free: NewFreeIndex(), resv: newReservations()}
	if err := rebuild(h, bitmapOff, blocks, v.free); err != nil {
		return nil, fmt.Errorf("alloc: open extent allocator: %w", err)
	}
	return v, nil
}

func (v *VEA) where(r Range) string { return fmt.Sprintf("blocks %v", r) }

// Reserve takes count blocks from the free space, in memory only (it never
// takes the heap lock). It tries, in order: the block right after the
// hint's last reservation; the best-fitting single extent; several extents,
// largest first (the last one best-fitting the remainder). If that fails it
// promotes aged frees that are now durable and tries again. The result
// covers count blocks exactly, or it returns an error wrapping ErrNoSpace
// and reserves nothing. hint may be nil.
func (v *VEA) Reserve(hint *Hint, count uint64) ([]Extent, error) {
	if count == 0 {
		return nil, fmt.Errorf("%w: reservation of 0 blocks", ErrBadRange)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	rs, ok := v.takeLocked(hint, count)
	if !ok && v.promoteLocked() > 0 {
		rs, ok = v.takeLocked(hint, count)
	}
	if !ok {
		big, _ := v.free.Largest()
		return nil, fmt.Errorf("%w: reservation of %d blocks: %d free (largest extent %d), %d aging, %d reserved, of %d",
			ErrNoSpace, count, v.free.Total(), big.Count, v.aging.units, v.resv.units, v.blocks)
	}
	exts := make([]Extent, len(rs))
	for i, r := range rs {
		v.resv.add(r)
		exts[i] = extent(r)
	}
	if hint != nil {
		hint.next, hint.valid = rs[len(rs)-1].End(), true
	}
	return exts, nil
}

// takeLocked removes count blocks from the free index, or nothing.
func (v *VEA) takeLocked(hint *Hint, count uint64) ([]Range, bool) {
	if hint != nil && hint.valid && v.free.Contains(hint.next, count) {
		return v.cutLocked(nil, Range{hint.next, count}), true
	}
	if e, ok := v.free.FindBestFit(count); ok {
		return v.cutLocked(nil, Range{e.Start, count}), true
	}
	if v.free.Total() < count {
		return nil, false
	}
	var rs []Range
	for left := count; left > 0; {
		e, ok := v.free.FindBestFit(left)
		if !ok {
			e, _ = v.free.Largest() // non-empty: the free total covers left
		}
		n := min(e.Count, left)
		rs = v.cutLocked(rs, Range{e.Start, n})
		left -= n
	}
	return rs, true
}

// cutLocked removes r, a range of one free extent, from the index and
// appends it to rs.
func (v *VEA) cutLocked(rs []Range, r Range) []Range {
	if err := v.free.Remove(r.Start, r.Count); err != nil {
		panic(fmt.Sprintf("alloc: VEA free index: %v", err)) // r was just found free
	}
	return append(rs, r)
}

// promoteLocked moves the aged extents whose freeing record is durable to
// the free index and returns the blocks moved.
func (v *VEA) promoteLocked() uint64 {
	if len(v.aging.batches) == 0 {
		return 0
	}
	return v.aging.promote(v.durable(), v.insertLocked)
}

// insertLocked returns r to the free index; a failure means the allocator's
// state is corrupt and is kept for Check.
func (v *VEA) insertLocked(r Range) {
	if err := v.free.Insert(r.Start, r.Count); err != nil && v.fault == nil {
		v.fault = fmt.Errorf("returning %s to the free index: %w", v.where(r), err)
	}
}

// Age promotes the aged extents whose freeing record is now durable and
// returns the number of blocks made reservable.
func (v *VEA) Age() uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.promoteLocked()
}

// Cancel returns reservations that were not published to the free space.
// Extents that are not held reservations (cancelled or published already)
// are left alone.
func (v *VEA) Cancel(exts []Extent) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, e := range exts {
		if r := e.rng(); v.resv.held(r) {
			v.resv.remove(r)
			v.insertLocked(r)
		}
	}
}

// Publish allocates reserved extents in tx by setting their bits. From then
// on they belong to the transaction: if tx aborts they are free again; if it
// commits they are allocated. This holds even when Publish fails (the
// transaction can then only abort), except with umem.ErrTxDone, when they
// stay the caller's. If any extent is not a held reservation (exactly as
// returned by Reserve) it returns an error wrapping ErrNotReserved and
// publishes nothing.
func (v *VEA) Publish(tx *umem.Tx, exts []Extent) error {
	if len(exts) == 0 {
		return nil
	}
	rs := make([]Range, len(exts))
	v.mu.Lock()
	defer v.mu.Unlock()
	seen := make(map[uint64]bool, len(exts))
	for i, e := range exts {
		rs[i] = e.rng()
		if !v.resv.held(rs[i]) || seen[e.Block] {
			return fmt.Errorf("%w: %s", ErrNotReserved, v.where(rs[i]))
		}
		seen[e.Block] = true
	}
	var err error
	for _, r := range rs {
		if err = changeBits(tx, v.bitmapOff, r.Start, r.Count, true); err != nil {
			break
		}
	}
	if errors.Is(err, umem.ErrTxDone) {
		return err
	}
	for _, r := range rs {
		v.resv.publish(r)
	}
	tx.OnCommit(func(wal.ID) {
		v.mu.Lock()
		defer v.mu.Unlock()
		for _, r := range rs {
			v.resv.remove(r)
		}
	})
	tx.OnAbort(func() {
		v.mu.Lock()
		defer v.mu.Unlock()
		for _, r := range rs {
			v.resv.remove(r)
			v.insertLocked(r)
		}
	})
	return err
}

// Free releases extents in tx by clearing their bits. When tx commits they
// go to the aging list, tagged with the commit's ID, and become reservable
// once that record is durable. If any block is not allocated, or the extents
// overlap each other or leave the blob, it returns an error (wrapping
// ErrNotAllocated for blocks not allocated) and changes nothing.
func (v *VEA) Free(tx *umem.Tx, exts []Extent) error {
	if len(exts) == 0 {
		return nil
	}
	rs := make([]Range, len(exts))
	for i, e := range exts {
		rs[i] = e.rng()
		if !validRange(rs[i]) || rs[i].End() > v.blocks {
			return fmt.Errorf("%w: free of %s, blob of %d blocks", ErrBadRange, v.where(rs[i]), v.blocks)
		}
	}
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b Range) int { return cmp.Compare(a.Start, b.Start) })
	for i := 1; i < len(sorted); i++ {
		if sorted[i-1].End() > sorted[i].Start {
			return fmt.Errorf("%w: free of overlapping %s and %s", ErrBadRange, v.where(sorted[i-1]), v.where(sorted[i]))
		}
	}
	rd := tx.Reader()
	for _, r := range rs {
		ok, err := allBits(rd, v.bitmapOff, r.Start, r.Count, true)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: free of %s", ErrNotAllocated, v.where(r))
		}
	}
	for _, r := range rs {
		if err := changeBits(tx, v.bitmapOff, r.Start, r.Count, false); err != nil {
			return err
		}
	}
	tx.OnCommit(func(id wal.ID) {
		v.mu.Lock()
		defer v.mu.Unlock()
		v.aging.add(id, rs)
	})
	return nil
}

// Stats promotes durable aged extents and returns the allocator's figures.
func (v *VEA) Stats() VEAStats {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.promoteLocked()
	return VEAStats{Blocks: v.blocks, Free: v.free.Total(), Aging: v.aging.units, Reserved: v.resv.units}
}

// Check promotes durable aged extents, then verifies the allocator against
// its bitmap and refs, every live extent known to the layer above. Call it
// outside any transaction on the heap. It reports, joined: a broken free
// index; a clear block that is not in exactly one of free, aging and
// reserved; an allocated block in any of them; references that are empty,
// outside the blob, overlapping or not allocated; and allocated blocks no
// reference covers.
func (v *VEA) Check(refs []Extent) error {
	v.Age()
	c := &checker{where: v.where, unit: "blocks"}
	err := v.h.View(func(rd umem.Reader) error {
		bm, err := loadBitset(rd, v.bitmapOff, v.blocks)
		if err != nil {
			return err
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if v.fault != nil {
			c.addf("%v", v.fault)
		}
		c.add(v.free.Verify())
		var clears []claim
		v.free.Ascend(func(e Range) bool {
			clears = append(clears, claim{"free extent " + v.where(e), e})
			return true
		})
		var last wal.ID
		for _, b := range v.aging.batches {
			if b.id < last {
				c.addf("aging list out of order: tx %d after tx %d", b.id, last)
			}
			last = b.id
			for _, e := range b.exts {
				clears = append(clears, claim{fmt.Sprintf("aging extent %s (freed by tx %d)", v.where(e), b.id), e})
			}
		}
		rs, pub := v.resv.sorted()
		for i, r := range rs {
			if pub[i] {
				c.addf("reservation %s is published by a transaction that has not ended", v.where(r))
				continue
			}
			clears = append(clears, claim{"reservation " + v.where(r), r})
		}
		claims := make([]claim, len(refs))
		for i, e := range refs {
			claims[i] = claim{fmt.Sprintf("reference %d (%s)", i, v.where(e.rng())), e.rng()}
		}
		c.checkBitmap(bm, v.blocks, clears, claims)
		return nil
	})
	if err != nil {
		c.addf("reading the data bitmap: %v", err)
	}
	return c.err()
}
