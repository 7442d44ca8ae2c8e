package wal

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"vosfs/blob"
)

var (
	// ErrFailed is wrapped by every error after a failed log or data write or
	// sync: the log is fail-stop and acknowledges nothing more until reopened.
	ErrFailed = errors.New("wal: log failed")
	// ErrClosed is returned by appends after Close.
	ErrClosed = errors.New("wal: log closed")
	// ErrLogFull is returned by Append when the ring has no room for the
	// record; callers wait with WaitSpace first and retry.
	ErrLogFull = errors.New("wal: log full")
	// ErrCorrupt is wrapped when replay finds a damaged record below the
	// durable ID recorded in the header.
	ErrCorrupt = errors.New("wal: log corrupted")
)

// DataWait is an in-flight data-blob write that a record depends on.
type DataWait interface {
	// Wait blocks until the write has completed and returns its error.
	Wait() error
}

// Options tune a Log.
type Options struct {
	// DataSync makes the data blob durable; the committer calls it before it
	// writes a batch that carries data writes, so a record never becomes
	// durable before the data it points at.
	DataSync func() error
	// Kick is called without blocking when a writer is throttled or the log
	// fill passes HighWater: it wakes the checkpointer.
	Kick func()
	// HighWater is the log fill fraction that calls Kick (default 0.5).
	HighWater float64
}

// Stats are the log's counters.
type Stats struct {
	Records        uint64        // transaction records appended
	RecordBytes    uint64        // ring bytes of those records, heads included, padding not
	Batches        uint64        // group-commit batches written
	BytesWritten   uint64        // ring bytes written, padding included
	Syncs          uint64        // fdatasync calls on the log blob
	ThrottleEvents uint64        // times a writer waited for log space
	ThrottleWait   time.Duration // total time writers waited for log space
	Next           ID            // position of the next record
	Durable        ID            // durable ID
	Checkpoint     ID            // checkpointed ID
	RingSize       uint64
}

// Fill is the fraction of the ring in use.
func (s Stats) Fill() float64 {
	if s.RingSize == 0 {
		return 0
	}
	return float64(s.Next-s.Checkpoint) / float64(s.RingSize)
}

// batch is a group of records written with one write and one sync.
type batch struct {
	start ID
	end   ID     // set when sealed
	buf   []byte // the records; buf[i] is at log position start+i
	data  []DataWait
	done  chan struct{} // closed when durable or failed
	err   error         // set before done is closed
}

// Commit is the handle of an appended record.
type Commit struct {
	ID ID
	b  *batch
}

// Wait blocks until the record and every record before it are durable, or
// returns the failure that prevents it. It does not take a context: a commit
// is never abandoned half-way.
func (c *Commit) Wait() error {
	<-c.b.done
	return c.b.err
}

// Done is closed when Wait would return.
func (c *Commit) Done() <-chan struct{} { return c.b.done }

// Log is an open write-ahead log.
type Log struct {
	f     blob.File
	ring  uint64
	limit uint64
	need  uint64 // free bytes that guarantee any record fits
	batch uint64 // batch limit (batchLimit of the ring)
	opts  Options
	// clean is the header's FlagClean with both header slots valid, as
	// Open read them: replay has nothing to look for past the checkpoint.
	clean bool

	hdrMu sync.Mutex
	hdr   Header // guarded by hdrMu

	mu        sync.Mutex
	work      *sync.Cond    // on mu: signals the committer
	next      ID            // guarded by mu
	open      *batch        // guarded by mu: batch taking records, nil if none
	sealed    []*batch      // guarded by mu: full batches waiting for the committer, oldest first
	last      *batch        // guarded by mu: newest batch holding records
	spare     [][]byte      // guarded by mu: written batches' buffers, for reuse
	durable   ID            // guarded by mu
	ckpt      ID            // guarded by mu
	gen       uint32        // guarded by mu
	failed    error         // guarded by mu
	seenGen   uint32        // guarded by mu: newest generation Replay saw in an intact record
	started   bool          // guarded by mu
	closing   bool          // guarded by mu
	spaceCh   chan struct{} // guarded by mu: closed and replaced when space frees
	stats     Stats         // guarded by mu
	kicked    bool          // guarded by mu: Kick sent for the current fill episode
	committer chan struct{} // closed when the committer goroutine exits
}

