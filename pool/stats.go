package pool

import (
	"vosfs/alloc"
	"vosfs/checkpoint"
	"vosfs/wal"
)

// Stats are the pool's counters, with those of its parts.
type Stats struct {
	Commits    uint64 // transactions committed (in the log)
	Aborts     uint64 // transactions abandoned
	Log        wal.Stats
	Checkpoint checkpoint.Stats
	Heap       alloc.HeapStats
	Data       alloc.VEAStats
	DirtyBytes uint64
	// WriteErrors counts failed writes, syncs, truncates and punches of
	// the blobs: the first stops the pool, so more than one means others
	// were in flight with it. ReadErrors counts failed blob reads.
	WriteErrors uint64
	ReadErrors  uint64
	// Failure is what stopped the pool, nil while it runs.
	Failure *Failure
}

// Stats returns a snapshot of the counters.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	s := p.stats
	p.mu.Unlock()
	s.Log = p.log.Stats()
	s.Checkpoint = p.ckpt.Stats()
	s.Heap = p.heapA.Stats()
	s.Data = p.vea.Stats()
	s.DirtyBytes = p.heap.DirtyBytes()
	s.Failure = p.Failure()
	return s
}
