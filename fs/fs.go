package fs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"vosfs/pool"
	"vosfs/vos"
)

// RootOID is the object of the root directory.
const RootOID = 1

// Object ID layout: an inode's companions share its ID with a high bit set.
const (
	entriesBit = 1 << 63 // the directory's entries
	xattrBit   = 1 << 62 // the inode's extended attributes
	orphanOID  = 1<<61 | 1
)

// Limits.
const (
	// MaxNameLen is the longest file name (a dkey).
	MaxNameLen = vos.MaxDkeyLen
	// MaxSymlinkLen is the longest symlink target.
	MaxSymlinkLen = 4095
	// MaxXattrName is the longest extended attribute name.
	MaxXattrName = vos.MaxDkeyLen
	// MaxXattrValue is the largest extended attribute value.
	MaxXattrValue = 64 << 10
	// MaxFileSize is the largest file.
	MaxFileSize = 1 << 50
	// opRetries bounds how often an operation is run again after a
	// conflict aborted it.
	opRetries = 64
)

// FS is a mounted (or mountable) vosfs filesystem.
type FS struct {
	p    *pool.Pool
	s    *vos.Store
	opts Options
	root *node

	roMu   sync.Mutex  // serializes SetReadOnly
	ro     atomic.Bool // read-only now: Options.ReadOnly, then remounts
	reaped bool        // guarded by roMu: the orphans of a crash were reaped

	snapOnce sync.Once
	snaps    *snapDir

	aggMu   sync.Mutex         // one aggregation at a time, and none during Check
	stopAgg context.CancelFunc // stops aggregateLoop, between rounds of a pass
	aggDone chan struct{}      // closed when it stopped
	aggKick chan struct{}      // (capacity 1) asks aggregateLoop for a pass soon

	// stopped is set by the shutdown ioctl: from then on every request
	// gets EIO (gate.go), as after a fail-stop of the pool.
	stopped atomic.Bool

	mu       sync.Mutex
	open     map[uint64]int // guarded by mu: open file handles per inode
	removing map[uint64]int // guarded by mu: inodes transactions are removing (see openHandle)
	removed  *sync.Cond     // on mu: signalled when removals end
	stats    Stats          // guarded by mu
}

// Stats are the filesystem's counters, with its store's and pool's.
type Stats struct {
	Ops    uint64 // modifying operations committed
	Errors uint64 // operations refused with an error
	Store  vos.Stats
	Pool   pool.Stats
}

// New opens the filesystem on an open pool, creating the root directory on
// first use and removing files left orphaned (unlinked while open) by a
// crash.
func New(p *pool.Pool, opts Options) (*FS, error) {
	if opts.MaxWrite == 0 {
		opts.MaxWrite = 1 << 20
	}
	// The filesystem runs the store's aggregation itself (aggregateLoop),
	// so that Check can keep it out; a read-only mount changes nothing.
	vo := vos.Options{Threshold: opts.Threshold, AggregateInterval: -1}
	if opts.Logger != nil {
		vo.Logf = opts.Logger.Printf // the store's lines (damaged bytes) go where the filesystem's go
	}
	if opts.ReadOnly {
		vo.FoldChain = -1
	}
	s, err := vos.Open(p, vo)
	if err != nil {
		return nil, err
	}
	if err := s.RegisterMerge(mergeTimesID, mergeTimes, foldTimes); err != nil {
		return nil, err
	}
	if err := s.RegisterMerge(mergeMaxID, mergeMax, foldMax); err != nil {
		return nil, err
	}
	f := &FS{p: p, s: s, opts: opts, open: map[uint64]int{}, removing: map[uint64]int{}, aggKick: make(chan struct{}, 1)}
	f.removed = sync.NewCond(&f.mu)
	ctx := context.Background()
	if err := f.format(ctx); err != nil {
		s.Close()
		return nil, err
	}
	f.ro.Store(opts.ReadOnly)
	if !opts.ReadOnly {
		if err := f.ensureInodeCount(ctx); err != nil {
			s.Close()
			return nil, err
		}
		if err := f.reapOrphans(ctx); err != nil {
			s.Close()
			return nil, err
		}
		f.reaped = true
	}
	f.root = &node{fs: f, oid: RootOID}
	aggCtx, cancel := context.WithCancel(context.Background())
	f.stopAgg, f.aggDone = cancel, make(chan struct{})
	go f.aggregateLoop(aggCtx)
	return f, nil
}

// aggregateInterval is how often old versions are aggregated in the
// background.
const aggregateInterval = 5 * time.Second

// kickDelay is how long after a deletion (kickAggregation) the pass it
// asks for starts, so that a burst of deletions (rm -r) shares one pass.
// A pass asked for this way also waits as long as the last pass took, so
// that passes asked for by deletions take at most half the time.
const kickDelay = 100 * time.Millisecond

// kickAggregation asks aggregateLoop for a pass soon: a deletion, a
// truncate or a punched hole freed space that only aggregation gives back
// to the allocators (and to statfs), and the deletion reserve it may have
// used is refilled by it.
func (f *FS) kickAggregation() {
	select {
	case f.aggKick <- struct{}{}:
	default: // a pass is asked for already
	}
}

