package fs

import (
	"context"
	"errors"
	"strings"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"vosfs/vos"
)

// node is an inode of the live filesystem: its object ID; everything else
// is read from the store.
type node struct {
	gofs.Inode
	fs  *FS
	oid uint64

	hintMu sync.Mutex
	hint   vos.Hint // guarded by hintMu (and the allocator): sequential placement of this file's data

	// snap, for a node inside a snapshot, is the snapshot's view: the
	// node reads through it and refuses every change.
	snap *vos.View

	lastMu  sync.Mutex
	last    attrs // guarded by lastMu: the attributes last reported
	hasLast bool  // guarded by lastMu
}

// remember keeps the attributes last reported: once the inode is gone, its
// descriptors (an open directory, a FIFO, a working directory) still get
// them from fstat, with no links.
func (n *node) remember(a attrs) {
	n.lastMu.Lock()
	n.last, n.hasLast = a, true
	n.lastMu.Unlock()
}

// removed returns the attributes of a node whose inode is gone.
func (n *node) removed() (attrs, bool) {
	n.lastMu.Lock()
	defer n.lastMu.Unlock()
	a := n.last
	a.nlink = 0
	return a, n.hasLast
}

// view runs fn on the node's view: its snapshot's, or the latest state.
func (n *node) view(fn func(v *vos.View) error) syscall.Errno {
	if n.snap != nil {
		return n.fs.toErrno(fn(n.snap))
	}
	return n.fs.view(fn)
}

// update is FS.update for a node of the live tree; snapshots are
// read-only.
func (n *node) update(ctx context.Context, onPred func(*vos.PredicateResult) syscall.Errno, fn func(tx *vos.Tx) error) syscall.Errno {
	if n.snap != nil {
		return syscall.EROFS
	}
	return n.fs.update(ctx, onPred, fn)
}

// updateDir is update for a change of directory n's entries: durable
// before it returns also under commit=async when the mount is dirsync.
func (n *node) updateDir(ctx context.Context, onPred func(*vos.PredicateResult) syscall.Errno, fn func(tx *vos.Tx) error) syscall.Errno {
	if n.snap != nil {
		return syscall.EROFS
	}
	return n.fs.updateAsync(ctx, n.fs.opts.Commit == CommitAsync && !n.fs.opts.DirSync, onPred, fn)
}

// ino is the inode number the node reports: its object ID, made distinct
// inside a snapshot.
func (n *node) ino() uint64 { return n.inoOf(n.oid) }

// inoOf is the inode number of object oid seen from n's tree.
func (n *node) inoOf(oid uint64) uint64 {
	if n.snap == nil {
		return oid
	}
	return snapIno(n.snap.Epoch(), oid)
}

// snapIno is the inode number of object oid in the snapshot at epoch.
func snapIno(epoch, oid uint64) uint64 {
	return 1<<59 | (epoch&0x7ffffff)<<32 | oid&0xffffffff
}

var (
	_ = (gofs.NodeGetattrer)((*node)(nil))
	_ = (gofs.NodeSetattrer)((*node)(nil))
	_ = (gofs.NodeStatfser)((*node)(nil))
	_ = (gofs.NodeGetxattrer)((*node)(nil))
	_ = (gofs.NodeSetxattrer)((*node)(nil))
	_ = (gofs.NodeListxattrer)((*node)(nil))
	_ = (gofs.NodeRemovexattrer)((*node)(nil))
	_ = (gofs.NodeReadlinker)((*node)(nil))
)

// update runs fn as one transaction: retried on conflicts, never cancelled
// half-way by the request's context, durable before it returns unless the
// mount is commit=async. A failed predicate becomes onPred's errno.
func (f *FS) update(ctx context.Context, onPred func(*vos.PredicateResult) syscall.Errno, fn func(tx *vos.Tx) error) syscall.Errno {
	return f.updateAsync(ctx, f.opts.Commit == CommitAsync, onPred, fn)
}