// Create formats f as an empty log with a ring of ringSize bytes. progress,
// if not nil, is called with the bytes written so far while the ring is
// zeroed (zeroing allocates the blocks so that later syncs write no metadata).
func Create(f blob.File, poolUUID [16]byte, ringSize uint64, recordLimit uint32, progress func(done, total uint64)) error {
	h := Header{Seq: 1, PoolUUID: poolUUID, BlobSize: RingOffset + ringSize, RingSize: ringSize,
		RecordLimit: recordLimit, Flags: FlagClean, Gen: 1, Checkpoint: ID(ringSize)}
	if err := h.validate(); err != nil {
		return err
	}
	if err := f.Truncate(int64(h.BlobSize)); err != nil {
		return err
	}
	zero := make([]byte, 1<<20)
	for off := uint64(0); off < ringSize; off += uint64(len(zero)) {
		n := min(uint64(len(zero)), ringSize-off)
		if _, err := f.WriteAt(zero[:n], int64(RingOffset+off)); err != nil {
			return err
		}
		if progress != nil {
			progress(off+n, ringSize)
		}
	}
	// The header goes to the slot of its sequence number (1), as every
	// later header does, so the first update (seq 2) writes the other slot
	// and a crash tearing it leaves this one. The other slot is zeroed so
	// that a foreign header there cannot be taken.
	slot := int64(h.Seq%headerSlots) * blockSize
	if _, err := f.WriteAt(make([]byte, blockSize), blockSize-slot); err != nil {
		return err
	}
	if _, err := f.WriteAt(h.Encode(), slot); err != nil {
		return err
	}
	return f.Sync()
}

// Open reads the header of the log in f. The log is ready for Replay and
// then Start; it accepts no record before Start.
func Open(f blob.File, opts Options) (*Log, error) {
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	if size < RingOffset {
		return nil, fmt.Errorf("%w: %s is %d bytes, too short for a log", ErrBadHeader, f.Name(), size)
	}
	buf := make([]byte, RingOffset)
	if _, err := f.ReadAt(buf, 0); err != nil {
		return nil, err
	}
	var best *Header
	var errs []error
	for slot := 0; slot < headerSlots; slot++ {
		h, err := DecodeHeader(buf[slot*blockSize : (slot+1)*blockSize])
		if err != nil {
			errs = append(errs, fmt.Errorf("slot %d: %w", slot, err))
			continue
		}
		if best == nil || h.Seq > best.Seq {
			best = &h
		}
	}
	if best == nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), errors.Join(errs...))
	}
	if uint64(size) != best.BlobSize {
		return nil, fmt.Errorf("%w: %s is %d bytes, header says %d (truncated?)", ErrBadHeader, f.Name(), size, best.BlobSize)
	}
	if opts.HighWater <= 0 || opts.HighWater >= 1 {
		opts.HighWater = 0.5
	}
	l := &Log{f: f, ring: best.RingSize, limit: uint64(best.RecordLimit), opts: opts, hdr: *best,
		ckpt: best.Checkpoint, next: best.Checkpoint, durable: best.Checkpoint,
		spaceCh: make(chan struct{}), committer: make(chan struct{})}
	l.need = 2*l.limit + blockSize
	l.batch = batchLimit(l.ring)
	l.clean = best.Flags&FlagClean != 0 && len(errs) == 0
	l.work = sync.NewCond(&l.mu)
	l.stats.RingSize = l.ring
	return l, nil
}

// Header returns the header as last read or written.
func (l *Log) Header() Header {
	l.hdrMu.Lock()
	defer l.hdrMu.Unlock()
	return l.hdr
}

// RecordLimit is the largest record the log accepts, head included.
func (l *Log) RecordLimit() int { return int(l.limit) }

// writeHeaderLocked writes h to the slot not holding the current header and
// syncs. l.hdrMu must be held.
func (l *Log) writeHeaderLocked(h Header) error {
	h.Seq = l.hdr.Seq + 1
	off := int64(h.Seq%headerSlots) * blockSize
	if _, err := l.f.WriteAt(h.Encode(), off); err != nil {
		return err
	}
	if err := l.f.Sync(); err != nil {
		return err
	}
	l.hdr = h
	return nil
}

