package pool

import (
	"context"
	"fmt"

	"vosfs/alloc"
	"vosfs/umem"
	"vosfs/wal"
)

// Tx is a pool transaction inside its critical section: the heap is
// write-locked, changes apply in place and are recorded for the log. It
// embeds the heap transaction (Write, PutUint64, SetBits, Reader, ...).
type Tx struct {
	*umem.Tx
	p       *Pool
	freeing bool // may take the heap's deletion reserve
}

// UseDeletionReserve lets the transaction's heap allocations take the
// deletion reserve (see DeletionReserve): call it in transactions that
// give space back (deletes, truncates, aggregation), never in ones that
// only add.
func (tx *Tx) UseDeletionReserve() { tx.freeing = true }

// Alloc allocates size bytes of heap space in the transaction, leaving the
// deletion reserve unless the transaction may use it.
func (tx *Tx) Alloc(size uint64) (uint64, error) {
	if tx.freeing {
		return tx.p.heapA.AllocFreeing(tx.Tx, size)
	}
	return tx.p.heapA.Alloc(tx.Tx, size)
}

// Free frees heap space in the transaction.
func (tx *Tx) Free(off, size uint64) error { return tx.p.heapA.Free(tx.Tx, off, size) }

// PublishHeap publishes a heap reservation made before the transaction.
func (tx *Tx) PublishHeap(r alloc.HeapRes) error { return tx.p.heapA.Publish(tx.Tx, r) }

// PublishExtents publishes data-blob extents reserved before the
// transaction; if the transaction aborts they are free again.
func (tx *Tx) PublishExtents(exts []alloc.Extent) error { return tx.p.vea.Publish(tx.Tx, exts) }

// FreeExtents frees data-blob extents; they are reused only after this
// transaction is durable.
func (tx *Tx) FreeExtents(exts []alloc.Extent) error { return tx.p.vea.Free(tx.Tx, exts) }

// AddData makes the commit wait for the data write w and logs its checksum.
// Callers wait for w first (vos does, before its critical section);
// otherwise this waits for it.
func (tx *Tx) AddData(w *DataWrite) error {
	return tx.Tx.AddData(w.off, uint32(w.n), w.checksum(), w)
}

// Pending is a transaction applied and in the log, maybe not yet durable.
type Pending struct {
	res umem.Result
	p   *Pool
}

// ID is the transaction ID (0 for a transaction that changed nothing).
func (c *Pending) ID() wal.ID {
	if c.res.Commit == nil {
		return 0
	}
	return c.res.ID
}

// Wait blocks until the transaction and every lower ID are durable.
func (c *Pending) Wait() error {
	if c.res.Commit == nil {
		return nil
	}
	if err := c.res.Wait(); err != nil {
		return c.p.failedOr(err)
	}
	c.p.heap.MarkCommitted(c.res.ID, c.res.Pages)
	return nil
}

// Update runs fn as one transaction and returns once it is durable. If fn
// returns an error, every change is undone and the error returned. ctx
// bounds only the wait for the writer turn and for log space: once applied,
// a commit is waited for to the end.
func (p *Pool) Update(ctx context.Context, fn func(*Tx) error) (wal.ID, error) {
	c, err := p.UpdateAsync(ctx, fn)
	if err != nil {
		return 0, err
	}
	return c.ID(), c.Wait()
}

// UpdateAsync runs fn as one transaction and returns once it is applied and
// in the log, before it is durable: call Wait, or Sync for everything.
func (p *Pool) UpdateAsync(ctx context.Context, fn func(*Tx) error) (*Pending, error) {
	if err := p.Failed(); err != nil {
		return nil, err
	}
	select {
	case p.turn <- struct{}{}:
	case <-p.closing:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-p.turn }()
	if err := p.log.WaitSpace(ctx); err != nil {
		return nil, p.failedOr(err)
	}
	utx := p.heap.Begin(p.log.RecordLimit())
	if err := fn(&Tx{Tx: utx, p: p}); err != nil {
		utx.Abort()
		p.count(func(s *Stats) { s.Aborts++ })
		return nil, err
	}
	res, err := utx.Commit(p.log)
	if err != nil {
		p.count(func(s *Stats) { s.Aborts++ })
		if f := p.Failed(); f != nil {
			return nil, f
		}
		return nil, fmt.Errorf("pool %s: commit: %w", p.dir, err)
	}
	p.count(func(s *Stats) { s.Commits++ })
	return &Pending{res: res, p: p}, nil
}

// Sync waits until every transaction applied so far is durable.
func (p *Pool) Sync() error {
	if err := p.Failed(); err != nil {
		return err
	}
	return p.failedOr(p.log.Flush())
}

// View runs fn with the heap read-locked. A failed pool refuses reads too:
// its heap may hold changes that were applied but never became durable,
// and no reader may see a state that the next mount will not have.
func (p *Pool) View(fn func(umem.Reader) error) error {
	if err := p.Failed(); err != nil {
		return err
	}
	return p.heap.View(fn)
}

func (p *Pool) count(fn func(*Stats)) {
	p.mu.Lock()
	fn(&p.stats)
	p.mu.Unlock()
}
