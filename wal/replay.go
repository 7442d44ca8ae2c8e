package wal

import (
	"fmt"
	"strings"
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
// lap or generation), or fails its checksum. That is the normal end of a log
// after a crash only if it can be a torn tail: nothing below the durable ID
// the header records, no intact record of a later generation anywhere in the
// ring, and no intact record of the generation in a later batch than the
// bad record could belong to (the rule is in the package doc). Otherwise Replay
// returns the end at the damage and a *CorruptError (wrapping ErrCorrupt)
// that describes it; a caller repairing the log may then Start there, which
// drops what follows. progress, if not nil, gets the bytes replayed so far.
// Replay changes nothing on disk, so it may be repeated.
func (l *Log) Replay(fn func(*Record) error, progress func(done uint64)) (ID, error) {
	h := l.Header()
	gen := uint32(h.Gen)
	r := &ringReader{l: l}
	pos := uint64(h.Checkpoint)
	limit := uint64(h.Checkpoint) + l.ring
	var lastTx ID // the last transaction record replayed
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
			stop = fmt.Errorf("%w: id %d, generation %d, %d bytes", errBadRecord, hd.id, hd.gen, size)
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
				stop = fmt.Errorf("%w: %w", errBadRecord, err)
				break
			}
			if err := fn(&Record{ID: ID(pos), Count: hd.count, Body: body}); err != nil {
				return ID(pos), err
			}
			lastTx = ID(pos)
		}
		pos += size
		if progress != nil {
			progress(pos - uint64(h.Checkpoint))
		}
	}
	if stop == nil || l.clean && ID(pos) >= h.Durable {
		// A clean log whose two headers are intact ends at its checkpoint:
		// there is nothing past it to look for.
		return ID(pos), nil
	}
	ts, err := l.scanTail(r, pos, limit, gen)
	if err != nil {
		return ID(pos), err
	}
	l.mu.Lock()
	l.seenGen = max(gen, ts.newerGen)
	l.mu.Unlock()
	var cause string
	switch {
	case ID(pos) < h.Durable:
		cause = fmt.Sprintf("the log header records the log durable to %d", h.Durable)
	case ts.newer != 0:
		cause = fmt.Sprintf("the intact record at %d has generation %d, newer than the log header's %d: the newest log header is damaged",
			ts.newer, ts.newerGen, gen)
	case ts.beyond != 0 && ts.sealed != 0 && ts.beyond >= ts.sealed:
		cause = fmt.Sprintf("%d intact record(s) of its generation follow it up to %d, and the one at %d is in a later batch than it (a batch ended at %d), which was written only once the batch of the damage was durable",
			ts.intact, ts.end, ts.beyond, ts.sealed)
	case ts.beyond != 0:
		cause = fmt.Sprintf("%d intact record(s) of its generation follow it up to %d, and the one at %d lies beyond the %d bytes of the one batch a crash can tear",
			ts.intact, ts.end, ts.beyond, l.batch)
	default:
		return ID(pos), nil // a torn tail
	}
	return ID(pos), &CorruptError{Damage{
		Log:      l.f.Name(),
		At:       ID(pos),
		Reason:   strings.TrimPrefix(stop.Error(), errBadRecord.Error()+": "),
		LastGood: lastTx,
		NextGood: ts.first,
		End:      max(ts.end, h.Durable, ID(pos)),
		Intact:   ts.intact,
		Cause:    cause,
	}}
}
