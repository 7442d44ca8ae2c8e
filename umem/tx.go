package umem

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"

	"vosfs/wal"
)

// ErrTxDone is returned by a Tx used after Commit or Abort.
var ErrTxDone = errors.New("umem: transaction already ended")

// Appender takes a transaction's record into the log: *wal.Log.
type Appender interface {
	Append(body wal.Encoder, data []wal.DataWait) (*wal.Commit, error)
}

type undo struct {
	off uint64
	old []byte // aliases Tx.undoBuf
}

// span is a byte range of the heap the record carries as a copy of its
// final bytes.
type copyRange struct{ off, end uint64 }

// Changes that cover more than logicalMin bytes with a fill or a bit range
// are logged as that action (a few bytes however long the range), the rest
// as copies of the final bytes of the ranges they touched, merged.
const logicalMin = 64

// Tx is one heap transaction: it holds the heap's write lock from Begin to
// Commit or Abort, and applies changes in place while noting the ranges
// they touch. The record is encoded once, at Commit, straight into the
// log's buffer: first the fills and bit ranges logged as such, in order,
// then one copy of the final bytes of each merged range the other changes
// touched (replay applies them last, so it ends at the same bytes).
type Tx struct {
	h       *Heap
	limit   int // largest record body
	size    int // upper bound of the encoded body so far
	actions int // changes made, for Empty
	bufs    *txBufs
	touched []uint32
	data    []wal.DataWait
	err     error
	done    bool
	merged  int       // Encode: the body's copies, set by mergeSpans
	bodyLen int       // Encode: the exact body size, set by mergeSpans
	pages   [4]uint32 // the first pages of touched, without an allocation
}

// txBufs are a transaction's buffers, reused by later transactions.
type txBufs struct {
	undo     []undo
	undoBuf  []byte
	spans    []copyRange
	logical  []byte // encoded fill, bit and data-checksum actions
	nLogical int
	onCommit []func(wal.ID)
	onAbort  []func()
}

var bufPool = sync.Pool{New: func() any { return new(txBufs) }}

// Begin starts a transaction whose record may hold at most limit bytes
// (head included). It blocks until the previous transaction has ended.
func (h *Heap) Begin(limit int) *Tx {
	h.mu.Lock()
	h.txSeq++
	tx := &Tx{h: h, limit: limit - int(wal.RecordSize(0)), bufs: bufPool.Get().(*txBufs)}
	tx.touched = tx.pages[:0]
	return tx
}

// release hands the buffers back once the transaction has ended.
func (tx *Tx) release() {
	b := tx.bufs
	tx.bufs = nil
	if cap(b.undoBuf) > 1<<20 || cap(b.logical) > 1<<20 {
		return // a rare big transaction: let it go
	}
	clear(b.undo)
	clear(b.onCommit)
	clear(b.onAbort)
	b.undo, b.undoBuf, b.spans, b.logical, b.nLogical = b.undo[:0], b.undoBuf[:0], b.spans[:0], b.logical[:0], 0
	b.onCommit, b.onAbort = b.onCommit[:0], b.onAbort[:0]
	bufPool.Put(b)
}

// Reader reads the heap as this transaction has changed it so far.
func (tx *Tx) Reader() Reader { return Reader{tx.h.mem} }

// Err is the first error of the transaction; a Tx with an error can only
// be aborted.
func (tx *Tx) Err() error { return tx.err }

// prepare checks a change of [off, off+n) with a record body growing by at
// most grow, saves undo bytes and marks the range dirty and touched.
func (tx *Tx) prepare(off, n uint64, grow int) ([]byte, error) {
	if tx.done {
		return nil, ErrTxDone
	}
	if tx.err != nil {
		return nil, tx.err
	}
	dst, err := span(tx.h.mem, off, n)
	if err != nil {
		tx.err = err
		return nil, err
	}
	if tx.size+grow > tx.limit {
		tx.err = fmt.Errorf("%w: more than %d bytes of changes in one transaction", wal.ErrRecordTooLarge, tx.limit)
		return nil, tx.err
	}
	tx.size += grow
	tx.actions++
	b := tx.bufs
	start := len(b.undoBuf)
	b.undoBuf = append(b.undoBuf, dst...)
	b.undo = append(b.undo, undo{off: off, old: b.undoBuf[start:len(b.undoBuf):len(b.undoBuf)]})
	h := tx.h
	h.markDirtyLocked(off, n)
	if n > 0 {
		for p := off / PageSize; p <= (off+n-1)/PageSize; p++ {
			if pg := &h.pages[p]; pg.mark != h.txSeq {
				pg.mark = h.txSeq
				tx.touched = append(tx.touched, uint32(p))
			}
		}
	}
	return dst, nil
}

