package fs

import (
	"github.com/hanwen/go-fuse/v2/fuse"
)

// gate stands between the kernel and the node filesystem: once the
// filesystem is stopped (the shutdown ioctl, or its pool stopped on an I/O
// error) every request gets EIO at once, reads, stats,
// lookups and listings included, though the state in memory could still
// answer them. What unmounting needs passes: FORGET, RELEASE, RELEASEDIR
// (their in-memory bookkeeping; what they would write fails below), INIT
// and DESTROY, and the shutdown ioctl itself, which answers 0 again.
type gate struct {
	fuse.RawFileSystem
	f *FS
}

// stopped reports whether the filesystem stopped: shut down by the ioctl,
// or its pool stopped on an I/O error (fail-stop). Both are atomic loads.
func (g *gate) stopped() bool { return g.f.stopped.Load() || g.f.s.Failed() != nil }

func (g *gate) Ioctl(cancel <-chan struct{}, in *fuse.IoctlIn, inbuf []byte, out *fuse.IoctlOut, outbuf []byte) fuse.Status {
	if g.stopped() && in.Cmd != ioctlShutdown {
		return fuse.EIO
	}
	return g.RawFileSystem.Ioctl(cancel, in, inbuf, out, outbuf)
}

func (g *gate) Lookup(cancel <-chan struct{}, header *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	if g.stopped() {
		return fuse.EIO
	}
	return g.RawFileSystem.Lookup(cancel, header, name, out)
}

func (g *gate) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	if g.stopped() {
		return fuse.EIO
	}
	return g.RawFileSystem.GetAttr(cancel, in, out)
}

func (g *gate) SetAttr(cancel <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	if g.stopped() {
		return fuse.EIO
	}
	return g.RawFileSystem.SetAttr(cancel, in, out)
}

func (g *gate) Mknod(cancel <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	if g.stopped() {
		return fuse.EIO
	}
	return g.RawFileSystem.Mknod(cancel, in, name, out)
}

func (g *gate) Mkdir(cancel <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	if g.stopped() {
		return fuse.EIO
	}
	return g.RawFileSystem.Mkdir(cancel, in, name, out)
}

func (g *gate) Unlink(cancel <-chan struct{}, header *fuse.InHeader, name string) fuse.Status {
	if g.stopped() {
		return fuse.EIO
	}
	return g.RawFileSystem.Unlink(cancel, header, name)
}

func (g *gate) Rmdir(cancel <-chan struct{}, header *fuse.InHeader, name string) fuse.Status {
	if g.stopped() {
		return fuse.EIO
	}
	return g.RawFileSystem.Rmdir(cancel, header, name)
}

func (g *gate) Rename(cancel <-chan struct{}, in *fuse.RenameIn, oldName, newName string) fuse.Status {
	if g.stopped() {
		return fuse.EIO
	}
	return g.RawFileSystem.Rename(cancel, in, oldName, newName)
}

func (g *gate) Link(cancel <-chan struct{}, in *fuse.LinkIn, name string, out *fuse.EntryOut) fuse.Status {
	if g.stopped() {
		return fuse.EIO
	}
	return g.RawFileSystem.Link(cancel, in, name, out)
}

func (g *gate) Symlink(cancel <-chan struct{}, header *fuse.InHeader, target, name string, out *fuse.EntryOut) fuse.Status {
	if g.stopped() {
		return fuse.EIO
	}
	return g.RawFileSystem.Symlink(cancel, header, target, name, out)
}

func (g *gate) Readlink(cancel <-chan struct{}, header *fuse.InHeader) ([]byte, fuse.Status) {
	if g.stopped() {
		return nil, fuse.EIO
	}
	return g.RawFileSystem.Readlink(cancel, header)
}

func (g *gate) Access(cancel <-chan struct{}, in *fuse.AccessIn) fuse.Status {
	if g.stopped() {
		return fuse.EIO
	}
	return g.RawFileSystem.Access(cancel, in)
}

func (g *gate) GetXAttr(cancel <-chan struct{}, header *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	if g.stopped() {
		return 0, fuse.EIO
	}
	return g.RawFileSystem.GetXAttr(cancel, header, attr, dest)
}

func (g *gate) ListXAttr(cancel <-chan struct{}, header *fuse.InHeader, dest []byte) (uint32, fuse.Status) {
	if g.stopped() {
		return 0, fuse.EIO
	}
	return g.RawFileSystem.ListXAttr(cancel, header, dest)
}

