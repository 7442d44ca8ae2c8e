package umem

import (
	"encoding/binary"
	"errors"
	"fmt"

	"vosfs/wal"
)

// ErrTxDone is returned by a Tx used after Commit or Abort.
var ErrTxDone = errors.New("umem: transaction already ended")

// Appender takes a transaction's record into the log: *wal.Log.
type Appender interface {
	Append(body *wal.Body, data []wal.DataWait) (*wal.Commit, error)
}

type undo struct {
	off uint64
	old []byte // aliases Tx.undoBuf
}

// Tx is one heap transaction: it holds the heap's write lock from Begin to
// Commit or Abort, and applies changes in place while recording them.
type Tx struct {
	h        *Heap
	limit    int // largest record body
	body     wal.Body
	undo     []undo
	undoBuf  []byte
	touched  []uint32
	data     []wal.DataWait
	onCommit []func(wal.ID)
	onAbort  []func()
	err      error
	done     bool
}

// Begin starts a transaction whose record may hold at most limit bytes
// (head included). It blocks until the previous transaction has ended.
func (h *Heap) Begin(limit int) *Tx {
	h.mu.Lock()
	h.txSeq++
	return &Tx{h: h, limit: limit - int(wal.RecordSize(0))}
}

// Reader reads the heap as this transaction has changed it so far.
func (tx *Tx) Reader() Reader { return Reader{tx.h.mem} }

// Err is the first error of the transaction; a Tx with an error can only
// be aborted.
func (tx *Tx) Err() error { return tx.err }

// prepare checks a change of [off, off+n) with a record body growing by
// grow, saves undo bytes and marks the range dirty and touched.
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
	if tx.body.Len()+grow > tx.limit {
		tx.err = fmt.Errorf("%w: more than %d bytes of changes in one transaction", wal.ErrRecordTooLarge, tx.limit)
		return nil, tx.err
	}
	start := len(tx.undoBuf)
	tx.undoBuf = append(tx.undoBuf, dst...)
	tx.undo = append(tx.undo, undo{off: off, old: tx.undoBuf[start:len(tx.undoBuf):len(tx.undoBuf)]})
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

// Write copies p to the heap at off (a copy action carrying p).
func (tx *Tx) Write(off uint64, p []byte) error {
	dst, err := tx.prepare(off, uint64(len(p)), 24+len(p)+8)
	if err != nil {
		return err
	}
	copy(dst, p)
	tx.body.Copy(off, p)
	return nil
}

// PutUint64 stores v little-endian at off (an assign action).
func (tx *Tx) PutUint64(off uint64, v uint64) error {
	dst, err := tx.prepare(off, 8, 24)
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint64(dst, v)
	tx.body.Assign(off, 8, v)
	return nil
}

// PutUint32 stores v little-endian at off (an assign action).
func (tx *Tx) PutUint32(off uint64, v uint32) error {
	dst, err := tx.prepare(off, 4, 24)
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint32(dst, v)
	tx.body.Assign(off, 4, uint64(v))
	return nil
}

// Memset fills n bytes at off with c.
func (tx *Tx) Memset(off uint64, n uint32, c byte) error {
	dst, err := tx.prepare(off, uint64(n), 24)
	if err != nil {
		return err
	}
	for i := range dst {
		dst[i] = c
	}
	tx.body.Set(off, n, c)
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
	dst, err := tx.prepare(off+first, last-first+1, 24)
	if err != nil {
		return err
	}
	changeBits(dst, bit%8, uint64(n), set)
	if set {
		tx.body.SetBits(off, bit, n)
	} else {
		tx.body.ClearBits(off, bit, n)
	}
	return nil
}

// AddData makes the commit wait for an in-flight data-blob write of n bytes
// at data offset off with checksum crc, and logs the checksum.
func (tx *Tx) AddData(off uint64, n uint32, crc uint32, w wal.DataWait) error {
	if _, err := tx.prepare(0, 0, 24); err != nil {
		return err
	}
	tx.body.DataChecksum(off, n, crc)
	tx.data = append(tx.data, w)
	return nil
}

// OnCommit registers fn to run, still inside the critical section, once the
// record is in the log. Allocators use it to update their in-memory indexes.
func (tx *Tx) OnCommit(fn func(wal.ID)) { tx.onCommit = append(tx.onCommit, fn) }

// OnAbort registers fn to run when the transaction is abandoned.
func (tx *Tx) OnAbort(fn func()) { tx.onAbort = append(tx.onAbort, fn) }

// Empty reports whether the transaction changed nothing.
func (tx *Tx) Empty() bool { return tx.body.Count() == 0 }

// Abort undoes every change and releases the heap.
func (tx *Tx) Abort() {
	if tx.done {
		return
	}
	for i := len(tx.undo) - 1; i >= 0; i-- {
		u := tx.undo[i]
		copy(tx.h.mem[u.off:], u.old)
	}
	tx.done = true
	for _, fn := range tx.onAbort {
		fn()
	}
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
	c, err := log.Append(&tx.body, tx.data)
	if err != nil {
		tx.Abort()
		return Result{}, err
	}
	for _, p := range tx.touched {
		pg := &tx.h.pages[p]
		pg.pending = max(pg.pending, c.ID)
	}
	for _, fn := range tx.onCommit {
		fn(c.ID)
	}
	tx.done = true
	tx.h.mu.Unlock()
	return Result{Commit: c, Pages: tx.touched}, nil
}
