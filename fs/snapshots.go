package fs

import (
	"context"
	"errors"
	"sync"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"vosfs/vos"
)

// snapshotsIno is the inode number of the snapshots directory.
const snapshotsIno = 1<<60 | 1

// snapDir is the root's .snapshots directory: one read-only directory per
// snapshot; mkdir creates a snapshot, rmdir deletes one.
type snapDir struct {
	gofs.Inode
	fs *FS

	mu    sync.Mutex
	views map[string]*vos.View // guarded by mu: the open view of each looked-up snapshot
}

var (
	_ = (gofs.NodeLookuper)((*snapDir)(nil))
	_ = (gofs.NodeReaddirer)((*snapDir)(nil))
	_ = (gofs.NodeMkdirer)((*snapDir)(nil))
	_ = (gofs.NodeRmdirer)((*snapDir)(nil))
	_ = (gofs.NodeGetattrer)((*snapDir)(nil))
	_ = (gofs.NodeStatfser)((*snapDir)(nil))
)

// Statfs is the filesystem's.
func (d *snapDir) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return d.fs.root.Statfs(ctx, out)
}

func (f *FS) snapshotsDir(ctx context.Context, root *node, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	f.snapOnce.Do(func() { f.snaps = &snapDir{fs: f, views: map[string]*vos.View{}} })
	f.snaps.fillAttr(&out.Attr)
	return root.NewInode(ctx, f.snaps, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: snapshotsIno}), 0
}

func (d *snapDir) fillAttr(a *fuse.Attr) {
	a.Ino = snapshotsIno
	a.Mode = syscall.S_IFDIR | 0o755
	a.Nlink = 2
	a.Blksize = d.fs.blksize()
}

func (d *snapDir) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	d.fillAttr(&out.Attr)
	return 0
}

func (d *snapDir) view(name string) (*vos.View, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if v, ok := d.views[name]; ok {
		return v, nil
	}
	v, err := d.fs.s.Snapshot(name)
	if err != nil {
		return nil, err
	}
	d.views[name] = v
	return v, nil
}

func (d *snapDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if len(name) > MaxNameLen {
		return nil, syscall.ENAMETOOLONG
	}
	v, err := d.view(name)
	if errors.Is(err, vos.ErrNoSnapshot) || errors.Is(err, vos.ErrSnapshotNameSize) {
		return nil, syscall.ENOENT
	}
	if err != nil {
		return nil, d.fs.toErrno(err)
	}
	root := &node{fs: d.fs, oid: RootOID, snap: v}
	var a attrs
	if errno := root.view(func(v *vos.View) error {
		var err error
		a, err = loadAttrs(v, RootOID)
		return err
	}); errno != 0 {
		return nil, errno
	}
	a.mode &^= 0o222
	a.fill(root.ino(), d.fs.blksize(), &out.Attr)
	return d.NewInode(ctx, root, root.stableAttr(RootOID, syscall.S_IFDIR)), 0
}

func (d *snapDir) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	entries := []fuse.DirEntry{{Name: ".", Mode: syscall.S_IFDIR, Ino: snapshotsIno}, {Name: "..", Mode: syscall.S_IFDIR, Ino: RootOID}}
	for _, s := range d.fs.s.Snapshots() {
		entries = append(entries, fuse.DirEntry{Name: s.Name, Mode: syscall.S_IFDIR, Ino: snapIno(s.Epoch, RootOID)})
	}
	return gofs.NewListDirStream(entries), 0
}

func (d *snapDir) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if d.fs.readOnly() {
		return nil, syscall.EROFS
	}
	if errno := checkName(name); errno != 0 {
		return nil, errno
	}
	_, err := d.fs.s.CreateSnapshot(context.WithoutCancel(ctx), name)
	if errors.Is(err, vos.ErrSnapshotExists) {
		return nil, syscall.EEXIST
	}
	if err != nil {
		return nil, d.fs.toErrno(err)
	}
	return d.Lookup(ctx, name, out)
}

func (d *snapDir) Rmdir(ctx context.Context, name string) syscall.Errno {
	if d.fs.readOnly() {
		return syscall.EROFS
	}
	err := d.fs.s.DeleteSnapshot(context.WithoutCancel(ctx), name)
	if errors.Is(err, vos.ErrNoSnapshot) || errors.Is(err, vos.ErrSnapshotNameSize) {
		return syscall.ENOENT
	}
	if err != nil {
		return d.fs.toErrno(err)
	}
	d.fs.kickAggregation() // what only the snapshot saw can go
	d.mu.Lock()
	if v, ok := d.views[name]; ok {
		v.Close()
		delete(d.views, name)
	}
	d.mu.Unlock()
	return 0
}

// Only mkdir and rmdir change the snapshots directory.

var (
	_ = (gofs.NodeCreater)((*snapDir)(nil))
	_ = (gofs.NodeMknoder)((*snapDir)(nil))
	_ = (gofs.NodeSymlinker)((*snapDir)(nil))
	_ = (gofs.NodeLinker)((*snapDir)(nil))
	_ = (gofs.NodeUnlinker)((*snapDir)(nil))
	_ = (gofs.NodeRenamer)((*snapDir)(nil))
	_ = (gofs.NodeSetattrer)((*snapDir)(nil))
)

func (d *snapDir) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EPERM
}

func (d *snapDir) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EPERM
}

func (d *snapDir) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EPERM
}

func (d *snapDir) Link(ctx context.Context, target gofs.InodeEmbedder, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EPERM
}

func (d *snapDir) Unlink(ctx context.Context, name string) syscall.Errno { return syscall.EPERM }

func (d *snapDir) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	return syscall.EPERM
}

func (d *snapDir) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return syscall.EPERM
}

// closeViews releases the snapshots' views (at unmount).
func (d *snapDir) closeViews() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for n, v := range d.views {
		v.Close()
		delete(d.views, n)
	}
}
