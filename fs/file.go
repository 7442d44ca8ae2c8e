package fs

import (
	"context"
	"math"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"vosfs/vos"
)

var (
	_ = (gofs.NodeOpener)((*node)(nil))
	_ = (gofs.NodeReader)((*node)(nil))
	_ = (gofs.NodeWriter)((*node)(nil))
	_ = (gofs.NodeFsyncer)((*node)(nil))
	_ = (gofs.NodeFlusher)((*node)(nil))
	_ = (gofs.NodeReleaser)((*node)(nil))
	_ = (gofs.NodeAllocater)((*node)(nil))
	_ = (gofs.NodeLseeker)((*node)(nil))
	_ = (gofs.NodeCopyFileRanger)((*node)(nil))
	_ = (gofs.NodeOpendirHandler)((*node)(nil))
)

// handle is an open file.
type handle struct {
	// append: O_APPEND without the writeback cache: every write goes to
	// the end, atomically. With the writeback cache the kernel positions
	// appends itself and writes back pages of the file, written through
	// any handle, through whichever writable handle it picks: the offset
	// it gives is the one to write at.
	append  bool
	direct  bool // O_DIRECT: served without the page cache
	counted bool // in FS.open: a live inode's (a snapshot's are not)
	// uid opened it: the kernel's write-back of a mapping's (or the
	// writeback cache's) pages comes with no caller, and is charged to
	// the handle's opener when set-id bits are to be dropped.
	uid uint32
}

// dirHandle is an open directory: the listing read by the last read at
// offset 0 and the position in it. Entry i has offset i+1.
type dirHandle struct {
	n       *node
	entries []fuse.DirEntry
	pos     int
}

var (
	_ = (gofs.FileFsyncdirer)((*dirHandle)(nil))
	_ = (gofs.FileReaddirenter)((*dirHandle)(nil))
	_ = (gofs.FileSeekdirer)((*dirHandle)(nil))
)

// openHandle opens the node's inode. While its handles are counted, the
// inode outlives its last link (as an orphan). An open racing with the
// removal of the inode (its path was resolved before the unlink or rename
// that removed it) waits for the removal's transaction and then fails with
// ESTALE, on which the kernel resolves the path again: it then opens
// whatever the name holds now.
//
// If t is not nil, it gets the inode's times, read with the check.
func (n *node) openHandle(ctx context.Context, flags uint32, t *times) (gofs.FileHandle, uint32, syscall.Errno) {
	uid, _ := caller(ctx)
	h := &handle{
		append:  flags&syscall.O_APPEND != 0 && !n.fs.opts.WritebackCache,
		direct:  flags&syscall.O_DIRECT != 0,
		counted: n.snap == nil,
		uid:     uid,
	}
	// Every change to a file goes through this daemon, so the kernel's
	// page cache of it stays valid from one open to the next.
	fuseFlags := uint32(fuse.FOPEN_KEEP_CACHE)
	if flags&syscall.O_DIRECT != 0 {
		fuseFlags = fuse.FOPEN_DIRECT_IO
	}
	if !h.counted {
		return h, fuseFlags, 0
	}
	f := n.fs
	f.mu.Lock()
	for f.removing[n.oid] > 0 {
		f.removed.Wait()
	}
	f.open[n.oid]++
	f.mu.Unlock()
	// A removal that committed before the count went up.
	var exists bool
	errno := n.view(func(v *vos.View) error {
		_, ok, err := v.Get(attrPath(n.oid))
		exists = ok
		if err == nil && ok && t != nil {
			*t, err = loadTimes(v, n.oid)
		}
		return err
	})
	if errno == 0 && !exists {
		errno = syscall.ESTALE
	}
	if errno != 0 {
		f.close(n.oid)
		return nil, 0, errno
	}
	return h, fuseFlags, 0
}

// close drops one handle of oid and reports whether it was the last.
func (f *FS) close(oid uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.open[oid]--
	if f.open[oid] > 0 {
		return false
	}
	delete(f.open, oid)
	return true
}