// updateAsync is update replying before the transaction is durable if
// async.
func (f *FS) updateAsync(ctx context.Context, async bool, onPred func(*vos.PredicateResult) syscall.Errno, fn func(tx *vos.Tx) error) syscall.Errno {
	if f.readOnly() {
		return syscall.EROFS
	}
	freeing := false
	res, err := f.s.Update(context.WithoutCancel(ctx), vos.UpdateOptions{Retries: opRetries, Async: async}, func(tx *vos.Tx) error {
		err := fn(tx)
		freeing = tx.Freeing()
		return err
	})
	if errors.Is(err, vos.ErrPredicate) && onPred != nil && res.Failed != nil {
		return onPred(res.Failed)
	}
	if err != nil {
		return f.toErrno(err)
	}
	if freeing {
		f.kickAggregation() // what it freed is reusable once aggregated
	}
	f.count(func(s *Stats) { s.Ops++ })
	return 0
}

// accessed updates the access time of n after a read the way relatime
// does: when it is not after the last modification and change, or is a day
// old (with strictatime: always). t are the times the read saw. The update does not wait to be
// durable, and is dropped if the inode is gone by then.
func (n *node) accessed(t times) {
	if n.snap != nil || n.fs.readOnly() || n.fs.opts.NoAtime {
		return
	}
	now := time.Now().UnixNano()
	if !n.fs.opts.StrictAtime && t.atime > t.mtime && t.atime > t.ctime && now-t.atime < int64(24*time.Hour) {
		return
	}
	_, err := n.fs.s.Update(context.Background(), vos.UpdateOptions{Retries: opRetries, Async: true}, func(tx *vos.Tx) error {
		if err := tx.Predicate(vos.Predicate{Path: attrPath(n.oid), Kind: vos.Exists}); err != nil {
			return err
		}
		return touch(tx, n.oid, times{atime: now})
	})
	if err != nil && !errors.Is(err, vos.ErrPredicate) {
		_ = n.fs.toErrno(err) // counted and logged; the read itself succeeded
		return
	}
	// The kernel keeps the attributes it has until they time out: a
	// stat right after the read must show the new access time.
	n.attrsChanged()
}

// view runs fn on a view of the latest state.
func (f *FS) view(fn func(v *vos.View) error) syscall.Errno {
	v := f.s.Latest()
	defer v.Close()
	return f.toErrno(fn(v))
}

func now() times {
	ns := time.Now().UnixNano()
	return times{ns, ns, ns}
}

func nowMC() times {
	ns := time.Now().UnixNano()
	return times{mtime: ns, ctime: ns}
}

func nowC() times { return times{ctime: time.Now().UnixNano()} }

// caller is the uid and gid of the process behind a request.
func caller(ctx context.Context) (uint32, uint32) {
	if c, ok := fuse.FromContext(ctx); ok {
		return c.Uid, c.Gid
	}
	return 0, 0
}

func (n *node) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	var a attrs
	errno := n.view(func(v *vos.View) error {
		var err error
		a, err = loadAttrs(v, n.oid)
		return err
	})
	switch errno {
	case 0:
		n.remember(a)
	case syscall.ENOENT:
		// The kernel asks about a removed inode only for what still
		// holds it.
		if r, ok := n.removed(); ok {
			a, errno = r, 0
		}
	}
	if errno != 0 {
		return errno
	}
	a.fill(n.ino(), n.fs.blksize(), &out.Attr)
	return 0
}

