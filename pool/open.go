package pool

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"vosfs/alloc"
	"vosfs/blob"
	"vosfs/checkpoint"
	"vosfs/umem"
	"vosfs/wal"
)

// Default limits of an open pool.
const (
	// DefaultQueueDepth bounds the data-blob writes in flight.
	DefaultQueueDepth = 64
)

// Options tune an open pool.
type Options struct {
	CheckpointInterval time.Duration // default 5 s
	DirtyLimit         uint64        // dirty heap bytes that trigger a checkpoint
	HighWater          float64       // log fill that triggers a checkpoint (default 0.5)
	QueueDepth         int           // data writes in flight (default 64)
	// Progress, if set, is told what recovery is doing: stage is "load" or
	// "replay", done and total in bytes (total 0 when unknown).
	Progress func(stage string, done, total uint64)
	// Logf, if not nil, receives the pool's log lines (the failure that
	// stops it, once); else the standard logger does.
	Logf func(format string, args ...any)
	// RepairLog truncates a damaged log at the damage instead of refusing
	// to open (ErrCorrupt): what the log holds after it is dropped, and
	// Recovery.Repaired says exactly what. Never set it by default: it
	// loses acknowledged operations, and is for an explicit repair.
	RepairLog bool
}

// Recovery describes what Open found.
type Recovery struct {
	Clean    bool   // the pool was closed cleanly
	Records  uint64 // log records replayed
	Bytes    uint64 // log bytes replayed
	Duration time.Duration
	// Repaired, with Options.RepairLog, is the damage the log was
	// truncated at; nil if there was none.
	Repaired *wal.Damage
}

// ErrFailed is wrapped by every error of a pool that stopped after an I/O
// error (or a shutdown): it refuses every operation until reopened.
var ErrFailed = wal.ErrFailed

// ErrCorrupt is wrapped (with a *wal.CorruptError saying where and what a
// repair drops) when recovery finds the log damaged: acknowledged
// operations after the damage would be lost, so the pool does not open
// unless Options.RepairLog asks to truncate the log there.
var ErrCorrupt = wal.ErrCorrupt

// ErrClosed is returned by operations on a closed pool.
var ErrClosed = errors.New("pool closed")

// Pool is an open pool.
type Pool struct {
	dir      string
	lock     io.Closer
	walf     blob.File
	metaf    blob.File
	dataf    blob.File
	uuid     [16]byte
	layout   Layout
	heap     *umem.Heap
	log      *wal.Log
	ckpt     *checkpoint.Checkpointer
	heapA    *alloc.Heap
	vea      *alloc.VEA
	recovery Recovery
	opts     Options

	// failure is set once, by the first failed write or sync of a blob
	// (or Shutdown); read without a lock at the entry of every operation.
	failure atomic.Pointer[failedError]
	// gate: blob mutations hold it for reading, stop sets failure holding
	// it for writing.
	gate sync.RWMutex

	turn    chan struct{} // the writer turn: FIFO, held from WaitSpace to Append
	closing chan struct{} // closed by Close once it holds the turn for good
	dataSem chan struct{} // bounds data writes in flight

	mu     sync.Mutex
	closed bool  // guarded by mu
	stats  Stats // guarded by mu
}