// removal tracks the inodes an operation's transaction removes for good,
// against opens racing with it (see openHandle).
type removal struct {
	f    *FS
	oids []uint64
}

// claim decides the fate of inode oid whose last link goes: false, it is
// open and must wait as an orphan; true, it may go now, and opens are
// refused until done.
func (r *removal) claim(oid uint64) bool {
	r.f.mu.Lock()
	defer r.f.mu.Unlock()
	if r.f.open[oid] > 0 {
		return false
	}
	r.f.removing[oid]++
	r.oids = append(r.oids, oid)
	return true
}

// done ends the claims, once the transaction has committed or failed.
func (r *removal) done() {
	if len(r.oids) == 0 {
		return
	}
	r.f.mu.Lock()
	defer r.f.mu.Unlock()
	for _, oid := range r.oids {
		if r.f.removing[oid]--; r.f.removing[oid] <= 0 {
			delete(r.f.removing, oid)
		}
	}
	r.oids = nil
	r.f.removed.Broadcast()
}

func (f *FS) isOpen(oid uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.open[oid] > 0
}

func (n *node) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if (n.fs.readOnly() || n.snap != nil) && flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC) != 0 {
		return nil, 0, syscall.EROFS
	}
	if flags&syscall.O_TRUNC != 0 {
		errno := n.update(ctx, nil, func(tx *vos.Tx) error {
			a, err := loadAttrs(tx, n.oid)
			if err != nil {
				return err
			}
			if a.isDir() {
				return syscall.EISDIR
			}
			if a.size == 0 {
				return nil
			}
			tx.UseDeletionReserve() // as a truncate
			if err := tx.PunchArray(dataPath(n.oid), 0, vos.MaxArrayOffset); err != nil {
				return err
			}
			if err := tx.Put(sizePath(n.oid), u64(0)); err != nil {
				return err
			}
			return touch(tx, n.oid, nowMC())
		})
		if errno != 0 {
			return nil, 0, errno
		}
	}
	// The access-time rule applies at an open for reading too: the
	// reads of a file whose pages the kernel caches (kept from one open
	// to the next) never reach the daemon, so the open stands for them.
	// A read that does reach it applies the rule again.
	if flags&syscall.O_ACCMODE == syscall.O_WRONLY || n.snap != nil {
		return n.openHandle(ctx, flags, nil)
	}
	var t times
	fh, fuseFlags, errno := n.openHandle(ctx, flags, &t)
	if errno == 0 {
		n.accessed(t)
	}
	return fh, fuseFlags, errno
}

func (n *node) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	// The listing is read by the first read, not here: a rewinddir is an
	// lseek the kernel keeps to itself, so a read at offset 0 is the only
	// sign of one, and it must see the names added and removed since the
	// open (POSIX). The open only checks that the directory is there.
	if errno := n.view(func(v *vos.View) error {
		_, err := loadInode(v, n.oid)
		return err
	}); errno != 0 {
		return nil, 0, errno
	}
	return &dirHandle{n: n}, 0, 0
}

// load reads the listing afresh and goes to its start.
func (d *dirHandle) load() syscall.Errno {
	entries, errno := d.n.readdir()
	if errno != 0 {
		return errno
	}
	for i := range entries {
		entries[i].Off = uint64(i + 1)
	}
	d.entries, d.pos = entries, 0
	return 0
}

func (d *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	// The bridge asks for the first entry only for a read at offset 0:
	// after the open, after a rewind, or after a seekdir to 0.
	if d.pos == 0 {
		if errno := d.load(); errno != 0 {
			return nil, errno
		}
	}
	if d.pos >= len(d.entries) {
		return nil, 0
	}
	e := d.entries[d.pos]
	d.pos++
	return &e, 0
}

// Seekdir moves to an offset of the listing; offset 0 is the start, which
// the next read lists afresh.
func (d *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	d.pos = int(min(off, uint64(len(d.entries))))
	return 0
}