// aggregateLoop runs a pass of aggregation every aggregateInterval until
// ctx is cancelled (Close cancels a pass between its rounds rather than
// waiting for it). The first pass starts at once rather than an interval
// after the mount: a daemon that is killed or unmounted sooner than every
// interval (a crash loop, a script mounting for each command) would
// otherwise never aggregate, and its pool would fill with versions nobody
// can see. A deletion asks for a pass sooner (kickAggregation).
func (f *FS) aggregateLoop(ctx context.Context) {
	defer close(f.aggDone)
	t := time.NewTicker(aggregateInterval)
	defer t.Stop()
	for {
		start := time.Now()
		if f.p.Err() == nil && !f.readOnly() {
			_, _ = f.aggregate(ctx)
		}
		took := time.Since(start)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-f.aggKick:
			select {
			case <-ctx.Done():
				return
			case <-time.After(max(kickDelay, took)):
			}
		}
	}
}

// aggregate runs a pass of the store's aggregation, never during Check:
// the store's checker reads the tree and the allocators' bitmaps one after
// the other, and frees in between look like corruption.
func (f *FS) aggregate(ctx context.Context) (int, error) {
	f.aggMu.Lock()
	defer f.aggMu.Unlock()
	return f.s.Aggregate(ctx)
}

// format creates the root directory of a new filesystem.
func (f *FS) format(ctx context.Context) error {
	v := f.s.Latest()
	_, ok, err := v.Get(attrPath(RootOID))
	v.Close()
	if err != nil || ok {
		return err
	}
	now := time.Now()
	_, err = f.s.Update(ctx, vos.UpdateOptions{}, func(tx *vos.Tx) error {
		if err := tx.Put(inodeCountPath(), u64(1)); err != nil {
			return err
		}
		return putInode(tx, RootOID, inode{mode: syscall.S_IFDIR | 0o755, uid: uint32(os.Getuid()), gid: uint32(os.Getgid()),
			parent: RootOID}, 2, now)
	})
	return err
}

// Store is the object store under the filesystem.
func (f *FS) Store() *vos.Store { return f.s }

// Pool is the pool under the filesystem.
func (f *FS) Pool() *pool.Pool { return f.p }

// Close stops the background work; the caller closes the pool.
func (f *FS) Close() error {
	if f.stopAgg != nil {
		f.stopAgg()
		<-f.aggDone
		f.stopAgg = nil
	}
	if f.snaps != nil {
		f.snaps.closeViews()
	}
	return f.s.Close()
}

// Stats returns the counters.
func (f *FS) Stats() Stats {
	f.mu.Lock()
	st := f.stats
	f.mu.Unlock()
	st.Store = f.s.Stats()
	st.Pool = f.p.Stats()
	return st
}

// Mount mounts the filesystem at mountpoint and serves it until unmounted
// (the returned server's Wait). As root it mounts directly, otherwise
// through fusermount3.
func (f *FS) Mount(mountpoint string) (*fuse.Server, error) {
	entry, attr, neg := f.opts.EntryTimeout, f.opts.AttrTimeout, time.Duration(0)
	mo, err := f.fuseMountOptions()
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	if f.opts.WritebackCache {
		mo.ExtraCapabilities |= fuse.CAP_WRITEBACK_CACHE
	}
	// The filesystem drops set-user-ID and set-group-ID itself on write,
	// truncate and chown (Write, Setattr), so the kernel need not ask for
	// security.capability before every write: one GETXATTR round trip
	// less per write (4 KiB writes: +20%).
	mo.ExtraCapabilities |= fuse.CAP_HANDLE_KILLPRIV_V2
	// A file opened with O_DIRECT is served without the page cache
	// (FOPEN_DIRECT_IO), and may still be mapped as on a local
	// filesystem: the kernel then keeps the mapping's pages coherent
	// with the direct reads and writes (kernels before 6.6 refuse the
	// mmap with ENODEV).
	mo.ExtraCapabilities |= fuse.CAP_DIRECT_IO_ALLOW_MMAP
	// Handles (name_to_handle_at) stay valid while their inode exists,
	// across mounts: see node_handle.go.
	mo.ExtraCapabilities |= fuse.CAP_EXPORT_SUPPORT
	if f.opts.Logger != nil {
		mo.Logger = f.opts.Logger
	}
	gopts := &gofs.Options{
		MountOptions:    mo,
		EntryTimeout:    &entry,
		AttrTimeout:     &attr,
		NegativeTimeout: &neg,
		NullPermissions: true,
		RootStableAttr:  &gofs.StableAttr{Ino: RootOID, Mode: syscall.S_IFDIR, Gen: f.generation()},
		// Node IDs are object IDs, the same from one mount to the next.
		ExternalNodeID: true,
		Logger:         f.opts.Logger,
	}
	// The gate refuses every request once the filesystem stopped; the
	// allow_root check, when on, comes before it.
	var raw fuse.RawFileSystem = &gate{RawFileSystem: gofs.NewNodeFS(f.root, gopts), f: f}
	if f.opts.AllowRoot {
		raw = &allowRootFS{RawFileSystem: raw, owner: uint32(os.Geteuid())}
	}
	srv, err := fuse.NewServer(raw, mountpoint, &gopts.MountOptions)
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	go srv.Serve()
	if err := srv.WaitMount(); err != nil {
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	return srv, nil
}

var errReadOnly = errors.New("read-only filesystem")