// Open opens and recovers the pool in dir.
func Open(fsys blob.FS, dir string, opts Options) (_ *Pool, err error) {
	start := time.Now()
	lock, err := fsys.Lock(filepath.Join(dir, LockFile))
	if err != nil {
		return nil, fmt.Errorf("pool %s: %w", dir, err)
	}
	p := &Pool{dir: dir, lock: lock, opts: opts}
	defer func() {
		if err != nil {
			if p.log != nil {
				p.log.Close()
			}
			p.closeFiles()
		}
	}()
	if opts.QueueDepth <= 0 {
		opts.QueueDepth = DefaultQueueDepth
	}
	p.turn = make(chan struct{}, 1)
	p.closing = make(chan struct{})
	p.dataSem = make(chan struct{}, opts.QueueDepth)

	if p.walf, err = openBlob(fsys, dir, WALFile); err != nil {
		return nil, err
	}
	p.walf = p.guard(p.walf)
	var ck *checkpoint.Checkpointer
	p.log, err = wal.Open(p.walf, wal.Options{
		DataSync:  func() error { return p.dataf.Sync() },
		Kick:      func() { ck.Kick() },
		HighWater: opts.HighWater,
	})
	if err != nil {
		return nil, fmt.Errorf("pool %s: %w", dir, err)
	}
	hdr := p.log.Header()
	p.uuid = hdr.PoolUUID
	p.recovery.Clean = hdr.Flags&wal.FlagClean != 0

	var mh, dh blobHeader
	if p.metaf, mh, err = openStaticBlob(fsys, dir, MetaFile, metaMagic, p.uuid); err != nil {
		return nil, err
	}
	if p.dataf, dh, err = openStaticBlob(fsys, dir, DataFile, dataMagic, p.uuid); err != nil {
		return nil, err
	}
	p.metaf, p.dataf = p.guard(p.metaf), p.guard(p.dataf)
	if mh.units != mh.size-HeapOffset || dh.units != (dh.size-DataOffset)/BlockSize {
		return nil, fmt.Errorf("%w: %s: blob headers disagree with their sizes", ErrBadPool, dir)
	}

	p.heap = umem.New(mh.units)
	var loadProgress func(done, total uint64)
	if opts.Progress != nil {
		loadProgress = func(done, total uint64) { opts.Progress("load", done, total) }
	}
	if err := p.heap.Load(p.metaf, HeapOffset, loadProgress); err != nil {
		return nil, fmt.Errorf("%s: %w", p.metaf.Name(), err)
	}
	if err := p.heap.View(func(r umem.Reader) error {
		b, err := r.Bytes(0, superLen)
		if err != nil {
			return err
		}
		p.layout, err = decodeSuper(b)
		return err
	}); err != nil {
		return nil, fmt.Errorf("%s: %w", p.metaf.Name(), err)
	}
	if p.layout.HeapSize != mh.units || p.layout.DataBlocks != dh.units {
		return nil, fmt.Errorf("%w: %s: heap superblock disagrees with the blob headers", ErrBadPool, p.metaf.Name())
	}

	// Replay, write the replayed changes back, start a new generation.
	var replayProgress func(uint64)
	if opts.Progress != nil {
		replayProgress = func(done uint64) { opts.Progress("replay", done, 0) }
	}
	end, err := p.log.Replay(func(rec *wal.Record) error {
		p.recovery.Records++
		return p.heap.Apply(rec)
	}, replayProgress)
	if err != nil {
		d, damaged := wal.AsDamage(err)
		if !damaged || !opts.RepairLog {
			return nil, fmt.Errorf("pool %s: recovery: %w", dir, err)
		}
		// The repair: the log restarts at the damage (in a generation
		// above any it holds), which drops everything after it.
		p.recovery.Repaired = d
	}
	p.recovery.Bytes = uint64(end - hdr.Checkpoint)
	if p.recovery.Records > 0 {
		if _, err := checkpoint.WriteBack(p.heap, p.metaf, HeapOffset, nil); err != nil {
			return nil, fmt.Errorf("pool %s: recovery: %w", dir, err)
		}
	}
	if err := p.log.Start(wal.ID(alignUp(uint64(end), BlockSize))); err != nil {
		return nil, fmt.Errorf("pool %s: %w", dir, err)
	}

	if p.heapA, err = alloc.NewHeap(p.heap, p.layout.HeapBitmap, p.layout.ArenaOffset, p.layout.ArenaSize); err != nil {
		return nil, fmt.Errorf("pool %s: %w", dir, err)
	}
	p.heapA.SetDeletionReserve(DeletionReserve(p.layout.ArenaSize), DeletionReserveChunk)
	if p.vea, err = alloc.NewVEA(p.heap, p.layout.DataBitmap, p.layout.DataBlocks, p.log.Durable); err != nil {
		return nil, fmt.Errorf("pool %s: %w", dir, err)
	}
	ck = checkpoint.New(p.heap, p.log, p.metaf, HeapOffset, checkpoint.Options{
		Interval:   opts.CheckpointInterval,
		DirtyLimit: opts.DirtyLimit,
		OnError:    func(err error) { p.stopOn("checkpoint", err) },
	})
	p.ckpt = ck
	ck.Start()
	p.recovery.Duration = time.Since(start)
	return p, nil
}