// Start opens the log for appends after replay. ckpt is the new checkpointed
// ID: the caller has made every record below it durable in the metadata
// blob. Start bumps the generation, so records an earlier run left past the
// replayed end can never be replayed.
func (l *Log) Start(ckpt ID) error {
	if uint64(ckpt)%blockSize != 0 || ckpt < l.Header().Checkpoint {
		return fmt.Errorf("wal: start at %d: not a block boundary at or after the checkpoint", ckpt)
	}
	l.mu.Lock()
	seen := l.seenGen
	l.mu.Unlock()
	l.hdrMu.Lock()
	h := l.hdr
	// Above any generation seen in the ring (a record newer than the
	// header is only started past by a repair), so that no record an
	// earlier run left can ever be taken as one of this run.
	if d := int32(seen - uint32(h.Gen)); d > 0 {
		h.Gen += uint64(d)
	}
	h.Gen++
	h.Checkpoint, h.Durable = ckpt, ckpt
	h.Flags &^= FlagClean
	err := l.writeHeaderLocked(h)
	l.hdrMu.Unlock()
	if err != nil {
		return l.fail(fmt.Errorf("start: %w", err))
	}
	l.mu.Lock()
	l.gen = uint32(h.Gen)
	l.next, l.durable, l.ckpt, l.started = ckpt, ckpt, ckpt, true
	l.mu.Unlock()
	go l.commitLoop()
	return nil
}

// Fail makes the log fail-stop with err (an I/O error elsewhere in the
// pool): nothing not yet durable is acknowledged, nothing more is appended.
func (l *Log) Fail(err error) error { return l.fail(err) }

// fail makes the log fail-stop with err and returns the wrapped error.
func (l *Log) fail(err error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failLocked(err)
}

func (l *Log) failLocked(err error) error {
	if l.failed == nil {
		l.failed = err
		if !errors.Is(err, ErrFailed) {
			l.failed = fmt.Errorf("%w: %s: %w", ErrFailed, l.f.Name(), err)
		}
		close(l.spaceCh)
		l.spaceCh = make(chan struct{})
	}
	return l.failed
}

// Err returns the failure that stopped the log, or nil.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed
}

func (l *Log) freeLocked() uint64 { return uint64(l.ckpt) + l.ring - uint64(l.next) }

// WaitSpace blocks, cancellable by ctx, until the ring has room for a record
// of the record limit, kicking the checkpointer while it waits. It never
// fails for lack of space. Callers that append from several goroutines
// serialize WaitSpace and Append (the pool's writer turn is FIFO).
func (l *Log) WaitSpace(ctx context.Context) error {
	l.mu.Lock()
	var start time.Time
	for {
		if err := l.usableLocked(); err != nil {
			l.mu.Unlock()
			return err
		}
		if l.freeLocked() >= l.need {
			if !start.IsZero() {
				l.stats.ThrottleWait += time.Since(start)
			}
			l.mu.Unlock()
			return nil
		}
		if start.IsZero() {
			start = time.Now()
			l.stats.ThrottleEvents++
		}
		ch := l.spaceCh
		l.mu.Unlock()
		if l.opts.Kick != nil {
			l.opts.Kick()
		}
		select {
		case <-ch:
		case <-ctx.Done():
			l.mu.Lock()
			l.stats.ThrottleWait += time.Since(start)
			l.mu.Unlock()
			return ctx.Err()
		}
		l.mu.Lock()
	}
}

func (l *Log) usableLocked() error {
	switch {
	case l.failed != nil:
		return l.failed
	case l.closing:
		return ErrClosed
	case !l.started:
		return fmt.Errorf("wal: append before Start")
	}
	return nil
}

