package vos

import (
	"errors"
	"fmt"
	"log"

	"vosfs/wal"
)

// ErrChecksum is wrapped by a read that found a value or a data-blob extent
// whose bytes do not match the checksum its record holds: the bytes are
// damaged where they are stored, and the read returns none of them.
var ErrChecksum = errors.New("vos: checksum mismatch")

// maxBadLogged bounds the set of damaged places already logged: past it, a
// mismatch is still refused and counted, and logged again.
const maxBadLogged = 4096

// verify checks b, the whole bytes of the record r (of p, at array offset
// off for an extent), against the record's checksum. A mismatch is counted,
// logged once per place, and returned as ErrChecksum naming the object, the
// offset and where the bytes are in their blob.
func (s *Store) verify(p Path, off uint64, r rec, b []byte) error {
	got := wal.Checksum(b)
	if got == r.csum {
		return nil
	}
	var where string
	switch r.kind {
	case recData:
		where = fmt.Sprintf("data blob block %d (+%d bytes)", r.loc, r.size)
	case recHeap:
		where = fmt.Sprintf("heap offset %#x (+%d bytes)", r.loc, r.size)
	default:
		where = fmt.Sprintf("inline record (%d bytes)", r.size)
	}
	err := fmt.Errorf("%w: %v at offset %d: %s holds checksum %08x, record says %08x", ErrChecksum, p, off, where, got, r.csum)
	key := [2]uint64{uint64(r.kind), r.loc}
	if r.kind == recInline {
		key[1] = uint64(r.csum) // inline bytes have no position of their own
	}
	s.mu.Lock()
	s.stats.ChecksumErrors++
	first := !s.badLogged[key]
	if first && len(s.badLogged) < maxBadLogged {
		s.badLogged[key] = true
	}
	s.mu.Unlock()
	if first {
		s.logf("%v", err)
	}
	return err
}

func (s *Store) logf(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf(format, args...)
		return
	}
	log.Printf(format, args...)
}
