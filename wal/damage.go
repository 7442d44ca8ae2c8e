package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// MaxBatch is the most log bytes one group-commit batch holds when it holds
// more than one record (a ring smaller than 4 MiB allows a quarter of the
// ring). It is part of the log format: replay relies on it to tell a torn
// tail from damage, so a build may lower it but never raise it.
const MaxBatch = 1 << 20

// batchLimit is the batch limit of a ring of ring bytes: MaxBatch, or a
// quarter of a small ring, in whole blocks.
func batchLimit(ring uint64) uint64 { return min(MaxBatch, ring/4) &^ (blockSize - 1) }

// Damage describes a damaged log: where replay found the first record that
// fails its checks, the intact records around it, and why the damage cannot
// be a torn tail.
type Damage struct {
	Log      string // the log blob's name
	At       ID     // position of the first record that fails its checks: the end of what replays
	Reason   string // what is wrong with it (bad magic, checksum mismatch, ...)
	LastGood ID     // start of the last intact record before At; 0 if none since the checkpoint
	NextGood ID     // first intact transaction record of the generation after At; 0 if none
	// End is the end of the log as written: past the last intact record of
	// the generation, and at least the durable ID the header recorded.
	End ID
	// Intact is the number of intact transaction records of the generation
	// (or a later one) between At and End: what a truncation at At drops
	// besides the damage.
	Intact uint64
	Cause  string // why this is damage and not a torn tail
}

// Dropped is the log bytes a truncation at At drops.
func (d *Damage) Dropped() uint64 { return uint64(d.End - d.At) }

// CorruptError is the error Replay returns for a damaged log; it wraps
// ErrCorrupt.
type CorruptError struct{ Damage }

func (e *CorruptError) Unwrap() error { return ErrCorrupt }

func (e *CorruptError) Error() string {
	d := &e.Damage
	var b strings.Builder
	fmt.Fprintf(&b, "%v: %s: the record at log position %d is damaged (%s), but %s", ErrCorrupt, d.Log, d.At, d.Reason, d.Cause)
	if d.LastGood != 0 {
		fmt.Fprintf(&b, "; the last intact record before it is at %d", d.LastGood)
	} else {
		b.WriteString("; no intact record precedes it since the checkpoint")
	}
	if d.NextGood != 0 {
		fmt.Fprintf(&b, ", the first intact record after it at %d", d.NextGood)
	}
	fmt.Fprintf(&b, ". The log cannot end there without losing acknowledged operations, so the pool is not opened. "+
		"Restore the pool from a backup, or truncate the log at %d (vosfs fsck --repair), "+
		"dropping %d intact record(s) and %d bytes of log after the damage",
		d.At, d.Intact, d.Dropped())
	return b.String()
}

// AsDamage returns the damage err describes, if it is (or wraps) a
// CorruptError.
func AsDamage(err error) (*Damage, bool) {
	var ce *CorruptError
	if errors.As(err, &ce) {
		return &ce.Damage, true
	}
	return nil, false
}

// tailScan is what lies in the ring after the first bad record.
type tailScan struct {
	intact   uint64 // intact transaction records of the generation or a later one
	first    ID     // the first of them (0: none)
	end      ID     // end of the last intact record (transaction or pad) of them
	beyond   ID     // first of them outside the batch the bad record could belong to (0: none)
	sealed   ID     // end of the first intact seal pad of the generation after the bad record (0: none)
	newer    ID     // first intact record of a later generation (0: none)
	newerGen uint32
}

// inFlight reports whether an intact transaction record at q of size bytes
// could have been written by the same batch as a bad record at p < q, so
// that a crash tearing that batch could leave the one intact and the other
// not. A batch starts on a block boundary s <= p. A batch of several
// records spans at most l.batch bytes, so it ends by alignDown(p)+l.batch;
// a batch of one larger record holds no other transaction record, so the
// two share one only if p is in the wrap pad before q at the ring's start.
func (l *Log) inFlight(p, q, size uint64) bool {
	if q+size <= p&^(blockSize-1)+l.batch {
		return true
	}
	return q%l.ring == 0 && q-p < size
}

// scanTail looks through the ring from the bad record at p to limit for
// intact records: of the generation gen (is the damage followed by records
// a torn batch cannot explain: outside the batch limit of p, or after a seal
// pad that ends the batch?) and of later generations (was the newest header
// lost?). A record is intact when its head, position, generation,
// size, checksum and (for a transaction) actions are all valid.
func (l *Log) scanTail(r *ringReader, p, limit uint64, gen uint32) (tailScan, error) {
	var ts tailScan
	for q := p; q < limit; { // p itself may be intact, of a later generation
		off := q % l.ring
		hb, err := r.span(off, headSize)
		if err != nil {
			return ts, err
		}
		if binary.LittleEndian.Uint32(hb) != recordMagic {
			q += RecordAlign
			continue
		}
		hd, err := decodeHead(hb)
		if err != nil || hd.id != ID(q) || off+hd.size() > l.ring || q+hd.size() > limit ||
			(hd.kind == kindTx && hd.size() > l.limit) {
			q += RecordAlign
			continue
		}
		later := int32(hd.gen-gen) > 0
		if hd.gen != gen && !later {
			q += RecordAlign
			continue
		}
		size := hd.size()
		rec, err := r.span(off, size)
		if err != nil {
			return ts, err
		}
		if checkCRC(hd, rec) != nil ||
			hd.kind == kindTx && DecodeActions(rec[headSize:headSize+int(hd.bodyLen)], hd.count, func(Action) error { return nil }) != nil {
			q += RecordAlign
			continue
		}
		if later && ts.newer == 0 {
			ts.newer, ts.newerGen = ID(q), hd.gen
		}
		if hd.kind == kindTx {
			ts.intact++
			if ts.first == 0 {
				ts.first = ID(q)
			}
			if !later && ts.beyond == 0 && (ts.sealed != 0 || !l.inFlight(p, q, size)) {
				ts.beyond = ID(q)
			}
		} else if end := q + size; !later && ts.sealed == 0 && end%blockSize == 0 && end%l.ring != 0 {
			// A pad that ends on a block boundary other than the ring's
			// end is a seal pad: the batch that holds it (or one before
			// it, holding p) ended there.
			ts.sealed = ID(end)
		}
		ts.end = ID(q + size)
		q += size
	}
	return ts, nil
}
