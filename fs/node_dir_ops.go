package fs

import (
	"context"
	"encoding/binary"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"vosfs/vos"
)

var (
	_ = (gofs.NodeLookuper)((*node)(nil))
	_ = (gofs.NodeReaddirer)((*node)(nil))
	_ = (gofs.NodeCreater)((*node)(nil))
	_ = (gofs.NodeMkdirer)((*node)(nil))
	_ = (gofs.NodeMknoder)((*node)(nil))
	_ = (gofs.NodeSymlinker)((*node)(nil))
	_ = (gofs.NodeLinker)((*node)(nil))
	_ = (gofs.NodeUnlinker)((*node)(nil))
	_ = (gofs.NodeRmdirer)((*node)(nil))
	_ = (gofs.NodeRenamer)((*node)(nil))
)

// SnapshotDir is the name of the read-only directory of snapshots at the
// root.
const SnapshotDir = ".snapshots"

func checkName(name string) syscall.Errno {
	switch {
	case len(name) > MaxNameLen:
		return syscall.ENAMETOOLONG
	case name == "" || name == "." || name == "..":
		return syscall.EINVAL
	}
	return 0
}

// isSnapshotDir reports whether name in n is the live root's snapshots
// directory, a name no entry of the root may take.
func (n *node) isSnapshotDir(name string) bool {
	return n.snap == nil && n.oid == RootOID && name == SnapshotDir
}

// newNamePredicates makes a transaction that adds name to directory n
// require that the name is free and the directory still exists.
func (n *node) newNamePredicates(tx *vos.Tx, name string) error {
	if err := tx.Predicate(vos.Predicate{Path: entryPath(n.oid, name), Kind: vos.Absent}); err != nil {
		return err
	}
	return tx.Predicate(vos.Predicate{Path: attrPath(n.oid), Kind: vos.Exists})
}

// newNameFailed maps a failed newNamePredicates to its errno.
func newNameFailed(pr *vos.PredicateResult) syscall.Errno {
	if pr.Index == 0 {
		return syscall.EEXIST
	}
	return syscall.ENOENT
}

// child returns the inode node for oid, reusing a known one. A snapshot's
// nodes have their own inode numbers, and the snapshot's epoch as their
// generation, so they never alias the live tree's or another snapshot's;
// hard links within a snapshot are one node.
func (n *node) child(ctx context.Context, oid uint64, mode uint32) *gofs.Inode {
	return n.NewInode(ctx, &node{fs: n.fs, oid: oid, snap: n.snap}, n.stableAttr(oid, mode))
}

// stableAttr is the identity of oid's node in n's tree.
func (n *node) stableAttr(oid uint64, mode uint32) gofs.StableAttr {
	sa := gofs.StableAttr{Mode: mode & syscall.S_IFMT, Ino: n.inoOf(oid), Gen: n.fs.generation()}
	if n.snap != nil {
		sa.Gen = n.snap.Epoch()
	}
	return sa
}

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if errno := checkName(name); errno != 0 && errno != syscall.EINVAL {
		return nil, errno
	}
	if n.oid == RootOID && name == SnapshotDir && n.snap == nil {
		return n.fs.snapshotsDir(ctx, n, out)
	}
	var e entry
	var a attrs
	if errno := n.view(func(v *vos.View) error {
		b, ok, err := v.Get(entryPath(n.oid, name))
		if err != nil {
			return err
		}
		if !ok {
			return syscall.ENOENT
		}
		if e, err = decodeEntry(b); err != nil {
			return err
		}
		a, err = loadAttrs(v, e.oid)
		return err
	}); errno != 0 {
		return nil, errno
	}
	ch := n.child(ctx, e.oid, a.mode)
	cn := ch.Operations().(*node)
	cn.remember(a)
	a.fill(cn.ino(), n.fs.blksize(), &out.Attr)
	return ch, 0
}

func (n *node) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	entries, errno := n.readdir()
	if errno != 0 {
		return nil, errno
	}
	return gofs.NewListDirStream(entries), 0
}