func (n *node) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	var a attrs
	errno := n.update(ctx, nil, func(tx *vos.Tx) error {
		var err error
		if a, err = loadAttrs(tx, n.oid); err != nil {
			return err
		}
		t := time.Now().UnixNano()
		// With the writeback cache the kernel sends the change time it
		// stamped (its coarse clock): that is "now" for the times set
		// to now too, so that they agree with it.
		if ctime, ok := in.GetCTime(); ok {
			t = ctime.UnixNano()
		}
		changed := false
		if mode, ok := in.GetMode(); ok {
			a.mode = a.mode&syscall.S_IFMT | mode&^syscall.S_IFMT
			changed = true
		}
		uid, uok := in.GetUID()
		gid, gok := in.GetGID()
		if uok || gok {
			if uok {
				a.uid = uid
			}
			if gok {
				a.gid = gid
			}
			// A change of owner drops set-user-ID and set-group-ID
			// from files that are not directories.
			if !a.isDir() {
				a.mode &^= privBits(a.mode)
			}
			changed = true
		}
		// A truncate by a caller without CAP_FSETID drops them too; the
		// kernel says so (it leaves it to us: HANDLE_KILLPRIV_V2).
		if _, ok := in.GetSize(); ok && in.Valid&fuse.FATTR_KILL_SUIDGID != 0 && !a.isDir() {
			if k := privBits(a.mode); k != 0 {
				a.mode &^= k
				changed = true
			}
		}
		if changed {
			if err := tx.Put(attrPath(n.oid), a.inode.encode()); err != nil {
				return err
			}
		}
		if size, ok := in.GetSize(); ok {
			if a.isDir() {
				return syscall.EISDIR
			}
			if size > MaxFileSize {
				return syscall.EFBIG
			}
			if size < a.size {
				tx.UseDeletionReserve() // a truncate works on a full pool
				if err := tx.PunchArray(dataPath(n.oid), size, vos.MaxArrayOffset); err != nil {
					return err
				}
			}
			if err := tx.Put(sizePath(n.oid), u64(size)); err != nil {
				return err
			}
			a.size = size
			a.mtime = t
			changed = true
		}
		// UTIME_NOW is the same now as the change time's.
		atime, aok := in.GetATime()
		mtime, mok := in.GetMTime()
		if aok {
			a.atime = atime.UnixNano()
			if in.Valid&fuse.FATTR_ATIME_NOW != 0 {
				a.atime = t
			}
		}
		if mok {
			a.mtime = mtime.UnixNano()
			if in.Valid&fuse.FATTR_MTIME_NOW != 0 {
				a.mtime = t
			}
		}
		if aok || mok || changed {
			a.ctime = t // the kernel's, when it sent one
			return tx.Put(timesPath(n.oid), a.times.encode())
		}
		return nil
	})
	if errno == syscall.ENOENT && in.Valid&^timesOnly == 0 {
		// With the writeback cache the kernel writes back the change
		// time it sets at unlink, rename and link (a setattr of times
		// alone), also when that unlink or rename removed the inode:
		// there is nothing left to keep it in. Failing would fail the
		// next fsync or syncfs of the mount.
		r, ok := n.removed()
		if !ok {
			r.mode = n.StableAttr().Mode
		}
		r.fill(n.ino(), n.fs.blksize(), &out.Attr)
		return 0
	}
	if errno != 0 {
		return errno
	}
	return n.Getattr(ctx, fh, out)
}

// timesOnly are the setattr fields of a change of times and nothing else.
const timesOnly = fuse.FATTR_ATIME | fuse.FATTR_MTIME | fuse.FATTR_CTIME |
	fuse.FATTR_ATIME_NOW | fuse.FATTR_MTIME_NOW | fuse.FATTR_FH | fuse.FATTR_LOCKOWNER

func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	st := n.fs.p.Stats()
	out.Bsize = 4096
	out.Frsize = 4096
	out.Blocks = st.Data.Blocks
	out.Bfree = st.Data.Free + st.Data.Aging
	out.Bavail = out.Bfree
	// Files in use are the inodes (df -i); the free ones are what the
	// heap's free space holds at inodeCost each.
	used, err := n.fs.inodeCount()
	if err != nil {
		// A read-only mount of a pool from before the count was kept.
		v := n.fs.s.Latest()
		used, err = countInodes(v)
		v.Close()
		if err != nil {
			return n.fs.toErrno(err)
		}
	}
	out.Ffree = st.Heap.Free / inodeCost
	out.Files = used + out.Ffree
	out.NameLen = MaxNameLen
	return 0
}

func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	var target []byte
	var t times
	errno := n.view(func(v *vos.View) error {
		b, ok, err := v.Get(linkPath(n.oid))
		if err == nil && !ok {
			err = syscall.EINVAL
		}
		target = b
		if err == nil {
			t, err = loadTimes(v, n.oid)
		}
		return err
	})
	if errno == 0 {
		n.accessed(t)
	}
	return target, errno
}