func (d *dirHandle) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	return d.n.fs.sync()
}

// sync makes everything before it durable (only commit=async has anything
// left to wait for).
func (f *FS) sync() syscall.Errno {
	if f.opts.Commit == CommitAsync {
		return f.toErrno(f.p.Sync())
	}
	return f.toErrno(f.p.Err())
}

func (n *node) Fsync(ctx context.Context, fh gofs.FileHandle, flags uint32) syscall.Errno {
	return n.fs.sync()
}

func (n *node) Flush(ctx context.Context, fh gofs.FileHandle) syscall.Errno { return 0 }

func (n *node) Release(ctx context.Context, fh gofs.FileHandle) syscall.Errno {
	if h, ok := fh.(*handle); !ok || !h.counted {
		return 0
	}
	if n.fs.close(n.oid) {
		return n.fs.reapOrphan(ctx, n.oid)
	}
	return 0
}

func (n *node) Read(ctx context.Context, fh gofs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if off < 0 {
		return nil, syscall.EINVAL
	}
	var got int
	var t times
	errno := n.view(func(v *vos.View) error {
		b, ok, err := v.Get(sizePath(n.oid))
		if err != nil {
			return err
		}
		if !ok {
			return syscall.ESTALE // removed
		}
		if t, err = loadTimes(v, n.oid); err != nil {
			return err
		}
		size := le(b)
		if uint64(off) >= size {
			return nil
		}
		got = int(min(uint64(len(dest)), size-uint64(off)))
		return v.ReadArray(dataPath(n.oid), uint64(off), dest[:got])
	})
	if errno != 0 {
		return nil, errno
	}
	n.accessed(t)
	return fuse.ReadResultData(dest[:got]), 0
}

func (n *node) Write(ctx context.Context, fh gofs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	h, _ := fh.(*handle)
	if off < 0 {
		return 0, syscall.EINVAL
	}
	if uint64(off)+uint64(len(data)) > MaxFileSize {
		return 0, syscall.EFBIG
	}
	if len(data) == 0 {
		return 0, 0 // changes nothing, not even the size
	}
	kill := n.mustKillPriv(ctx, h)
	// With the writeback cache the kernel keeps the modification and
	// change times of what goes through the page cache: it sets them at
	// the write(2) and sends them in a setattr when it writes the inode
	// back (at writeback, fsync and close). A write back of pages may come
	// after a utimes (tar and cp -p set the times after the data), so it
	// must not move them. Direct writes bypass the kernel's times.
	kernelTimes := n.fs.opts.WritebackCache && (h == nil || !h.direct)
	gone := func(*vos.PredicateResult) syscall.Errno { return syscall.ESTALE }
	errno := n.update(ctx, gone, func(tx *vos.Tx) error {
		// The inode must still be there: a write must not bring back
		// pieces of a removed one.
		if err := tx.Predicate(vos.Predicate{Path: attrPath(n.oid), Kind: vos.Exists}); err != nil {
			return err
		}
		if kill {
			if err := killPriv(tx, n.oid); err != nil {
				return err
			}
		}
		at := uint64(off)
		if h != nil && h.append {
			b, _, err := tx.Get(sizePath(n.oid))
			if err != nil {
				return err
			}
			at = le(b)
		}
		n.hintMu.Lock()
		err := tx.WriteArray(dataPath(n.oid), at, data, &n.hint)
		n.hintMu.Unlock()
		if err != nil {
			return err
		}
		if err := tx.Merge(sizePath(n.oid), mergeMax, u64(at+uint64(len(data)))); err != nil {
			return err
		}
		if kernelTimes {
			return nil
		}
		return touch(tx, n.oid, nowMC())
	})
	if errno != 0 {
		return 0, errno
	}
	if kill {
		n.attrsChanged()
	}
	return uint32(len(data)), 0
}

