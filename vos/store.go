package vos

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"vosfs/pool"
	"vosfs/umem"
	"vosfs/vos/btree"
)

// Root area layout (in the pool's root area).
const (
	rootTree    = pool.RootOffset      // the tree's root pointer
	rootEpoch   = pool.RootOffset + 8  // epoch of the last committed transaction
	rootNextOID = pool.RootOffset + 16 // next object ID handed out by NewOID
	rootMagic   = pool.RootOffset + 24 // storeMagic once formatted

	storeMagic = 0x31534f56 // "VOS1"
	blockSize  = pool.BlockSize
)

// FirstOID is the first object ID NewOID hands out; the IDs below it are
// the layer above's, for its well-known objects (a root directory).
const FirstOID = 1024

// DefaultThreshold is the value size from which values and extents go to
// the data blob rather than the heap. DAOS's is 4 KiB; here 16 KiB,
// measured: 4 KiB writes with an fsync each, through the filesystem on
// ext4, run 1.7x faster inside the log record (one log sync) than as data
// extents (a data-blob write and sync, then the log's), and aggregation
// later migrates the heap runs they leave to the data blob.
const DefaultThreshold = 16 << 10

// Options tune a Store.
type Options struct {
	// Threshold: values and extents of at least this many bytes go to the
	// data blob with direct I/O; smaller ones to the heap.
	Threshold int
	// AggregateInterval is how often background aggregation runs (default
	// 5 s); negative disables it (Aggregate can still be called).
	AggregateInterval time.Duration
	// FoldChain: a read that finds a merge chain of more operands than
	// this has the key aggregated in the background at once, so reads of
	// a value many writers merge into stay short between aggregation
	// passes (default 32; negative: never, as on a read-only pool).
	FoldChain int
	// Logf, if not nil, receives the store's log lines (a damaged value
	// or extent, once per place); else the standard logger does.
	Logf func(format string, args ...any)
}

// DefaultFoldChain is the default of Options.FoldChain.
const DefaultFoldChain = 32

// foldQueue bounds the keys waiting to be folded.
const foldQueue = 256

// Stats are the store's counters.
type Stats struct {
	Commits           uint64
	TreeInserts       uint64 // records put into the tree by commits (versions, extents, punches)
	PredicateFailures uint64
	Conflicts         uint64 // commits that found a read object changed
	Replays           uint64 // conflicts resolved by replaying the reads
	Aborts            uint64 // conflicts whose replay saw different results
	Retries           uint64 // transactions run again after an abort
	Aggregations      uint64
	ChainsFolded      uint64 // keys aggregated on their own because a read found a long merge chain
	VersionsDropped   uint64
	MigratedBytes     uint64 // array bytes aggregation moved from the heap to the data blob
	ChecksumErrors    uint64 // reads refused because stored bytes failed their checksum
}

// Store is an open versioned object store on a pool.
type Store struct {
	p      *pool.Pool
	tree   btree.Tree
	opts   Options
	merges map[string]mergeOp // immutable after Open
	byID   map[uint8]mergeOp

	mu        sync.Mutex
	epoch     uint64             // guarded by mu: last committed epoch
	lastWrite map[uint64]uint64  // guarded by mu: object -> epoch of its last change
	readers   map[uint64]int     // guarded by mu: epoch -> active readers at it
	snapshots map[string]uint64  // guarded by mu: the durable snapshot records
	stats     Stats              // guarded by mu
	badLogged map[[2]uint64]bool // guarded by mu: damaged places already logged (kind, position)
	extents   extentCache        // verified bytes of extents read in part

	// scratch is for applyTx, which runs in the pool's critical section
	// (one at a time): the tree copies the keys and values put.
	scratch struct {
		key []byte
		val [recSize]byte
	}

	oidMu   sync.Mutex
	oidNext uint64 // guarded by oidMu: next ID of the reserved batch
	oidEnd  uint64 // guarded by oidMu: end of the reserved batch

	aggMu   sync.Mutex         // one aggregation at a time
	stop    context.CancelFunc // stops aggregateLoop, between rounds of a pass
	stopped chan struct{}

	foldReq     chan Path     // nil when FoldChain is negative
	foldStop    chan struct{} // closed to stop foldLoop
	foldDone    chan struct{} // closed when foldLoop has stopped
	foldMu      sync.Mutex
	foldPending map[string]bool // guarded by foldMu: keys in foldReq
}

