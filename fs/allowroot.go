package fs

import "github.com/hanwen/go-fuse/v2/fuse"

// allowRootFS is the filesystem as allow_root serves it: the kernel lets
// every user in (allow_other), and every request of a user other than
// root and the mounter is refused with EACCES, except those on files
// already open (read, write, fsync, release, readdir), as libfuse does.
type allowRootFS struct {
	fuse.RawFileSystem
	owner uint32 // the mounter's user ID
}

// denied reports whether the caller of h is kept out.
func (a *allowRootFS) denied(h *fuse.InHeader) bool {
	return h.Uid != 0 && h.Uid != a.owner
}

func (a *allowRootFS) Lookup(c <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	if a.denied(h) {
		return fuse.EACCES
	}
	return a.RawFileSystem.Lookup(c, h, name, out)
}

func (a *allowRootFS) GetAttr(c <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	if a.denied(&in.InHeader) {
		return fuse.EACCES
	}
	return a.RawFileSystem.GetAttr(c, in, out)
}

func (a *allowRootFS) SetAttr(c <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	if a.denied(&in.InHeader) {
		return fuse.EACCES
	}
	return a.RawFileSystem.SetAttr(c, in, out)
}

func (a *allowRootFS) Mknod(c <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	if a.denied(&in.InHeader) {
		return fuse.EACCES
	}
	return a.RawFileSystem.Mknod(c, in, name, out)
}

func (a *allowRootFS) Mkdir(c <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	if a.denied(&in.InHeader) {
		return fuse.EACCES
	}
	return a.RawFileSystem.Mkdir(c, in, name, out)
}

func (a *allowRootFS) Unlink(c <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	if a.denied(h) {
		return fuse.EACCES
	}
	return a.RawFileSystem.Unlink(c, h, name)
}

func (a *allowRootFS) Rmdir(c <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	if a.denied(h) {
		return fuse.EACCES
	}
	return a.RawFileSystem.Rmdir(c, h, name)
}

func (a *allowRootFS) Rename(c <-chan struct{}, in *fuse.RenameIn, oldName, newName string) fuse.Status {
	if a.denied(&in.InHeader) {
		return fuse.EACCES
	}
	return a.RawFileSystem.Rename(c, in, oldName, newName)
}

func (a *allowRootFS) Link(c <-chan struct{}, in *fuse.LinkIn, name string, out *fuse.EntryOut) fuse.Status {
	if a.denied(&in.InHeader) {
		return fuse.EACCES
	}
	return a.RawFileSystem.Link(c, in, name, out)
}

func (a *allowRootFS) Symlink(c <-chan struct{}, h *fuse.InHeader, target, name string, out *fuse.EntryOut) fuse.Status {
	if a.denied(h) {
		return fuse.EACCES
	}
	return a.RawFileSystem.Symlink(c, h, target, name, out)
}

func (a *allowRootFS) Readlink(c <-chan struct{}, h *fuse.InHeader) ([]byte, fuse.Status) {
	if a.denied(h) {
		return nil, fuse.EACCES
	}
	return a.RawFileSystem.Readlink(c, h)
}

func (a *allowRootFS) Access(c <-chan struct{}, in *fuse.AccessIn) fuse.Status {
	if a.denied(&in.InHeader) {
		return fuse.EACCES
	}
	return a.RawFileSystem.Access(c, in)
}

func (a *allowRootFS) GetXAttr(c <-chan struct{}, h *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	if a.denied(h) {
		return 0, fuse.EACCES
	}
	return a.RawFileSystem.GetXAttr(c, h, attr, dest)
}

func (a *allowRootFS) ListXAttr(c <-chan struct{}, h *fuse.InHeader, dest []byte) (uint32, fuse.Status) {
	if a.denied(h) {
		return 0, fuse.EACCES
	}
	return a.RawFileSystem.ListXAttr(c, h, dest)
}

