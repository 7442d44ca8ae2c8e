package vos

import (
	"encoding/binary"
	"errors"
	"fmt"

	"vosfs/alloc"
	"vosfs/pool"
	"vosfs/umem"
	"vosfs/wal"
)

// ErrInconsistent is wrapped by every problem Check finds in the indexes.
var ErrInconsistent = errors.New("vos: inconsistent")

// Check verifies the store: the tree's own invariants, every key and record
// well formed, epochs no newer than the last committed one, every value's
// checksum (heap values and data-blob extents, which it reads), and then the
// pool's allocators against exactly the heap spans and extents the records
// reference (each referenced once, nothing else allocated). Call it with no
// transaction in progress.
func (s *Store) Check() error {
	// Aggregation frees what it drops between the reading of references
	// and the reading of the bitmaps: keep it out.
	s.aggMu.Lock()
	defer s.aggMu.Unlock()
	var refs pool.Refs
	var errs []error
	var dbuf []byte // one extent's bytes
	bad := func(format string, args ...any) {
		if len(errs) < 100 {
			errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInconsistent}, args...)...))
		}
	}
	if err := s.p.View(func(r umem.Reader) error {
		epoch, err := r.Uint64(rootEpoch)
		if err != nil {
			return err
		}
		_, spans, err := s.tree.Check(r)
		if err != nil {
			bad("tree: %v", err)
			return nil
		}
		refs.Heap = append(refs.Heap, spans...)
		it := s.tree.Seek(r, nil)
		for it.Next() {
			k, val := it.Key(), it.Value()
			rc, err := decodeRec(val)
			if err != nil {
				bad("key %x: %v", k, err)
				continue
			}
			var ke uint64
			switch k[0] {
			case kindData:
				pk, err := parseDataKey(k)
				if err != nil {
					bad("%v", err)
					continue
				}
				ke = pk.epoch
				switch {
				case pk.sub == subPunch && rc.kind != recPunch:
					bad("range punch %x holds a record of kind %d", k, rc.kind)
				case pk.sub == subPunch && rc.loc >= rc.size:
					bad("range punch %x is empty [%d, %d)", k, rc.loc, rc.size)
				case pk.sub == subExt && (rc.kind == recPunch || rc.size == 0 || rc.size > MaxExtentLen):
					bad("extent %x: kind %d size %d", k, rc.kind, rc.size)
				}
			case kindObjPunch:
				if len(k) != 17 {
					bad("object punch key %x", k)
					continue
				}
				ke = ^binary.BigEndian.Uint64(k[9:])
			case kindSnapshot:
				ke = rc.size
			default:
				bad("unknown key %x", k)
				continue
			}
			if ke > epoch {
				bad("key %x at epoch %d, beyond the last committed %d", k, ke, epoch)
			}
			switch rc.kind {
			case recHeap:
				refs.Heap = append(refs.Heap, alloc.Span{Off: rc.loc, Size: roundUnit(rc.size)})
				b, err := r.Bytes(rc.loc, rc.size)
				if err != nil {
					bad("key %x: %v", k, err)
				} else if wal.Checksum(b) != rc.csum {
					bad("key %x: value checksum mismatch", k)
				}
			case recData:
				ext := alloc.Extent{Block: rc.loc, Count: rc.blocks()}
				refs.Extents = append(refs.Extents, ext)
				if uint64(cap(dbuf)) < rc.size {
					dbuf = make([]byte, rc.size)
				}
				if err := s.p.ReadData(ext, 0, dbuf[:rc.size]); err != nil {
					bad("key %x: %v", k, err)
				} else if wal.Checksum(dbuf[:rc.size]) != rc.csum {
					bad("key %x: data extent %+v checksum mismatch", k, ext)
				}
			}
		}
		return it.Err()
	}); err != nil {
		errs = append(errs, err)
	}
	if err := s.p.Check(refs); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func roundUnit(n uint64) uint64 {
	return (n + alloc.HeapUnit - 1) / alloc.HeapUnit * alloc.HeapUnit
}