func openBlob(fsys blob.FS, dir, name string) (blob.File, error) {
	f, err := fsys.Open(filepath.Join(dir, name))
	if err != nil {
		return nil, fmt.Errorf("pool %s: %w", dir, err)
	}
	return f, nil
}

// openStaticBlob opens a metadata or data blob and checks its header.
func openStaticBlob(fsys blob.FS, dir, name, magic string, uuid [16]byte) (blob.File, blobHeader, error) {
	f, err := openBlob(fsys, dir, name)
	if err != nil {
		return nil, blobHeader{}, err
	}
	h, err := readStaticHeader(f, magic, uuid)
	if err != nil {
		f.Close()
		return nil, h, err
	}
	return f, h, nil
}

func readStaticHeader(f blob.File, magic string, uuid [16]byte) (blobHeader, error) {
	size, err := f.Size()
	if err != nil {
		return blobHeader{}, err
	}
	if size < BlockSize {
		return blobHeader{}, fmt.Errorf("%w: %s is %d bytes, too short for a header", ErrBadPool, f.Name(), size)
	}
	b := make([]byte, BlockSize)
	if _, err := f.ReadAt(b, 0); err != nil {
		return blobHeader{}, err
	}
	h, err := decodeBlobHeader(b, magic)
	if err != nil {
		return h, fmt.Errorf("%s: %w", f.Name(), err)
	}
	if h.uuid != uuid {
		return h, fmt.Errorf("%w: %s belongs to pool %x, the log to pool %x", ErrBadPool, f.Name(), h.uuid, uuid)
	}
	if uint64(size) != h.size {
		return h, fmt.Errorf("%w: %s is %d bytes, its header says %d (truncated?)", ErrBadPool, f.Name(), size, h.size)
	}
	return h, nil
}

func (p *Pool) closeFiles() {
	for _, f := range []blob.File{p.walf, p.metaf, p.dataf} {
		if f != nil {
			f.Close()
		}
	}
	if p.lock != nil {
		p.lock.Close()
	}
}

// Recovery says what Open found and did.
func (p *Pool) Recovery() Recovery { return p.recovery }

// Layout is the heap layout.
func (p *Pool) Layout() Layout { return p.layout }

// Dir is the pool directory.
func (p *Pool) Dir() string { return p.dir }

// HeapAlloc is the heap allocator.
func (p *Pool) HeapAlloc() *alloc.Heap { return p.heapA }

// Extents is the data-blob extent allocator.
func (p *Pool) Extents() *alloc.VEA { return p.vea }

// Heap is the metadata heap (for reads: View).
func (p *Pool) Heap() *umem.Heap { return p.heap }

// Checkpoint runs a checkpoint now.
func (p *Pool) Checkpoint() error {
	if err := p.Failed(); err != nil {
		return err
	}
	return p.failedOr(p.ckpt.Run())
}

// failedOr returns the pool's failure if it has failed, else err: an
// operation that failed because the pool stopped under it reports why.
func (p *Pool) failedOr(err error) error {
	if err == nil {
		return nil
	}
	if f := p.Failed(); f != nil {
		return f
	}
	return err
}

// Close flushes the log, checkpoints and marks the pool clean. A failed pool
// is closed without being marked clean and Close returns the failure.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	p.closed = true
	p.mu.Unlock()
	p.turn <- struct{}{} // no transaction in its critical section from here on
	close(p.closing)
	defer p.closeFiles()
	p.ckpt.Stop()
	err := p.log.Close()
	if err == nil {
		err = p.ckpt.Run()
	}
	if err == nil {
		err = p.log.MarkClean()
	}
	return p.failedOr(err)
}
