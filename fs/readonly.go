package fs

import "context"

// readOnly reports whether the filesystem refuses changes now: mounted
// with ReadOnly, or switched by SetReadOnly since.
func (f *FS) readOnly() bool { return f.ro.Load() }

// ReadOnly reports whether the filesystem is read-only now.
func (f *FS) ReadOnly() bool { return f.readOnly() }

// SetReadOnly switches the mounted filesystem to read-only or back, as a
// remount does (the kernel's flag is the caller's to change): once
// read-only, every change is refused with EROFS, reads leave access times
// alone and background aggregation pauses. Going read-write the first
// time on a filesystem mounted read-only removes the files a crash left
// orphaned, as a read-write mount does.
func (f *FS) SetReadOnly(ro bool) error {
	f.roMu.Lock()
	defer f.roMu.Unlock()
	f.ro.Store(ro)
	if !ro && !f.reaped {
		if err := f.reapOrphans(context.Background()); err != nil {
			f.ro.Store(true)
			return err
		}
		f.reaped = true
	}
	return nil
}

// blksize is the st_blksize files report.
func (f *FS) blksize() uint32 {
	if f.opts.BlockSize <= 0 {
		return DefaultBlockSize
	}
	return uint32(f.opts.BlockSize)
}