// copied prepares a change of [off, off+n) logged as a copy of its bytes.
func (tx *Tx) copied(off, n uint64) ([]byte, error) {
	dst, err := tx.prepare(off, n, wal.CopySize(int(n)))
	if err != nil {
		return nil, err
	}
	if n > 0 {
		b := tx.bufs
		if k := len(b.spans); k > 0 && b.spans[k-1].off <= off+n && off <= b.spans[k-1].end {
			// Overlapping or next to the last range (a node's header,
			// then its slots): one range.
			b.spans[k-1] = copyRange{off: min(off, b.spans[k-1].off), end: max(off+n, b.spans[k-1].end)}
		} else {
			b.spans = append(b.spans, copyRange{off: off, end: off + n})
		}
	}
	return dst, nil
}

// logical prepares a change of [off, off+n) logged as its own action.
func (tx *Tx) logical(off, n uint64, t wal.ActionType, an uint32, aoff, arg uint64) ([]byte, error) {
	dst, err := tx.prepare(off, n, wal.EntrySize)
	if err != nil {
		return nil, err
	}
	b := tx.bufs
	b.logical = append(b.logical, make([]byte, wal.EntrySize)...)
	wal.PutEntry(b.logical[len(b.logical)-wal.EntrySize:], t, an, aoff, arg)
	b.nLogical++
	return dst, nil
}

// Write copies p to the heap at off.
func (tx *Tx) Write(off uint64, p []byte) error {
	dst, err := tx.copied(off, uint64(len(p)))
	if err != nil {
		return err
	}
	copy(dst, p)
	return nil
}

// PutUint64 stores v little-endian at off.
func (tx *Tx) PutUint64(off uint64, v uint64) error {
	dst, err := tx.copied(off, 8)
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint64(dst, v)
	return nil
}

// PutUint32 stores v little-endian at off.
func (tx *Tx) PutUint32(off uint64, v uint32) error {
	dst, err := tx.copied(off, 4)
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint32(dst, v)
	return nil
}

// Memset fills n bytes at off with c.
func (tx *Tx) Memset(off uint64, n uint32, c byte) error {
	var dst []byte
	var err error
	if n > logicalMin {
		dst, err = tx.logical(off, uint64(n), wal.ActSet, n, off, uint64(c))
	} else {
		dst, err = tx.copied(off, uint64(n))
	}
	if err != nil {
		return err
	}
	for i := range dst {
		dst[i] = c
	}
	return nil
}

// SetBits sets bits [bit, bit+n) of the bitmap at off.
func (tx *Tx) SetBits(off, bit uint64, n uint32) error { return tx.bits(off, bit, n, true) }

// ClearBits clears bits [bit, bit+n) of the bitmap at off.
func (tx *Tx) ClearBits(off, bit uint64, n uint32) error { return tx.bits(off, bit, n, false) }

func (tx *Tx) bits(off, bit uint64, n uint32, set bool) error {
	if n == 0 {
		return nil
	}
	first, last := bit/8, (bit+uint64(n)-1)/8
	var dst []byte
	var err error
	if last-first+1 > logicalMin {
		t := wal.ActClearBits
		if set {
			t = wal.ActSetBits
		}
		dst, err = tx.logical(off+first, last-first+1, t, n, off, bit)
	} else {
		dst, err = tx.copied(off+first, last-first+1)
	}
	if err != nil {
		return err
	}
	changeBits(dst, bit%8, uint64(n), set)
	return nil
}

// AddData makes the commit wait for an in-flight data-blob write of n bytes
// at data offset off with checksum crc, and logs the checksum.
func (tx *Tx) AddData(off uint64, n uint32, crc uint32, w wal.DataWait) error {
	if _, err := tx.logical(0, 0, wal.ActDataChecksum, n, off, uint64(crc)); err != nil {
		return err
	}
	tx.data = append(tx.data, w)
	return nil
}