func (g *gate) SetXAttr(cancel <-chan struct{}, in *fuse.SetXAttrIn, attr string, data []byte) fuse.Status {
	if g.stopped() {
		return fuse.EIO
	}
	return g.RawFileSystem.SetXAttr(cancel, in, attr, data)
}

func (g *gate) RemoveXAttr(cancel <-chan struct{}, header *fuse.InHeader, attr string) fuse.Status {
	if g.stopped() {
		return fuse.EIO
	}
	return g.RawFileSystem.RemoveXAttr(cancel, header, attr)
}

func (g *gate) Create(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	if g.stopped() {
		return fuse.EIO
	}
	return g.RawFileSystem.Create(cancel, in, name, out)
}

func (g *gate) Tmpfile(cancel <-chan struct{}, in *fuse.CreateIn, out *fuse.CreateOut) fuse.Status {
	if g.stopped() {
		return fuse.EIO
	}
	return g.RawFileSystem.Tmpfile(cancel, in, out)
}

func (g *gate) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	if g.stopped() {
		return fuse.EIO
	}
	return g.RawFileSystem.Open(cancel, in, out)
}

func (g *gate) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	if g.stopped() {
		return nil, fuse.EIO
	}
	return g.RawFileSystem.Read(cancel, in, buf)
}

func (g *gate) Lseek(cancel <-chan struct{}, in *fuse.LseekIn, out *fuse.LseekOut) fuse.Status {
	if g.stopped() {
		return fuse.EIO
	}
	return g.RawFileSystem.Lseek(cancel, in, out)
}

func (g *gate) GetLk(cancel <-chan struct{}, in *fuse.LkIn, out *fuse.LkOut) fuse.Status {
	if g.stopped() {
		return fuse.EIO
	}
	return g.RawFileSystem.GetLk(cancel, in, out)
}

func (g *gate) SetLk(cancel <-chan struct{}, in *fuse.LkIn) fuse.Status {
	if g.stopped() {
		return fuse.EIO
	}
	return g.RawFileSystem.SetLk(cancel, in)
}

func (g *gate) SetLkw(cancel <-chan struct{}, in *fuse.LkIn) fuse.Status {
	if g.stopped() {
		return fuse.EIO
	}
	return g.RawFileSystem.SetLkw(cancel, in)
}

func (g *gate) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	if g.stopped() {
		return 0, fuse.EIO
	}
	return g.RawFileSystem.Write(cancel, in, data)
}

func (g *gate) Writev(cancel <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	if g.stopped() {
		return 0, fuse.EIO
	}
	return g.RawFileSystem.Writev(cancel, in, data)
}

func (g *gate) CopyFileRange(cancel <-chan struct{}, in *fuse.CopyFileRangeIn) (uint32, fuse.Status) {
	if g.stopped() {
		return 0, fuse.EIO
	}
	return g.RawFileSystem.CopyFileRange(cancel, in)
}

func (g *gate) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	if g.stopped() {
		return fuse.EIO
	}
	return g.RawFileSystem.Flush(cancel, in)
}

func (g *gate) Fsync(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	if g.stopped() {
		return fuse.EIO
	}
	return g.RawFileSystem.Fsync(cancel, in)
}

func (g *gate) Fallocate(cancel <-chan struct{}, in *fuse.FallocateIn) fuse.Status {
	if g.stopped() {
		return fuse.EIO
	}
	return g.RawFileSystem.Fallocate(cancel, in)
}

func (g *gate) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	if g.stopped() {
		return fuse.EIO
	}
	return g.RawFileSystem.OpenDir(cancel, in, out)
}

func (g *gate) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	if g.stopped() {
		return fuse.EIO
	}
	return g.RawFileSystem.ReadDir(cancel, in, out)
}

func (g *gate) ReadDirPlus(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	if g.stopped() {
		return fuse.EIO
	}
	return g.RawFileSystem.ReadDirPlus(cancel, in, out)
}

func (g *gate) FsyncDir(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	if g.stopped() {
		return fuse.EIO
	}
	return g.RawFileSystem.FsyncDir(cancel, in)
}

func (g *gate) StatFs(cancel <-chan struct{}, header *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	if g.stopped() {
		return fuse.EIO
	}
	return g.RawFileSystem.StatFs(cancel, header, out)
}

func (g *gate) Statx(cancel <-chan struct{}, in *fuse.StatxIn, out *fuse.StatxOut) fuse.Status {
	if g.stopped() {
		return fuse.EIO
	}
	return g.RawFileSystem.Statx(cancel, in, out)
}
