package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime/debug"
	"unsafe"

	"golang.org/x/sys/unix"
)

// execOp issues op in the mount and returns its result: "ok", the errno's
// name, SHORT for a short write or SIGBUS for a fault in a mapping. data
// is what a write or setxattr stores.
func execOp(mnt string, op *Op, data []byte) string {
	p := filepath.Join(mnt, op.Path)
	switch op.Kind {
	case kCreate:
		fd, err := unix.Open(p, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return errName(err)
		}
		unix.Close(fd)
		return resOK
	case kWrite:
		return withFile(p, unix.O_WRONLY, func(fd int) string { return pwrite(fd, data, op.Off) })
	case kDWrite:
		buf := alignedBuffer(len(data))
		copy(buf, data)
		return withFile(p, unix.O_WRONLY|unix.O_DIRECT, func(fd int) string { return pwrite(fd, buf, op.Off) })
	case kMWrite:
		return withFile(p, unix.O_RDWR, func(fd int) string { return mmapWrite(fd, op.Off, data) })
	case kTruncate:
		return errName(unix.Truncate(p, op.Len))
	case kFalloc:
		return withFile(p, unix.O_WRONLY, func(fd int) string {
			return errName(unix.Fallocate(fd, uint32(op.Flags), op.Off, op.Len))
		})
	case kRename:
		return errName(unix.Renameat2(unix.AT_FDCWD, p, unix.AT_FDCWD, filepath.Join(mnt, op.Path2), uint(op.Flags)))
	case kLink:
		return errName(unix.Link(p, filepath.Join(mnt, op.Path2)))
	case kUnlink:
		return errName(unix.Unlink(p))
	case kMkdir:
		return errName(unix.Mkdir(p, 0o755))
	case kRmdir:
		return errName(unix.Rmdir(p))
	case kSetxattr:
		return errName(unix.Setxattr(p, op.Name, data, 0))
	case kFsync:
		return withFile(p, unix.O_RDONLY, func(fd int) string { return errName(unix.Fsync(fd)) })
	case kFdatasync:
		return withFile(p, unix.O_RDONLY, func(fd int) string { return errName(unix.Fdatasync(fd)) })
	case kSyncfs:
		return withFile(p, unix.O_RDONLY|unix.O_DIRECTORY, func(fd int) string { return errName(unix.Syncfs(fd)) })
	}
	panic("unknown kind " + op.Kind)
}

// withFile opens p, runs fn and closes it. A failed close makes the
// result its error: with the kernel writeback cache a write(2) only fills
// the page cache and the close writes the pages back, so the write is
// done when the close is.
func withFile(p string, flags int, fn func(fd int) string) string {
	fd, err := unix.Open(p, flags|unix.O_CLOEXEC, 0)
	if err != nil {
		return errName(err)
	}
	res := fn(fd)
	if err := unix.Close(fd); err != nil && res == resOK {
		return errName(err)
	}
	return res
}

func pwrite(fd int, p []byte, off int64) string {
	n, err := unix.Pwrite(fd, p, off)
	switch {
	case err != nil:
		return errName(err)
	case n != len(p):
		return resShort
	}
	return resOK
}

// mmapWrite stores p at off through a shared mapping of the page holding
// off, then msyncs it.
func mmapWrite(fd int, off int64, p []byte) string {
	page := off / pageSize * pageSize
	mem, err := unix.Mmap(fd, page, pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return errName(err)
	}
	defer unix.Munmap(mem)
	if !storeNoFault(mem[off-page:], p) {
		return resFault
	}
	return errName(unix.Msync(mem, unix.MS_SYNC))
}

// storeNoFault copies src to dst, a mapping, reporting false instead of
// crashing when the page cannot be read in (SIGBUS: the daemon is dead).
func storeNoFault(dst, src []byte) (ok bool) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	copy(dst, src)
	return true
}

// alignedBuffer returns n bytes aligned for O_DIRECT.
func alignedBuffer(n int) []byte {
	raw := make([]byte, n+pageSize)
	skip := (pageSize - int(uintptr(unsafe.Pointer(unsafe.SliceData(raw)))%pageSize)) % pageSize
	return raw[skip : skip+n]
}

// errName is "ok" for nil, else the errno's name.
func errName(err error) string {
	if err == nil {
		return resOK
	}
	var e unix.Errno
	if errors.As(err, &e) {
		if name := unix.ErrnoName(e); name != "" {
			return name
		}
		return fmt.Sprintf("ERRNO%d", int(e))
	}
	return "ERROR(" + err.Error() + ")"
}