// mustKillPriv reports whether a write by the caller drops the file's
// set-user-ID and set-group-ID bits: the caller is not privileged and a
// bit is set. With HANDLE_KILLPRIV_V2 the kernel leaves this to the
// filesystem for every write (it flags the write of a caller without
// CAP_FSETID, a flag the node API does not pass on: the caller's uid
// stands in for it). A write the kernel sends on its own (pid 0: the
// write-back of dirty pages of a mapping or of the writeback cache) is
// the handle's opener's (h may be nil).
func (n *node) mustKillPriv(ctx context.Context, h *handle) bool {
	uid, _ := caller(ctx)
	if c, ok := fuse.FromContext(ctx); ok && c.Pid == 0 && h != nil {
		uid = h.uid
	}
	if uid == 0 {
		return false
	}
	var kill bool
	n.view(func(v *vos.View) error {
		b, ok, err := v.Get(attrPath(n.oid))
		if err != nil || !ok {
			return err
		}
		a, err := decodeInode(b)
		kill = err == nil && privBits(a.mode) != 0
		return err
	})
	return kill
}

// privBits are the bits of mode a write by an unprivileged user drops:
// set-user-ID, and set-group-ID when group execute is set (without it, it
// marks mandatory locking).
func privBits(mode uint32) uint32 {
	kill := mode & syscall.S_ISUID
	if mode&(syscall.S_ISGID|syscall.S_IXGRP) == syscall.S_ISGID|syscall.S_IXGRP {
		kill |= syscall.S_ISGID
	}
	return kill
}

// attrsChanged tells the kernel that the inode's attributes changed behind
// its back (set-id bits dropped by a write, an access time moved by a
// read): it keeps the mode it cached across writes, and the times across
// reads, and would show the old ones until its attribute timeout.
func (n *node) attrsChanged() {
	// ENOENT: the kernel holds nothing of it, so nothing is stale.
	_ = n.NotifyContent(-1, 0)
}

// killPriv drops oid's privilege bits in tx.
func killPriv(tx *vos.Tx, oid uint64) error {
	b, ok, err := tx.Get(attrPath(oid))
	if err != nil || !ok {
		return err
	}
	a, err := decodeInode(b)
	if err != nil {
		return err
	}
	if k := privBits(a.mode); k != 0 {
		a.mode &^= k
		return tx.Put(attrPath(oid), a.encode())
	}
	return nil
}

// Flags of fallocate(2).
const (
	fallocKeepSize  = 0x01
	fallocPunchHole = 0x02
	fallocZeroRange = 0x10
)

func (n *node) Allocate(ctx context.Context, fh gofs.FileHandle, off uint64, size uint64, mode uint32) syscall.Errno {
	if size == 0 {
		return syscall.EINVAL
	}
	end := off + size
	if end < off || end > MaxFileSize {
		return syscall.EFBIG
	}
	switch mode {
	case 0, fallocKeepSize, fallocZeroRange, fallocZeroRange | fallocKeepSize, fallocPunchHole | fallocKeepSize:
	default:
		return syscall.EOPNOTSUPP
	}
	if mode&(fallocPunchHole|fallocZeroRange) == 0 {
		if errno := n.fallocFits(off, end); errno != 0 {
			return errno
		}
	}
	// Every mode is a write for the set-id bits (the kernel's
	// file_modified before fallocate, left to us by HANDLE_KILLPRIV_V2).
	h, _ := fh.(*handle)
	kill := n.mustKillPriv(ctx, h)
	if kill {
		defer n.attrsChanged()
	}
	return n.update(ctx, nil, func(tx *vos.Tx) error {
		a, err := loadAttrs(tx, n.oid)
		if err != nil {
			return err
		}
		if a.isDir() {
			return syscall.EISDIR
		}
		if kill {
			if err := killPriv(tx, n.oid); err != nil {
				return err
			}
		}
		if mode&(fallocPunchHole|fallocZeroRange) != 0 {
			tx.UseDeletionReserve() // punching a hole gives space back
			if err := tx.PunchArray(dataPath(n.oid), off, end); err != nil {
				return err
			}
		}
		if mode&fallocKeepSize == 0 && end > a.size {
			if err := tx.Merge(sizePath(n.oid), mergeMax, u64(end)); err != nil {
				return err
			}
		}
		return touch(tx, n.oid, nowMC())
	})
}

