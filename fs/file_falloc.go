package fs

import (
	"syscall"

	"vosfs/vos"
)

// fallocFits refuses with ENOSPC an fallocate (mode 0 or KEEP_SIZE) of
// [off, end) whose holes need more data blocks than the pool has free
// (what statfs reports available), as Linux's filesystems refuse one
// larger than their free space; the file is left as it was. Bytes that
// already hold data need nothing. The check does not hold the space
// for the file: a later write, by this file or another, may still find
// the pool full (see README, Limits).
func (n *node) fallocFits(off, end uint64) syscall.Errno {
	var need uint64
	errno := n.view(func(v *vos.View) error {
		segs, err := v.Segments(dataPath(n.oid), off, end-off)
		if err != nil {
			return err
		}
		covered := off
		for _, s := range segs {
			if s.Off > covered { // not described: a hole
				need += blocksOf(covered, s.Off)
			}
			if s.Hole {
				need += blocksOf(s.Off, s.Off+s.Len)
			}
			covered = max(covered, s.Off+s.Len)
		}
		if covered < end {
			need += blocksOf(covered, end)
		}
		return nil
	})
	if errno != 0 {
		return errno
	}
	st := n.fs.p.Stats()
	if need > st.Data.Free+st.Data.Aging {
		return syscall.ENOSPC
	}
	return 0
}

// blocksOf is the number of 4 KiB data blocks [from, to) touches.
func blocksOf(from, to uint64) uint64 {
	if to <= from {
		return 0
	}
	return (to+4095)/4096 - from/4096
}
