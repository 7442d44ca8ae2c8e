package wal

import (
	"fmt"
)

// replayWindow is how much of the ring replay reads at a time.
const replayWindow = 4 << 20

// ringReader reads spans of the ring through a window, for replay.
type ringReader struct {
	l     *Log
	buf   []byte
	start uint64 // physical ring offset of buf[0]
}

// span returns n bytes at physical ring offset off (off+n <= ring).
func (r *ringReader) span(off, n uint64) ([]byte, error) {
	if off >= r.start && off+n <= r.start+uint64(len(r.buf)) {
		return r.buf[off-r.start : off-r.start+n], nil
	}
	start := off &^ (blockSize - 1)
	size := max(alignUp(off+n, blockSize)-start, replayWindow)
	size = min(size, r.l.ring-start)
	if uint64(cap(r.buf)) < size {
		r.buf = make([]byte, size)
	}
	r.buf = r.buf[:size]
	if _, err := r.l.f.ReadAt(r.buf, int64(RingOffset+start)); err != nil {
		return nil, fmt.Errorf("wal: replay read: %w", err)
	}
	r.start = start
	return r.buf[off-start : off-start+n], nil
}

// Replay calls fn, in ID order, for every valid record from the checkpointed
// ID to the end of the log, and returns the end: the position after the last
// valid record. It stops at the first record that is torn, stale (an earlier
// lap or generation), or fails its checksum; that is the normal end of a log
// after a crash. A bad record below the durable ID stored in the header is
// corruption and returns ErrCorrupt. progress, if not nil, gets the bytes
// replayed so far. Replay changes nothing on disk, so it may be repeated.
func (l *Log) Replay(fn func(*Record) error, progress func(done uint64)) (ID, error) {
	h := l.Header()
	gen := uint32(h.Gen)
	r := &ringReader{l: l}
	pos := uint64(h.Checkpoint)
	limit := uint64(h.Checkpoint) + l.ring
	var stop error
	for pos < limit {
		off := pos % l.ring
		hb, err := r.span(off, headSize)
		if err != nil {
			return ID(pos), err
		}
		hd, err := decodeHead(hb)
		if err != nil {
			stop = err
			break
		}
		size := hd.size()
		if hd.id != ID(pos) || hd.gen != gen || off+size > l.ring || pos+size > limit ||
			(hd.kind == kindTx && size > l.limit) {
			stop = fmt.Errorf("%w: record at %d: id %d gen %d size %d", errBadRecord, pos, hd.id, hd.gen, size)
			break
		}
		rec, err := r.span(off, size)
		if err != nil {
			return ID(pos), err
		}
		if err := checkCRC(hd, rec); err != nil {
			stop = err
			break
		}
		if hd.kind == kindTx {
			body := rec[headSize : headSize+int(hd.bodyLen)]
			if err := DecodeActions(body, hd.count, func(Action) error { return nil }); err != nil {
				stop = err
				break
			}
			if err := fn(&Record{ID: ID(pos), Count: hd.count, Body: body}); err != nil {
				return ID(pos), err
			}
		}
		pos += size
		if progress != nil {
			progress(pos - uint64(h.Checkpoint))
		}
	}
	if ID(pos) < h.Durable {
		return ID(pos), fmt.Errorf("%w: %s: replay stopped at %d (%v) but the log was durable to %d",
			ErrCorrupt, l.f.Name(), pos, stop, h.Durable)
	}
	return ID(pos), nil
}