// Extended attributes, kept in the inode's xattr companion object.

// xattrNamespaces are the namespaces an extended attribute's name may
// start with; "system." is left to the kernel (its ACLs are not ours).
var xattrNamespaces = []string{"user.", "trusted.", "security."}

// checkXattrName is the errno Linux gives for a name it does not take: too
// long, a known namespace with nothing after it, or an unknown namespace.
func checkXattrName(attr string) syscall.Errno {
	if len(attr) > MaxXattrName {
		return syscall.ERANGE
	}
	for _, ns := range xattrNamespaces {
		if strings.HasPrefix(attr, ns) {
			if len(attr) == len(ns) {
				return syscall.EINVAL
			}
			return 0
		}
	}
	return syscall.EOPNOTSUPP
}

func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if errno := checkXattrName(attr); errno != 0 {
		return 0, errno
	}
	var val []byte
	if errno := n.view(func(v *vos.View) error {
		b, ok, err := v.Get(xattrPath(n.oid, attr))
		if err == nil && !ok {
			err = syscall.ENODATA
		}
		val = b
		return err
	}); errno != 0 {
		return 0, errno
	}
	if len(dest) == 0 {
		return uint32(len(val)), 0
	}
	if len(dest) < len(val) {
		return uint32(len(val)), syscall.ERANGE
	}
	return uint32(copy(dest, val)), 0
}

func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	if errno := checkXattrName(attr); errno != 0 {
		return errno
	}
	switch {
	case len(data) > MaxXattrValue:
		return syscall.E2BIG
	case flags&^uint32(xattrCreate|xattrReplace) != 0 || flags == xattrCreate|xattrReplace:
		return syscall.EINVAL
	}
	p := xattrPath(n.oid, attr)
	return n.update(ctx, func(pr *vos.PredicateResult) syscall.Errno {
		if pr.Index == 0 && flags&xattrCreate != 0 {
			return syscall.EEXIST
		}
		if pr.Index == 0 && flags&xattrReplace != 0 {
			return syscall.ENODATA
		}
		return syscall.ENOENT
	}, func(tx *vos.Tx) error {
		switch {
		case flags&xattrCreate != 0:
			if err := tx.Predicate(vos.Predicate{Path: p, Kind: vos.Absent}); err != nil {
				return err
			}
		case flags&xattrReplace != 0:
			if err := tx.Predicate(vos.Predicate{Path: p, Kind: vos.Exists}); err != nil {
				return err
			}
		}
		if err := tx.Predicate(vos.Predicate{Path: attrPath(n.oid), Kind: vos.Exists}); err != nil {
			return err
		}
		if err := tx.Put(p, data); err != nil {
			return err
		}
		return touch(tx, n.oid, nowC())
	})
}

// Flags of setxattr(2).
const (
	xattrCreate  = 1
	xattrReplace = 2
)

func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	var list []byte
	if errno := n.view(func(v *vos.View) error {
		return v.ListDkeys(n.oid|xattrBit, nil, false, 0, func(k []byte) bool {
			list = append(append(list, k...), 0)
			return true
		})
	}); errno != 0 {
		return 0, errno
	}
	if len(dest) == 0 {
		return uint32(len(list)), 0
	}
	if len(dest) < len(list) {
		return uint32(len(list)), syscall.ERANGE
	}
	return uint32(copy(dest, list)), 0
}

func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	if errno := checkXattrName(attr); errno != 0 {
		return errno
	}
	p := xattrPath(n.oid, attr)
	return n.update(ctx, func(*vos.PredicateResult) syscall.Errno { return syscall.ENODATA }, func(tx *vos.Tx) error {
		if err := tx.Predicate(vos.Predicate{Path: p, Kind: vos.Exists}); err != nil {
			return err
		}
		if err := tx.PunchDkey(n.oid|xattrBit, []byte(attr)); err != nil {
			return err
		}
		return touch(tx, n.oid, nowC())
	})
}