// readdir lists the directory: ".", "..", its entries and, at the root,
// the snapshots directory.
func (n *node) readdir() ([]fuse.DirEntry, syscall.Errno) {
	entries := []fuse.DirEntry{{Name: ".", Mode: syscall.S_IFDIR, Ino: n.ino()}}
	var a attrs
	errno := n.view(func(v *vos.View) error {
		var err error
		if a, err = loadAttrs(v, n.oid); err != nil {
			return err
		}
		parent := n.inoOf(a.parent)
		if n.snap != nil && n.oid == RootOID {
			parent = snapshotsIno // a snapshot's root is in the snapshots directory
		}
		entries = append(entries, fuse.DirEntry{Name: "..", Mode: syscall.S_IFDIR, Ino: parent})
		var ferr error
		if err := v.ListDkeys(n.oid|entriesBit, nil, false, 0, func(name []byte) bool {
			b, ok, err := v.Get(entryPath(n.oid, string(name)))
			if err != nil || !ok {
				ferr = err
				return err == nil
			}
			e, err := decodeEntry(b)
			if err != nil {
				ferr = err
				return false
			}
			entries = append(entries, fuse.DirEntry{Name: string(name), Mode: e.mode, Ino: n.inoOf(e.oid)})
			return true
		}); err != nil {
			return err
		}
		return ferr
	})
	if errno != 0 {
		return nil, errno
	}
	if !n.fs.opts.NoDiratime {
		n.accessed(a.times)
	}
	if n.oid == RootOID && n.snap == nil {
		entries = append(entries, fuse.DirEntry{Name: SnapshotDir, Mode: syscall.S_IFDIR, Ino: snapshotsIno})
	}
	return entries, 0
}

// newInode creates an inode named name in directory n in one transaction:
// the entry must not exist and the directory must (predicates), and
// extra, if set, adds to the transaction.
func (n *node) newInode(ctx context.Context, name string, mode, rdev uint32, extra func(tx *vos.Tx, oid uint64) error, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if errno := checkName(name); errno != 0 {
		return nil, errno
	}
	if n.fs.readOnly() || n.snap != nil {
		return nil, syscall.EROFS
	}
	if n.isSnapshotDir(name) {
		return nil, syscall.EEXIST
	}
	oid, err := n.fs.s.NewOID(ctx)
	if err != nil {
		return nil, n.fs.toErrno(err)
	}
	uid, gid := caller(ctx)
	isDir := mode&syscall.S_IFMT == syscall.S_IFDIR
	var a attrs
	errno := n.updateDir(ctx, newNameFailed, func(tx *vos.Tx) error {
		if err := n.newNamePredicates(tx, name); err != nil {
			return err
		}
		// Only the parent's inode: its times and link count are merges
		// that parallel creates in it add to without conflict.
		parent, err := loadInode(tx, n.oid)
		if err != nil {
			return err
		}
		if !parent.isDir() {
			return syscall.ENOTDIR
		}
		ino := inode{mode: mode, uid: uid, gid: gid, rdev: rdev}
		// A set-group-ID directory passes its group on, and the bit to
		// subdirectories.
		if parent.mode&syscall.S_ISGID != 0 {
			ino.gid = parent.gid
			if isDir {
				ino.mode |= syscall.S_ISGID
			}
		}
		nlink := uint64(1)
		if isDir {
			ino.parent, nlink = n.oid, 2
			if err := addLinks(tx, n.oid, 1); err != nil {
				return err
			}
		}
		t := time.Now()
		if err := putInode(tx, oid, ino, nlink, t); err != nil {
			return err
		}
		if err := addInodes(tx, 1); err != nil {
			return err
		}
		if err := tx.Put(entryPath(n.oid, name), entry{oid: oid, mode: mode & syscall.S_IFMT}.encode()); err != nil {
			return err
		}
		if extra != nil {
			if err := extra(tx, oid); err != nil {
				return err
			}
		}
		ns := t.UnixNano()
		a = attrs{inode: ino, nlink: nlink, times: times{ns, ns, ns}}
		return touch(tx, n.oid, times{mtime: ns, ctime: ns})
	})
	if errno != 0 {
		return nil, errno
	}
	if extra != nil && mode&syscall.S_IFMT == syscall.S_IFLNK {
		// the symlink's size is its target's length (set by extra)
		_ = n.view(func(v *vos.View) error { b, _, err := v.Get(sizePath(oid)); a.size = le(b); return err })
	}
	a.fill(oid, n.fs.blksize(), &out.Attr)
	ch := n.child(ctx, oid, mode)
	ch.Operations().(*node).remember(a)
	return ch, 0
}

func le(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.LittleEndian.Uint64(b)
}

