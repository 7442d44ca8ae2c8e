package fs

import "syscall"

// writeBackCached has the kernel write back the dirty pages it holds of
// the file from offset off on, so that what was written through a
// mapping (or, with the writeback cache, by write(2)) and not yet written
// back is in the store before SEEK_DATA and SEEK_HOLE look for holes.
// The kernel gets no request for such pages until it writes them back,
// and does not write them back before asking for an lseek; the
// invalidation of a range (FUSE_NOTIFY_INVAL_INODE) does: it launders
// each dirty page with a WRITE, served by another of the daemon's
// threads, before it returns. Clean pages of the range are dropped with
// them and read again when next needed.
func (n *node) writeBackCached(off uint64) syscall.Errno {
	if n.snap != nil {
		return 0 // read-only: nothing is dirty
	}
	switch errno := n.NotifyContent(int64(off), 0); errno {
	case 0, syscall.ENOENT: // ENOENT: the kernel holds nothing of it
		return 0
	default:
		return errno
	}
}
