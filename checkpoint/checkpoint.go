package checkpoint

import (
	"fmt"
	"sync"
	"time"

	"vosfs/blob"
	"vosfs/umem"
	"vosfs/wal"
)

// Defaults.
const (
	DefaultInterval   = 5 * time.Second
	DefaultDirtyLimit = 64 << 20
	// copyBatch bounds the bytes copied before they are written back.
	copyBatch = 8 << 20
)

// Options tune a Checkpointer.
type Options struct {
	Interval   time.Duration // timer trigger (default 5 s)
	DirtyLimit uint64        // dirty heap bytes that trigger a checkpoint (default 64 MiB)
	// OnError is called when a checkpoint fails; the pool goes fail-stop.
	OnError func(error)
}

// Stats are the checkpointer's counters.
type Stats struct {
	Checkpoints  uint64
	BytesWritten uint64
	LastDuration time.Duration
	TotalTime    time.Duration
	LastID       wal.ID
}

// Checkpointer writes the heap back to the metadata blob.
type Checkpointer struct {
	heap    *umem.Heap
	log     *wal.Log
	meta    blob.File
	heapOff int64 // offset of the heap image in the metadata blob
	opts    Options

	runMu sync.Mutex // one checkpoint at a time

	mu    sync.Mutex
	stats Stats // guarded by mu

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

// New returns a checkpointer of heap into meta at heapOff, for log.
func New(heap *umem.Heap, log *wal.Log, meta blob.File, heapOff int64, opts Options) *Checkpointer {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.DirtyLimit == 0 {
		opts.DirtyLimit = DefaultDirtyLimit
	}
	return &Checkpointer{heap: heap, log: log, meta: meta, heapOff: heapOff, opts: opts,
		kick: make(chan struct{}, 1)}
}

// Start runs the background loop until Stop.
func (c *Checkpointer) Start() {
	c.stop, c.done = make(chan struct{}), make(chan struct{})
	go c.loop()
}

// Kick asks for a checkpoint soon; it never blocks.
func (c *Checkpointer) Kick() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Stop ends the background loop (it does not checkpoint: call Run).
func (c *Checkpointer) Stop() {
	if c.stop == nil {
		return
	}
	close(c.stop)
	<-c.done
	c.stop = nil
}

func (c *Checkpointer) loop() {
	defer close(c.done)
	poll := min(c.opts.Interval, 100*time.Millisecond)
	tick := time.NewTicker(poll)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-c.stop:
			return
		case <-c.kick:
		case <-tick.C:
			if time.Since(last) < c.opts.Interval && c.heap.DirtyBytes() < c.opts.DirtyLimit {
				continue
			}
		}
		last = time.Now()
		if c.log.Err() != nil {
			continue
		}
		_ = c.Run() // a failure has been reported through OnError

	}
}

// Run performs one checkpoint now and returns when the new checkpointed ID
// is durable in the log header. A failure is also reported to OnError: the
// metadata blob may be half-written, so the pool must stop.
func (c *Checkpointer) Run() error {
	err := c.run()
	if err != nil && c.opts.OnError != nil {
		c.opts.OnError(err)
	}
	return err
}

func (c *Checkpointer) run() error {
	c.runMu.Lock()
	defer c.runMu.Unlock()
	start := time.Now()
	target := c.log.Durable()
	n, err := WriteBack(c.heap, c.meta, c.heapOff, c.log.WaitDurable)
	if err != nil {
		return err
	}
	if target > c.log.Header().Checkpoint {
		if err := c.log.SetCheckpoint(target); err != nil {
			return err
		}
	}
	d := time.Since(start)
	c.mu.Lock()
	c.stats.Checkpoints++
	c.stats.BytesWritten += n
	c.stats.LastDuration = d
	c.stats.TotalTime += d
	c.stats.LastID = target
	c.mu.Unlock()
	return nil
}

// WriteBack copies every dirty chunk of heap, waits (with waitDurable) until
// each copied page's changes are durable, writes the chunks to meta and
// syncs it. It returns the bytes written. Used by Run and by recovery.
func WriteBack(heap *umem.Heap, meta blob.File, heapOff int64, waitDurable func(wal.ID) error) (uint64, error) {
	var written uint64
	for from := 0; from >= 0; {
		runs, pending, next := heap.CopyDirty(from, copyBatch)
		if len(runs) > 0 {
			if pending > 0 && waitDurable != nil {
				if err := waitDurable(pending + 1); err != nil {
					heap.Redirty(runs)
					return written, err
				}
			}
			for _, r := range runs {
				if _, err := meta.WriteAt(r.Data, heapOff+int64(r.Off)); err != nil {
					heap.Redirty(runs)
					return written, fmt.Errorf("checkpoint: %w", err)
				}
				written += uint64(len(r.Data))
			}
		}
		from = next
	}
	if err := meta.Sync(); err != nil {
		return written, fmt.Errorf("checkpoint: %w", err)
	}
	return written, nil
}

// Stats returns the counters.
func (c *Checkpointer) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}