// Open opens the store of pool p, formatting an empty store in a new pool.
func Open(p *pool.Pool, opts Options) (*Store, error) {
	if opts.Threshold <= 0 {
		opts.Threshold = DefaultThreshold
	}
	if opts.AggregateInterval == 0 {
		opts.AggregateInterval = 5 * time.Second
	}
	if opts.FoldChain == 0 {
		opts.FoldChain = DefaultFoldChain
	}
	s := &Store{p: p, tree: btree.Tree{RootPtr: rootTree, ValueSize: recSize}, opts: opts,
		lastWrite: map[uint64]uint64{}, readers: map[uint64]int{}, snapshots: map[string]uint64{}, badLogged: map[[2]uint64]bool{}}
	s.registerBuiltins()
	var magic uint64
	if err := p.View(func(r umem.Reader) error {
		var err error
		magic, err = r.Uint64(rootMagic)
		return err
	}); err != nil {
		return nil, err
	}
	switch magic {
	case 0:
		if _, err := p.Update(context.Background(), func(tx *pool.Tx) error {
			if err := tx.PutUint64(rootNextOID, FirstOID); err != nil {
				return err
			}
			return tx.PutUint64(rootMagic, storeMagic)
		}); err != nil {
			return nil, fmt.Errorf("vos: format: %w", err)
		}
	case storeMagic:
	default:
		return nil, fmt.Errorf("%w: root area holds %#x, not a vos store", pool.ErrBadPool, magic)
	}
	if err := p.View(func(r umem.Reader) error {
		var err error
		if s.epoch, err = r.Uint64(rootEpoch); err != nil {
			return err
		}
		return s.loadSnapshotsLocked(r)
	}); err != nil {
		return nil, err
	}
	if opts.AggregateInterval > 0 {
		ctx, cancel := context.WithCancel(context.Background())
		s.stop, s.stopped = cancel, make(chan struct{})
		go s.aggregateLoop(ctx)
	}
	if opts.FoldChain > 0 {
		s.foldReq, s.foldPending = make(chan Path, foldQueue), map[string]bool{}
		s.foldStop, s.foldDone = make(chan struct{}), make(chan struct{})
		go s.foldLoop()
	}
	return s, nil
}

// Close stops background aggregation. The pool stays open.
func (s *Store) Close() error {
	if s.stop != nil {
		s.stop()
		<-s.stopped
		s.stop = nil
	}
	if s.foldStop != nil {
		close(s.foldStop)
		<-s.foldDone
		s.foldStop = nil
	}
	return nil
}

// Pool is the pool under the store.
func (s *Store) Pool() *pool.Pool { return s.p }

// Failed returns the error that stopped the pool under the store (wrapping
// ErrFailed and its cause), or nil while it runs. It takes no lock, so that
// the layer above can check it at the entry of every operation.
func (s *Store) Failed() error { return s.p.Failed() }

// Epoch is the epoch of the last committed transaction.
func (s *Store) Epoch() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch
}

// Stats returns the counters.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Threshold is the large-value threshold.
func (s *Store) Threshold() int { return s.opts.Threshold }

func (s *Store) count(fn func(*Stats)) {
	s.mu.Lock()
	fn(&s.stats)
	s.mu.Unlock()
}

// pin registers a reader at the current epoch (or at epoch if non-zero) so
// that aggregation keeps what it can see; unpin releases it.
func (s *Store) pin(epoch uint64) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if epoch == 0 {
		epoch = s.epoch
	}
	s.readers[epoch]++
	return epoch
}

func (s *Store) unpin(epoch uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.readers[epoch]--; s.readers[epoch] <= 0 {
		delete(s.readers, epoch)
	}
}

// lowWaterLocked is the oldest epoch any reader or snapshot can see.
func (s *Store) lowWaterLocked() uint64 {
	low := s.epoch
	for e := range s.readers {
		low = min(low, e)
	}
	for _, e := range s.snapshots {
		low = min(low, e)
	}
	return low
}

// oidBatch is how many object IDs NewOID reserves durably at a time.
const oidBatch = 1024

// NewOID hands out a fresh object ID. IDs are reserved durably in batches
// (the counter is in the heap), so they survive crashes and are never
// reused; a crash skips the rest of a batch.
func (s *Store) NewOID(ctx context.Context) (uint64, error) {
	s.oidMu.Lock()
	defer s.oidMu.Unlock()
	if s.oidNext == s.oidEnd {
		var next uint64
		if _, err := s.p.Update(ctx, func(tx *pool.Tx) error {
			var err error
			if next, err = tx.Reader().Uint64(rootNextOID); err != nil {
				return err
			}
			return tx.PutUint64(rootNextOID, next+oidBatch)
		}); err != nil {
			return 0, err
		}
		s.oidNext, s.oidEnd = next, next+oidBatch
	}
	s.oidNext++
	return s.oidNext - 1, nil
}

// errStopped is returned by operations on a closed store.
var errStopped = errors.New("vos: store closed")

func le64(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }
