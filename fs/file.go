package fs

import (
	"context"
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
	append bool // O_APPEND: every write goes to the end, atomically
}

// dirHandle is an open directory (for fsyncdir).
type dirHandle struct {
	n *node
	gofs.DirStream
}

var (
	_ = (gofs.FileFsyncdirer)((*dirHandle)(nil))
	_ = (gofs.FileReaddirenter)((*dirHandle)(nil))
)

func (n *node) openHandle(flags uint32) (gofs.FileHandle, uint32) {
	n.fs.mu.Lock()
	n.fs.open[n.oid]++
	n.fs.mu.Unlock()
	var fuseFlags uint32
	if flags&syscall.O_DIRECT != 0 {
		fuseFlags |= fuse.FOPEN_DIRECT_IO
	}
	return &handle{append: flags&syscall.O_APPEND != 0}, fuseFlags
}

func (f *FS) isOpen(oid uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.open[oid] > 0
}

func (n *node) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if (n.fs.opts.ReadOnly || n.snap != nil) && flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC) != 0 {
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
	fh, fuseFlags := n.openHandle(flags)
	return fh, fuseFlags, 0
}

func (n *node) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	ds, errno := n.Readdir(ctx)
	if errno != 0 {
		return nil, 0, errno
	}
	return &dirHandle{n: n, DirStream: ds}, 0, 0
}

func (d *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	if !d.HasNext() {
		return nil, 0
	}
	e, errno := d.Next()
	return &e, errno
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
	if _, ok := fh.(*handle); !ok {
		return 0
	}
	n.fs.mu.Lock()
	n.fs.open[n.oid]--
	last := n.fs.open[n.oid] <= 0
	if last {
		delete(n.fs.open, n.oid)
	}
	n.fs.mu.Unlock()
	if last {
		return n.fs.reapOrphan(ctx, n.oid)
	}
	return 0
}

func (n *node) Read(ctx context.Context, fh gofs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if off < 0 {
		return nil, syscall.EINVAL
	}
	var got int
	errno := n.view(func(v *vos.View) error {
		b, _, err := v.Get(sizePath(n.oid))
		if err != nil {
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
	errno := n.update(ctx, nil, func(tx *vos.Tx) error {
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
		return touch(tx, n.oid, nowMC())
	})
	if errno != 0 {
		return 0, errno
	}
	return uint32(len(data)), 0
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
	return n.update(ctx, nil, func(tx *vos.Tx) error {
		a, err := loadAttrs(tx, n.oid)
		if err != nil {
			return err
		}
		if a.isDir() {
			return syscall.EISDIR
		}
		if mode&(fallocPunchHole|fallocZeroRange) != 0 {
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
	if f.opts.ReadOnly {
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
	return f.update(ctx, nil, func(tx *vos.Tx) error {
		b, ok, err := tx.Get(linksPath(oid))
		if err != nil || !ok || le(b) != 0 || f.isOpen(oid) {
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
