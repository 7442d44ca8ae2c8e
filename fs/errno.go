package fs

import (
	"context"
	"errors"
	"log"
	"syscall"

	"vosfs/vos"
)

// errCorrupt marks a record of the filesystem that does not decode.
var errCorrupt = errors.New("vosfs: corrupt filesystem record")

// toErrno maps an error of the layers below to the errno the kernel gets.
// It is the one place where storage errors become POSIX errors.
func (f *FS) toErrno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	switch {
	case errors.Is(err, vos.ErrFailed):
		// The pool stopped: every operation gets EIO, whatever the
		// host's errno was (a full host disk's ENOSPC included: the
		// pool is stopped, not full). The pool logged the cause once
		// and shows it in its stats; it is not logged again here.
		// A shutdown (the ioctl) is such a stop too.
		f.count(func(s *Stats) { s.Errors++ })
		return syscall.EIO
	case errors.As(err, &e):
		return e
	case errors.Is(err, vos.ErrNoSpace):
		return syscall.ENOSPC
	case errors.Is(err, vos.ErrKeyTooLong):
		return syscall.ENAMETOOLONG
	case errors.Is(err, vos.ErrRange):
		return syscall.EFBIG
	case errors.Is(err, vos.ErrRecordTooLarge):
		return syscall.E2BIG
	case errors.Is(err, vos.ErrAborted):
		return syscall.EAGAIN
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return syscall.EINTR
	case errors.Is(err, vos.ErrClosed):
		return syscall.EIO
	case errors.Is(err, vos.ErrChecksum):
		// Damaged stored bytes: the store logged the place once and
		// counted it; the reader gets EIO, never the bytes.
		f.count(func(s *Stats) { s.Errors++ })
		return syscall.EIO
	}
	f.count(func(s *Stats) { s.Errors++ })
	f.logf("I/O error: %v", err)
	return syscall.EIO
}

func (f *FS) logf(format string, args ...any) {
	if f.opts.Logger != nil {
		f.opts.Logger.Printf(format, args...)
	} else {
		log.Printf(format, args...)
	}
}

func (f *FS) count(fn func(*Stats)) {
	f.mu.Lock()
	fn(&f.stats)
	f.mu.Unlock()
}