// Append adds a record holding body to the open batch and returns its
// handle; the record's ID is its position. It must be called inside the
// caller's critical section that applied the changes, so that ID order is
// apply order. data are the data-blob writes the record points at; the
// committer awaits them before the record is written.
func (l *Log) Append(body Encoder, data []DataWait) (*Commit, error) {
	size := RecordSize(body.Len())
	if size > l.limit {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrRecordTooLarge, size, l.limit)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked(); err != nil {
		return nil, err
	}
	pos := uint64(l.next)
	wrap := l.wrapAt(pos, size)
	if b := l.open; b != nil && uint64(len(b.buf))+wrap+size > l.batch {
		// The open batch is full: it goes to the committer as it is and
		// this record starts the next one, so that no batch (the most a
		// crash can tear) spans more than the batch limit of records.
		l.sealOpenLocked()
		pos = uint64(l.next)
		wrap = l.wrapAt(pos, size)
	}
	if pos+wrap+size+blockSize > uint64(l.ckpt)+l.ring {
		return nil, ErrLogFull
	}
	b := l.open
	if b == nil {
		b = &batch{start: l.next, done: make(chan struct{})}
		if n := len(l.spare); n > 0 {
			b.buf, l.spare = l.spare[n-1], l.spare[:n-1]
		}
		l.open, l.last = b, b
		l.work.Signal()
	}
	if wrap > 0 {
		b.buf = grow(b.buf, wrap)
		encodePad(b.buf[len(b.buf)-int(wrap):], ID(pos), l.gen, wrap)
		pos += wrap
	}
	b.buf = grow(b.buf, size)
	encodeRecordFrom(b.buf[len(b.buf)-int(size):], ID(pos), l.gen, body)
	b.data = append(b.data, data...)
	l.next = ID(pos + size)
	l.stats.Records++
	l.stats.RecordBytes += size
	if l.opts.Kick != nil && !l.kicked && float64(uint64(l.next-l.ckpt))/float64(l.ring) > l.opts.HighWater {
		l.kicked = true
		go l.opts.Kick()
	}
	return &Commit{ID: ID(pos), b: b}, nil
}

// wrapAt is the pad a record of size bytes at pos needs first so that it
// does not cross the end of the ring.
func (l *Log) wrapAt(pos, size uint64) uint64 {
	if off := pos % l.ring; off+size > l.ring {
		return l.ring - off
	}
	return 0
}

// sealOpenLocked pads the open batch to a block boundary, so the next batch
// starts on a fresh block, and queues it for the committer. Append reserved
// the room for the pad. l.mu must be held and l.open not nil.
func (l *Log) sealOpenLocked() {
	b := l.open
	end := alignUp(uint64(l.next), blockSize)
	if pad := end - uint64(l.next); pad > 0 {
		b.buf = grow(b.buf, pad)
		encodePad(b.buf[len(b.buf)-int(pad):], l.next, l.gen, pad)
	}
	l.next, b.end = ID(end), ID(end)
	l.open = nil
	l.sealed = append(l.sealed, b)
}

// grow extends b by n bytes. Batch buffers are aligned for direct I/O, so
// the blob writes them without a bounce copy.
func grow(b []byte, n uint64) []byte {
	if uint64(cap(b)-len(b)) < n {
		size := alignUp(uint64(2*cap(b))+n+blockSize, blockSize)
		nb := blob.AlignedBuffer(int(size))[:len(b)]
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+int(n)]
}

// Batch buffers kept for reuse: at most maxSpare, of at most
// maxSpareBytes each.
const (
	maxSpare      = 4
	maxSpareBytes = 4 << 20
)

// commitLoop is the group committer.
func (l *Log) commitLoop() {
	defer close(l.committer)
	for {
		l.mu.Lock()
		for l.open == nil && len(l.sealed) == 0 && !l.closing {
			l.work.Wait()
		}
		if len(l.sealed) == 0 {
			if l.open == nil {
				l.mu.Unlock()
				return
			}
			l.sealOpenLocked()
		}
		b := l.sealed[0]
		l.sealed[0] = nil
		l.sealed = l.sealed[1:]
		err := l.failed
		l.mu.Unlock()

		if err == nil {
			err = l.writeBatch(b)
		}

		l.mu.Lock()
		if err != nil {
			b.err = l.failLocked(err)
		} else {
			l.durable = b.end
			l.stats.Batches++
			l.stats.Syncs++
			l.stats.BytesWritten += uint64(len(b.buf))
		}
		if len(l.spare) < maxSpare && cap(b.buf) <= maxSpareBytes {
			l.spare = append(l.spare, b.buf[:0])
		}
		b.buf = nil
		close(b.done)
		l.mu.Unlock()
	}
}

