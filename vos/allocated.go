package vos

// Allocated is the space p's array takes at the view's epoch, in bytes:
// each extent that still shows a byte counts what it stores — whole blocks
// of the data blob, or its bytes in the heap — and holes, punched ranges
// and extents wholly written over count nothing. It reads the array's
// records, not its bytes: its cost is that of listing the array's extents.
func (v *View) Allocated(p Path) (uint64, error) {
	if err := p.check(); err != nil {
		return 0, err
	}
	var n uint64
	err := v.run(func(w view) error {
		var err error
		n, err = w.allocated(p)
		return err
	})
	return n, err
}

// Allocated is View.Allocated at the transaction's epoch (its own writes
// are not counted; nothing is recorded as read).
func (tx *Tx) Allocated(p Path) (uint64, error) {
	if err := tx.usable(); err != nil {
		return 0, err
	}
	if err := p.check(); err != nil {
		return 0, err
	}
	var n uint64
	err := tx.view(nil, func(w view) error {
		var err error
		n, err = w.allocated(p)
		return err
	})
	return n, err
}

func (v view) allocated(p Path) (uint64, error) {
	items, err := v.arrayItems(p, 0, ^uint64(0))
	if err != nil {
		return 0, err
	}
	// An item shows if some byte of it is not claimed by a newer one.
	var claimed []Segment
	var total uint64
	for _, item := range items {
		if !item.punch && len(gaps(claimed, item.start, item.end)) > 0 {
			total += item.r.stored()
		}
		claimed = addRange(claimed, item.start, item.end)
	}
	return total, nil
}

// stored is the space a record's bytes take: whole blocks in the data
// blob, or the bytes themselves (in the heap, or inline).
func (r rec) stored() uint64 {
	switch r.kind {
	case recData:
		return r.blocks() * blockSize
	case recHeap, recInline:
		return r.size
	}
	return 0
}