func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	ch, errno := n.newInode(ctx, name, syscall.S_IFREG|mode&07777, 0, nil, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	cn := ch.Operations().(*node)
	fh, fuseFlags, errno := cn.openHandle(ctx, flags, nil)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	return ch, fh, fuseFlags, 0
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return n.newInode(ctx, name, syscall.S_IFDIR|mode&07777, 0, nil, out)
}

func (n *node) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	switch mode & syscall.S_IFMT {
	case syscall.S_IFREG, syscall.S_IFIFO, syscall.S_IFSOCK, syscall.S_IFCHR, syscall.S_IFBLK:
	case 0:
		mode |= syscall.S_IFREG
	default:
		return nil, syscall.EINVAL
	}
	return n.newInode(ctx, name, mode, dev, nil, out)
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if len(target) > MaxSymlinkLen {
		return nil, syscall.ENAMETOOLONG
	}
	return n.newInode(ctx, name, syscall.S_IFLNK|0o777, 0, func(tx *vos.Tx, oid uint64) error {
		if err := tx.Put(linkPath(oid), []byte(target)); err != nil {
			return err
		}
		return tx.Put(sizePath(oid), u64(uint64(len(target))))
	}, out)
}

func (n *node) Link(ctx context.Context, target gofs.InodeEmbedder, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if errno := checkName(name); errno != 0 {
		return nil, errno
	}
	tn, ok := target.(*node)
	if !ok {
		return nil, syscall.EXDEV
	}
	switch {
	case n.snap != nil:
		return nil, syscall.EROFS
	case tn.snap != nil:
		return nil, syscall.EXDEV // a snapshot's file has no place in the live tree
	case n.isSnapshotDir(name):
		return nil, syscall.EEXIST
	}
	var a attrs
	errno := n.updateDir(ctx, newNameFailed, func(tx *vos.Tx) error {
		if err := n.newNamePredicates(tx, name); err != nil {
			return err
		}
		var err error
		if a, err = loadAttrs(tx, tn.oid); err != nil {
			return err
		}
		if a.isDir() {
			return syscall.EPERM
		}
		if a.nlink == 0 {
			return syscall.ENOENT // unlinked while open: no new names
		}
		if a.stored, err = tx.Allocated(dataPath(tn.oid)); err != nil {
			return err
		}
		if err := tx.Put(entryPath(n.oid, name), entry{oid: tn.oid, mode: a.mode & syscall.S_IFMT}.encode()); err != nil {
			return err
		}
		if err := addLinks(tx, tn.oid, 1); err != nil {
			return err
		}
		t := nowMC()
		a.nlink++
		a.ctime = t.ctime
		if err := touch(tx, tn.oid, nowC()); err != nil {
			return err
		}
		return touch(tx, n.oid, t)
	})
	if errno != 0 {
		return nil, errno
	}
	a.fill(tn.oid, n.fs.blksize(), &out.Attr)
	ch := n.child(ctx, tn.oid, a.mode)
	ch.Operations().(*node).remember(a)
	return ch, 0
}

// readEntry reads a directory entry in tx; ENOENT if missing.
func readEntry(tx *vos.Tx, dir uint64, name string) (entry, bool, error) {
	b, ok, err := tx.Get(entryPath(dir, name))
	if err != nil || !ok {
		return entry{}, false, err
	}
	e, err := decodeEntry(b)
	return e, err == nil, err
}

// dropLink removes one link of the non-directory oid in tx; at zero links
// the inode goes (claimed in rm), or waits as an orphan while it is open
// (then it reports true: the caller settles the orphan once the
// transaction committed).
func (f *FS) dropLink(tx *vos.Tx, rm *removal, oid uint64) (orphaned bool, err error) {
	b, _, err := tx.Get(linksPath(oid))
	if err != nil {
		return false, err
	}
	if le(b) > 1 {
		if err := addLinks(tx, oid, -1); err != nil {
			return false, err
		}
		return false, touch(tx, oid, nowC())
	}
	if !rm.claim(oid) {
		if err := tx.Put(linksPath(oid), u64(0)); err != nil {
			return false, err
		}
		if err := touch(tx, oid, nowC()); err != nil {
			return false, err
		}
		return true, tx.Put(vos.Path{OID: orphanOID, Dkey: u64(oid), Akey: akeyEntry}, u64(oid))
	}
	return false, removeInode(tx, oid)
}

