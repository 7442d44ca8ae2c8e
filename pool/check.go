package pool

import (
	"errors"
	"fmt"

	"vosfs/alloc"
	"vosfs/umem"
	"vosfs/wal"
)

// Refs are the heap spans and data extents the layer above references: all
// of them must be allocated, none twice, and nothing else allocated.
type Refs struct {
	Heap    []alloc.Span
	Extents []alloc.Extent
}

// Check verifies the pool: the blob headers on disk, the heap superblock,
// and both allocators against each other and against refs. Call it with no
// transaction in progress (a test's teardown, fsck). It returns every
// problem found, joined.
func (p *Pool) Check(refs Refs) error {
	var errs []error
	if _, err := readStaticHeader(p.metaf, metaMagic, p.uuid); err != nil {
		errs = append(errs, err)
	}
	if _, err := readStaticHeader(p.dataf, dataMagic, p.uuid); err != nil {
		errs = append(errs, err)
	}
	buf := make([]byte, wal.RingOffset)
	if _, err := p.walf.ReadAt(buf, 0); err != nil {
		errs = append(errs, err)
	} else {
		valid := 0
		for slot := 0; slot < 2; slot++ {
			if h, err := wal.DecodeHeader(buf[slot*BlockSize : (slot+1)*BlockSize]); err == nil && h.PoolUUID == p.uuid {
				valid++
			}
		}
		if valid == 0 {
			errs = append(errs, fmt.Errorf("%s: no valid log header", p.walf.Name()))
		}
	}
	if err := p.heap.View(func(r umem.Reader) error {
		b, err := r.Bytes(0, superLen)
		if err != nil {
			return err
		}
		l, err := decodeSuper(b)
		if err == nil && l != p.layout {
			err = fmt.Errorf("%w: heap superblock changed while open", ErrBadPool)
		}
		return err
	}); err != nil {
		errs = append(errs, err)
	}
	if err := p.heapA.Check(refs.Heap); err != nil {
		errs = append(errs, fmt.Errorf("heap allocator: %w", err))
	}
	if err := p.vea.Check(refs.Extents); err != nil {
		errs = append(errs, fmt.Errorf("extent allocator: %w", err))
	}
	return errors.Join(errs...)
}