// OnCommit registers fn to run, still inside the critical section, once the
// record is in the log. Allocators use it to update their in-memory indexes.
func (tx *Tx) OnCommit(fn func(wal.ID)) { tx.bufs.onCommit = append(tx.bufs.onCommit, fn) }

// OnAbort registers fn to run when the transaction is abandoned.
func (tx *Tx) OnAbort(fn func()) { tx.bufs.onAbort = append(tx.bufs.onAbort, fn) }

// Empty reports whether the transaction changed nothing.
func (tx *Tx) Empty() bool { return tx.actions == 0 }

// Abort undoes every change and releases the heap.
func (tx *Tx) Abort() {
	if tx.done {
		return
	}
	u := tx.bufs.undo
	for i := len(u) - 1; i >= 0; i-- {
		copy(tx.h.mem[u[i].off:], u[i].old)
	}
	tx.done = true
	for _, fn := range tx.bufs.onAbort {
		fn()
	}
	tx.release()
	tx.h.mu.Unlock()
}

// Result is a committed transaction: its record is in the log, possibly not
// yet durable.
type Result struct {
	*wal.Commit
	// Pages are the heap pages the transaction touched.
	Pages []uint32
}

// Commit appends the record to log (which assigns the ID), marks the touched
// pages with it, runs the commit hooks and releases the heap. On any error
// the transaction is aborted. An empty transaction commits nothing and
// returns a nil Commit.
func (tx *Tx) Commit(log Appender) (Result, error) {
	if tx.done {
		return Result{}, ErrTxDone
	}
	if tx.err != nil {
		err := tx.err
		tx.Abort()
		return Result{}, err
	}
	if tx.Empty() {
		tx.Abort()
		return Result{}, nil
	}
	tx.mergeSpans()
	c, err := log.Append(tx, tx.data)
	if err != nil {
		tx.Abort()
		return Result{}, err
	}
	for _, p := range tx.touched {
		pg := &tx.h.pages[p]
		pg.pending = max(pg.pending, c.ID)
	}
	for _, fn := range tx.bufs.onCommit {
		fn(c.ID)
	}
	tx.done = true
	tx.release()
	tx.h.mu.Unlock()
	return Result{Commit: c, Pages: tx.touched}, nil
}

// mergeSpans sorts the copied ranges and merges those that overlap or lie
// so close that one copy over both (the bytes between included) costs no
// more than two, and sizes the body: never more than the changes' sum.
func (tx *Tx) mergeSpans() {
	b := tx.bufs
	sp := b.spans
	slices.SortFunc(sp, func(x, y copyRange) int { return cmp.Compare(x.off, y.off) })
	out := sp[:0]
	for _, s := range sp {
		if k := len(out); k > 0 && s.off <= out[k-1].end+wal.EntrySize {
			last := out[k-1]
			end := max(last.end, s.end)
			if s.off <= last.end || wal.CopySize(int(end-last.off)) <= wal.CopySize(int(last.end-last.off))+wal.CopySize(int(s.end-s.off)) {
				out[k-1].end = end
				continue
			}
		}
		out = append(out, s)
	}
	b.spans = out
	n := len(b.logical)
	for _, s := range out {
		n += wal.CopySize(int(s.end - s.off))
	}
	tx.merged, tx.bodyLen = len(out), n
}

// Len is the size of the encoded body (after mergeSpans).
func (tx *Tx) Len() int { return tx.bodyLen }

// Count is the number of actions of the body (after mergeSpans).
func (tx *Tx) Count() int { return tx.bufs.nLogical + tx.merged }

// Encode writes the body: the logical actions in order, then a copy of
// the final bytes of every merged range. The log calls it inside Commit,
// under the heap's write lock.
func (tx *Tx) Encode(dst []byte) {
	b := tx.bufs
	p := copy(dst, b.logical)
	for _, s := range b.spans {
		n := int(s.end - s.off)
		wal.PutEntry(dst[p:], wal.ActCopy, uint32(n), s.off, 0)
		p += wal.EntrySize
		p += copy(dst[p:], tx.h.mem[s.off:s.end])
		pad := wal.CopySize(n) - wal.EntrySize - n
		clear(dst[p : p+pad])
		p += pad
	}
}