// writeBatch waits for the batch's data writes, makes the data blob durable,
// then writes and syncs the batch.
func (l *Log) writeBatch(b *batch) error {
	for _, d := range b.data {
		if err := d.Wait(); err != nil {
			return fmt.Errorf("data write: %w", err)
		}
	}
	if len(b.data) > 0 && l.opts.DataSync != nil {
		if err := l.opts.DataSync(); err != nil {
			return fmt.Errorf("data sync: %w", err)
		}
	}
	buf := b.buf
	pos := uint64(b.start)
	for len(buf) > 0 {
		off := pos % l.ring
		n := min(uint64(len(buf)), l.ring-off)
		if _, err := l.f.WriteAt(buf[:n], int64(RingOffset+off)); err != nil {
			return err
		}
		buf, pos = buf[n:], pos+n
	}
	return l.f.Sync()
}

// Flush waits until every record appended so far is durable.
func (l *Log) Flush() error {
	l.mu.Lock()
	b := l.last
	l.mu.Unlock()
	if b == nil {
		return l.Err()
	}
	<-b.done
	return b.err
}

// Next is the position the next record will take; every record below it has
// been applied by its caller's critical section.
func (l *Log) Next() ID {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.next
}

// Durable is the durable ID.
func (l *Log) Durable() ID {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.durable
}

// WaitDurable blocks until the durable ID reaches id or the log fails.
func (l *Log) WaitDurable(id ID) error {
	for {
		l.mu.Lock()
		if l.durable >= id {
			l.mu.Unlock()
			return nil
		}
		if l.failed != nil {
			err := l.failed
			l.mu.Unlock()
			return err
		}
		b := l.last
		l.mu.Unlock()
		if b == nil {
			return fmt.Errorf("wal: wait for %d beyond the log end", id)
		}
		<-b.done
	}
}

// SetCheckpoint records ckpt as the checkpointed ID, durably, and then frees
// the ring space below it. The caller has synced the metadata blob with every
// change of the records below ckpt, and those records are durable.
func (l *Log) SetCheckpoint(ckpt ID) error {
	l.mu.Lock()
	if l.failed != nil {
		defer l.mu.Unlock()
		return l.failed
	}
	if ckpt > l.durable || ckpt < l.ckpt {
		defer l.mu.Unlock()
		return fmt.Errorf("wal: checkpoint %d outside [%d, durable %d]", ckpt, l.ckpt, l.durable)
	}
	durable := l.durable
	l.mu.Unlock()

	l.hdrMu.Lock()
	h := l.hdr
	h.Checkpoint, h.Durable = ckpt, durable
	err := l.writeHeaderLocked(h)
	l.hdrMu.Unlock()
	if err != nil {
		return l.fail(fmt.Errorf("checkpoint header: %w", err))
	}

	l.mu.Lock()
	l.ckpt = ckpt
	l.kicked = false
	close(l.spaceCh)
	l.spaceCh = make(chan struct{})
	l.mu.Unlock()
	return nil
}

// Stats returns the counters.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.stats
	s.Next, s.Durable, s.Checkpoint = l.next, l.durable, l.ckpt
	return s
}

// Close stops the committer after the last batch is written. It does not
// mark the log clean: the caller checkpoints, then calls MarkClean.
func (l *Log) Close() error {
	l.mu.Lock()
	started := l.started
	l.closing = true
	l.work.Broadcast()
	l.mu.Unlock()
	if started {
		<-l.committer
	}
	return l.Err()
}

// MarkClean records, after Close and a final checkpoint at the log end, that
// nothing is left to replay.
func (l *Log) MarkClean() error {
	l.mu.Lock()
	if l.failed != nil || l.ckpt != l.next {
		defer l.mu.Unlock()
		return fmt.Errorf("wal: cannot mark clean: failed=%v, checkpoint %d, end %d", l.failed, l.ckpt, l.next)
	}
	l.mu.Unlock()
	l.hdrMu.Lock()
	defer l.hdrMu.Unlock()
	h := l.hdr
	h.Flags |= FlagClean
	if err := l.writeHeaderLocked(h); err != nil {
		return l.fail(fmt.Errorf("clean header: %w", err))
	}
	return nil
}