// Whence values of lseek(2) for holes.
const (
	seekData = 3
	seekHole = 4
)

func (n *node) Lseek(ctx context.Context, fh gofs.FileHandle, off uint64, whence uint32) (uint64, syscall.Errno) {
	if errno := n.writeBackCached(off); errno != 0 {
		return 0, errno
	}
	var res uint64
	errno := n.view(func(v *vos.View) error {
		b, _, err := v.Get(sizePath(n.oid))
		if err != nil {
			return err
		}
		size := le(b)
		if off >= size {
			return syscall.ENXIO
		}
		segs, err := v.Segments(dataPath(n.oid), off, size-off)
		if err != nil {
			return err
		}
		for _, s := range segs {
			if whence == seekData && !s.Hole {
				res = s.Off
				return nil
			}
			if whence == seekHole && s.Hole {
				res = s.Off
				return nil
			}
		}
		if whence == seekData {
			return syscall.ENXIO
		}
		res = size
		return nil
	})
	return res, errno
}

func (n *node) CopyFileRange(ctx context.Context, fhIn gofs.FileHandle, offIn uint64, out *gofs.Inode, fhOut gofs.FileHandle, offOut uint64, length uint64, flags uint64) (uint32, syscall.Errno) {
	dst, ok := out.Operations().(*node)
	if !ok {
		return 0, syscall.EXDEV
	}
	if flags != 0 {
		return 0, syscall.EINVAL
	}
	const chunk = 1 << 20
	// The reply counts bytes in 32 bits.
	length = min(length, math.MaxUint32&^uint64(chunk-1))
	var done uint64
	buf := make([]byte, chunk)
	for done < length {
		res, errno := n.Read(ctx, fhIn, buf[:min(chunk, length-done)], int64(offIn+done))
		if errno != 0 {
			return uint32(done), errno
		}
		b, _ := res.Bytes(nil)
		if len(b) == 0 {
			break
		}
		w, errno := dst.Write(ctx, nil, b, int64(offOut+done))
		if errno != 0 {
			return uint32(done), errno
		}
		done += uint64(w)
		if uint64(w) < chunk {
			break
		}
	}
	return uint32(done), 0
}

// Orphans: inodes unlinked while open, kept (listed under orphanOID) until
// their last close, or until the next mount after a crash.

func (f *FS) reapOrphan(ctx context.Context, oid uint64) syscall.Errno {
	if f.readOnly() {
		return 0
	}
	p := vos.Path{OID: orphanOID, Dkey: u64(oid), Akey: akeyEntry}
	var orphan bool
	if errno := f.view(func(v *vos.View) error {
		_, ok, err := v.Get(p)
		orphan = ok
		return err
	}); errno != 0 || !orphan {
		return errno
	}
	rm := &removal{f: f}
	defer rm.done()
	return f.update(ctx, nil, func(tx *vos.Tx) error {
		b, ok, err := tx.Get(linksPath(oid))
		if err != nil || !ok || le(b) != 0 || !rm.claim(oid) {
			return err
		}
		if err := tx.PunchDkey(orphanOID, u64(oid)); err != nil {
			return err
		}
		return removeInode(tx, oid)
	})
}

func (f *FS) reapOrphans(ctx context.Context) error {
	var oids []uint64
	v := f.s.Latest()
	err := v.ListDkeys(orphanOID, nil, false, 0, func(k []byte) bool {
		oids = append(oids, le(k))
		return true
	})
	v.Close()
	if err != nil {
		return err
	}
	for _, oid := range oids {
		if errno := f.reapOrphan(ctx, oid); errno != 0 {
			return errno
		}
	}
	return nil
}