// settleOrphan reaps an orphan made by a committed transaction if its last
// handle was released meanwhile: that release looked for the orphan
// before it existed.
func (f *FS) settleOrphan(ctx context.Context, oid uint64) {
	if oid != 0 && !f.isOpen(oid) {
		_ = f.reapOrphan(ctx, oid)
	}
}

// removeInode punches an inode's objects. It gives space back, so it may
// take the deletion reserve.
func removeInode(tx *vos.Tx, oid uint64) error {
	tx.UseDeletionReserve()
	if err := addInodes(tx, -1); err != nil {
		return err
	}
	for _, o := range []uint64{oid, oid | xattrBit, oid | entriesBit} {
		if err := tx.PunchObject(o); err != nil {
			return err
		}
	}
	return nil
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	if errno := checkName(name); errno != 0 {
		return errno
	}
	if n.isSnapshotDir(name) {
		return syscall.EBUSY
	}
	var orphan uint64
	rm := &removal{f: n.fs}
	defer rm.done()
	errno := n.updateDir(ctx, nil, func(tx *vos.Tx) error {
		tx.UseDeletionReserve() // an unlink works on a full pool
		orphan = 0
		e, ok, err := readEntry(tx, n.oid, name)
		if err != nil {
			return err
		}
		if !ok {
			return syscall.ENOENT
		}
		if e.mode == syscall.S_IFDIR {
			return syscall.EISDIR
		}
		if err := tx.PunchDkey(n.oid|entriesBit, []byte(name)); err != nil {
			return err
		}
		orphaned, err := n.fs.dropLink(tx, rm, e.oid)
		if err != nil {
			return err
		}
		if orphaned {
			orphan = e.oid
		}
		return touch(tx, n.oid, nowMC())
	})
	if errno == 0 {
		n.fs.settleOrphan(ctx, orphan)
	}
	return errno
}

// dirEmpty reports whether directory oid has no entries (a read of the
// transaction, so an entry added concurrently aborts it).
func dirEmpty(tx *vos.Tx, oid uint64) (bool, error) {
	empty := true
	err := tx.ListDkeys(oid|entriesBit, nil, false, 1, func([]byte) bool { empty = false; return false })
	return empty, err
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	if name == "." {
		return syscall.EINVAL
	}
	if name == ".." {
		return syscall.ENOTEMPTY
	}
	if errno := checkName(name); errno != 0 {
		return errno
	}
	if n.isSnapshotDir(name) {
		return syscall.EBUSY
	}
	return n.updateDir(ctx, nil, func(tx *vos.Tx) error {
		tx.UseDeletionReserve() // an rmdir works on a full pool
		e, ok, err := readEntry(tx, n.oid, name)
		if err != nil {
			return err
		}
		if !ok {
			return syscall.ENOENT
		}
		if e.mode != syscall.S_IFDIR {
			return syscall.ENOTDIR
		}
		empty, err := dirEmpty(tx, e.oid)
		if err != nil {
			return err
		}
		if !empty {
			return syscall.ENOTEMPTY
		}
		if err := tx.PunchDkey(n.oid|entriesBit, []byte(name)); err != nil {
			return err
		}
		if err := removeInode(tx, e.oid); err != nil {
			return err
		}
		if err := addLinks(tx, n.oid, -1); err != nil {
			return err
		}
		return touch(tx, n.oid, nowMC())
	})
}

// Flags of renameat2(2).
const (
	renameNoReplace = 1
	renameExchange  = 2
)

func (n *node) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if errno := checkName(name); errno != 0 {
		return errno
	}
	if errno := checkName(newName); errno != 0 {
		return errno
	}
	np, ok := newParent.(*node)
	if !ok {
		return syscall.EXDEV
	}
	// Snapshots are read-only, and nothing moves between one and the
	// live tree (both directories have the same object IDs).
	if n.snap != nil || np.snap != nil {
		return syscall.EROFS
	}
	if n.isSnapshotDir(name) || np.isSnapshotDir(newName) {
		return syscall.EBUSY
	}
	if flags&^uint32(renameNoReplace|renameExchange) != 0 || flags == renameNoReplace|renameExchange {
		return syscall.EINVAL
	}
	var orphan uint64
	rm := &removal{f: n.fs}
	defer rm.done()
	errno := n.updateDir(ctx, nil, func(tx *vos.Tx) error {
		orphan = 0
		return n.fs.rename(tx, rm, n.oid, name, np.oid, newName, flags, &orphan)
	})
	if errno == 0 {
		n.fs.settleOrphan(ctx, orphan)
	}
	return errno
}

