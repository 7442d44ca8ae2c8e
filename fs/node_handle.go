package fs

import (
	"context"
	"encoding/binary"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"vosfs/vos"
)

// Open by handle (name_to_handle_at, open_by_handle_at, NFS export).
//
// The kernel's handle of a FUSE file is its node ID and generation. Node
// IDs are the inode numbers, which are the pool's object IDs (go-fuse's
// ExternalNodeID), so a handle means the same object after an unmount and
// a mount; object IDs are never reused within a pool, and the generation
// of every live inode is one number drawn from the pool's UUID, so a
// handle of another pool made on the same mount point is refused instead
// of opening whatever has its object ID there. A handle whose inode is no
// longer cached by the kernel comes back as a lookup by node ID
// (FUSE_EXPORT_SUPPORT): LookupNode below, on the root. Inodes of
// snapshots are reachable by handle only while the kernel caches them
// (their node IDs are not object IDs).

var (
	_ = (gofs.NodeLookupNoder)((*node)(nil))
	_ = (gofs.NodeLookupParenter)((*node)(nil))
)

// liveOIDLimit bounds the object IDs of inodes: the inode numbers at and
// above it are snapshots' and the snapshots directory's.
const liveOIDLimit = 1 << 59

// generation is the generation of every inode of the live tree.
func (f *FS) generation() uint64 {
	u := f.p.UUID()
	// The kernel keeps 32 bits of it; 0 is what a filesystem without
	// generations reports.
	return uint64(binary.LittleEndian.Uint32(u[:4]) | 1)
}

// LookupNode finds the inode of a handle the kernel no longer caches;
// ESTALE if it was removed (also when only open descriptors keep it).
func (n *node) LookupNode(ctx context.Context, id uint64, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if n.snap != nil || id >= liveOIDLimit {
		return nil, syscall.ESTALE
	}
	var a attrs
	errno := n.fs.view(func(v *vos.View) error {
		var err error
		a, err = loadAttrs(v, id)
		return err
	})
	switch {
	case errno == syscall.ENOENT:
		return nil, syscall.ESTALE
	case errno != 0:
		return nil, errno
	case a.nlink == 0:
		return nil, syscall.ESTALE // an orphan: unlinked, open somewhere
	}
	ch := n.child(ctx, id, a.mode)
	cn := ch.Operations().(*node)
	cn.remember(a)
	a.fill(cn.ino(), n.fs.blksize(), &out.Attr)
	return ch, 0
}

// LookupParent finds a directory's parent and its name there, for the
// kernel to connect a directory opened by handle to the tree.
func (n *node) LookupParent(ctx context.Context, out *fuse.EntryOut) (*gofs.Inode, string, syscall.Errno) {
	if n.snap != nil {
		return nil, "", syscall.ESTALE
	}
	var name string
	var parent uint64
	var pa attrs
	errno := n.fs.view(func(v *vos.View) error {
		a, err := loadInode(v, n.oid)
		if err != nil {
			return err
		}
		if !a.isDir() || n.oid == RootOID {
			return syscall.ESTALE
		}
		parent = a.parent
		if pa, err = loadAttrs(v, a.parent); err != nil {
			return err
		}
		var ferr error
		found := false
		if err := v.ListDkeys(a.parent|entriesBit, nil, false, 0, func(k []byte) bool {
			b, ok, err := v.Get(entryPath(a.parent, string(k)))
			if err != nil || !ok {
				ferr = err
				return err == nil
			}
			e, err := decodeEntry(b)
			if err != nil {
				ferr = err
				return false
			}
			if e.oid == n.oid {
				name, found = string(k), true
				return false
			}
			return true
		}); err != nil {
			return err
		}
		if ferr != nil {
			return ferr
		}
		if !found {
			return syscall.ESTALE
		}
		return nil
	})
	if errno == syscall.ENOENT {
		errno = syscall.ESTALE
	}
	if errno != 0 {
		return nil, "", errno
	}
	p := n.fs.root.EmbeddedInode()
	if parent != RootOID {
		p = n.fs.root.child(ctx, parent, pa.mode)
	}
	pn := p.Operations().(*node)
	pn.remember(pa)
	pa.fill(pn.ino(), n.fs.blksize(), &out.Attr)
	return p, name, 0
}