func (a *allowRootFS) SetXAttr(c <-chan struct{}, in *fuse.SetXAttrIn, attr string, data []byte) fuse.Status {
	if a.denied(&in.InHeader) {
		return fuse.EACCES
	}
	return a.RawFileSystem.SetXAttr(c, in, attr, data)
}

func (a *allowRootFS) RemoveXAttr(c <-chan struct{}, h *fuse.InHeader, attr string) fuse.Status {
	if a.denied(h) {
		return fuse.EACCES
	}
	return a.RawFileSystem.RemoveXAttr(c, h, attr)
}

func (a *allowRootFS) Create(c <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	if a.denied(&in.InHeader) {
		return fuse.EACCES
	}
	return a.RawFileSystem.Create(c, in, name, out)
}

func (a *allowRootFS) Tmpfile(c <-chan struct{}, in *fuse.CreateIn, out *fuse.CreateOut) fuse.Status {
	if a.denied(&in.InHeader) {
		return fuse.EACCES
	}
	return a.RawFileSystem.Tmpfile(c, in, out)
}

func (a *allowRootFS) Open(c <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	if a.denied(&in.InHeader) {
		return fuse.EACCES
	}
	return a.RawFileSystem.Open(c, in, out)
}

func (a *allowRootFS) OpenDir(c <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	if a.denied(&in.InHeader) {
		return fuse.EACCES
	}
	return a.RawFileSystem.OpenDir(c, in, out)
}

func (a *allowRootFS) Lseek(c <-chan struct{}, in *fuse.LseekIn, out *fuse.LseekOut) fuse.Status {
	if a.denied(&in.InHeader) {
		return fuse.EACCES
	}
	return a.RawFileSystem.Lseek(c, in, out)
}

func (a *allowRootFS) GetLk(c <-chan struct{}, in *fuse.LkIn, out *fuse.LkOut) fuse.Status {
	if a.denied(&in.InHeader) {
		return fuse.EACCES
	}
	return a.RawFileSystem.GetLk(c, in, out)
}

func (a *allowRootFS) SetLk(c <-chan struct{}, in *fuse.LkIn) fuse.Status {
	if a.denied(&in.InHeader) {
		return fuse.EACCES
	}
	return a.RawFileSystem.SetLk(c, in)
}

func (a *allowRootFS) SetLkw(c <-chan struct{}, in *fuse.LkIn) fuse.Status {
	if a.denied(&in.InHeader) {
		return fuse.EACCES
	}
	return a.RawFileSystem.SetLkw(c, in)
}

func (a *allowRootFS) CopyFileRange(c <-chan struct{}, in *fuse.CopyFileRangeIn) (uint32, fuse.Status) {
	if a.denied(&in.InHeader) {
		return 0, fuse.EACCES
	}
	return a.RawFileSystem.CopyFileRange(c, in)
}

func (a *allowRootFS) Ioctl(c <-chan struct{}, in *fuse.IoctlIn, inbuf []byte, out *fuse.IoctlOut, outbuf []byte) fuse.Status {
	if a.denied(&in.InHeader) {
		return fuse.EACCES
	}
	return a.RawFileSystem.Ioctl(c, in, inbuf, out, outbuf)
}

func (a *allowRootFS) Flush(c <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	if a.denied(&in.InHeader) {
		return fuse.EACCES
	}
	return a.RawFileSystem.Flush(c, in)
}

func (a *allowRootFS) Fallocate(c <-chan struct{}, in *fuse.FallocateIn) fuse.Status {
	if a.denied(&in.InHeader) {
		return fuse.EACCES
	}
	return a.RawFileSystem.Fallocate(c, in)
}

func (a *allowRootFS) StatFs(c <-chan struct{}, h *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	if a.denied(h) {
		return fuse.EACCES
	}
	return a.RawFileSystem.StatFs(c, h, out)
}

func (a *allowRootFS) Statx(c <-chan struct{}, in *fuse.StatxIn, out *fuse.StatxOut) fuse.Status {
	if a.denied(&in.InHeader) {
		return fuse.EACCES
	}
	return a.RawFileSystem.Statx(c, in, out)
}