// rename moves an entry in tx; a replaced file left open becomes an orphan
// named in *orphan.
func (f *FS) rename(tx *vos.Tx, rm *removal, from uint64, name string, to uint64, newName string, flags uint32, orphan *uint64) error {
	src, ok, err := readEntry(tx, from, name)
	if err != nil {
		return err
	}
	if !ok {
		return syscall.ENOENT
	}
	dst, dstOK, err := readEntry(tx, to, newName)
	if err != nil {
		return err
	}
	if from == to && name == newName {
		return nil
	}
	srcDir := src.mode == syscall.S_IFDIR
	// A directory may not move into its own subtree.
	if srcDir && from != to {
		if err := checkNotAncestor(tx, src.oid, to); err != nil {
			return err
		}
	}
	if flags&renameExchange != 0 {
		if !dstOK {
			return syscall.ENOENT
		}
		if dst.mode == syscall.S_IFDIR && from != to {
			if err := checkNotAncestor(tx, dst.oid, from); err != nil {
				return err
			}
		}
		if err := tx.Put(entryPath(from, name), dst.encode()); err != nil {
			return err
		}
		if err := tx.Put(entryPath(to, newName), src.encode()); err != nil {
			return err
		}
		if from != to {
			if err := moveDir(tx, src, from, to); err != nil {
				return err
			}
			if err := moveDir(tx, dst, to, from); err != nil {
				return err
			}
		}
		return touchRename(tx, from, to, src.oid, dst.oid)
	}
	if dstOK {
		if flags&renameNoReplace != 0 {
			return syscall.EEXIST
		}
		if dst.oid == src.oid {
			return nil // two links of one file: nothing to do
		}
		if dst.mode == syscall.S_IFDIR {
			if !srcDir {
				return syscall.EISDIR
			}
			empty, err := dirEmpty(tx, dst.oid)
			if err != nil {
				return err
			}
			if !empty {
				return syscall.ENOTEMPTY
			}
			if err := removeInode(tx, dst.oid); err != nil {
				return err
			}
			if err := addLinks(tx, to, -1); err != nil {
				return err
			}
		} else {
			if srcDir {
				return syscall.ENOTDIR
			}
			orphaned, err := f.dropLink(tx, rm, dst.oid)
			if err != nil {
				return err
			}
			if orphaned {
				*orphan = dst.oid
			}
		}
	}
	if err := tx.Put(entryPath(to, newName), src.encode()); err != nil {
		return err
	}
	if err := tx.PunchDkey(from|entriesBit, []byte(name)); err != nil {
		return err
	}
	if from != to {
		if err := moveDir(tx, src, from, to); err != nil {
			return err
		}
	}
	return touchRename(tx, from, to, src.oid, 0)
}

// moveDir updates a directory moved from one parent to another: its ".."
// and both parents' link counts.
func moveDir(tx *vos.Tx, e entry, from, to uint64) error {
	if e.mode != syscall.S_IFDIR {
		return nil
	}
	b, ok, err := tx.Get(attrPath(e.oid))
	if err != nil {
		return err
	}
	if !ok {
		return syscall.ENOENT
	}
	a, err := decodeInode(b)
	if err != nil {
		return err
	}
	a.parent = to
	if err := tx.Put(attrPath(e.oid), a.encode()); err != nil {
		return err
	}
	if err := addLinks(tx, from, -1); err != nil {
		return err
	}
	return addLinks(tx, to, 1)
}

func touchRename(tx *vos.Tx, from, to, a, b uint64) error {
	t := nowMC()
	for _, d := range []uint64{from, to} {
		if err := touch(tx, d, t); err != nil {
			return err
		}
	}
	for _, o := range []uint64{a, b} {
		if o != 0 {
			if err := touch(tx, o, nowC()); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkNotAncestor fails with EINVAL if dir is target or one of its
// ancestors (walking ".." up to the root).
func checkNotAncestor(tx *vos.Tx, dir, target uint64) error {
	for i := 0; i < 1<<16; i++ {
		if target == dir {
			return syscall.EINVAL
		}
		if target == RootOID {
			return nil
		}
		b, ok, err := tx.Get(attrPath(target))
		if err != nil {
			return err
		}
		if !ok {
			return syscall.ENOENT
		}
		a, err := decodeInode(b)
		if err != nil {
			return err
		}
		target = a.parent
	}
	return syscall.ELOOP
}
