package fs

import (
	"errors"
	"fmt"
	"syscall"
)

// ErrInconsistent is wrapped by every problem Check finds in the namespace.
var ErrInconsistent = errors.New("vosfs: inconsistent")

// Check runs every checker: the pool's and the store's, then the
// namespace: every entry names a live inode of the type it says, every
// directory's ".." and link count are right, every file's link count is
// the number of entries naming it (zero for an orphan), and every inode is
// reachable from the root or an orphan. Call it with the filesystem idle;
// background aggregation waits for it.
func (f *FS) Check() error {
	f.aggMu.Lock()
	defer f.aggMu.Unlock()
	var errs []error
	if err := f.s.Check(); err != nil {
		errs = append(errs, err)
	}
	bad := func(format string, args ...any) {
		if len(errs) < 100 {
			errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInconsistent}, args...)...))
		}
	}
	v := f.s.Latest()
	defer v.Close()
	refs := map[uint64]uint64{} // inode -> entries naming it
	seen := map[uint64]bool{RootOID: true}
	queue := []uint64{RootOID}
	for len(queue) > 0 {
		dir := queue[0]
		queue = queue[1:]
		da, err := loadAttrs(v, dir)
		if err != nil {
			bad("directory %d: %v", dir, err)
			continue
		}
		subdirs := uint64(0)
		var names []string
		if err := v.ListDkeys(dir|entriesBit, nil, false, 0, func(k []byte) bool {
			names = append(names, string(k))
			return true
		}); err != nil {
			return errors.Join(append(errs, err)...)
		}
		for _, name := range names {
			b, ok, err := v.Get(entryPath(dir, name))
			if err != nil || !ok {
				bad("directory %d entry %q unreadable: %v", dir, name, err)
				continue
			}
			e, err := decodeEntry(b)
			if err != nil {
				bad("directory %d entry %q: %v", dir, name, err)
				continue
			}
			a, err := loadAttrs(v, e.oid)
			if errors.Is(err, syscall.ENOENT) {
				bad("directory %d entry %q names missing inode %d", dir, name, e.oid)
				continue
			}
			if err != nil {
				bad("inode %d: %v", e.oid, err)
				continue
			}
			if a.mode&syscall.S_IFMT != e.mode {
				bad("directory %d entry %q says type %o, inode %d is %o", dir, name, e.mode, e.oid, a.mode&syscall.S_IFMT)
			}
			refs[e.oid]++
			if a.isDir() {
				subdirs++
				if a.parent != dir {
					bad("directory %d (%q in %d) has parent %d", e.oid, name, dir, a.parent)
				}
				if seen[e.oid] {
					bad("directory %d has more than one entry", e.oid)
					continue
				}
				seen[e.oid] = true
				queue = append(queue, e.oid)
			} else {
				seen[e.oid] = true
			}
		}
		if da.nlink != 2+subdirs {
			bad("directory %d has link count %d, want %d", dir, da.nlink, 2+subdirs)
		}
	}
	orphans := map[uint64]bool{}
	if err := v.ListDkeys(orphanOID, nil, false, 0, func(k []byte) bool {
		orphans[le(k)] = true
		return true
	}); err != nil {
		errs = append(errs, err)
	}
	for oid, n := range refs {
		a, err := loadAttrs(v, oid)
		if err != nil || a.isDir() {
			continue
		}
		if a.nlink != n {
			bad("inode %d has link count %d but %d entries", oid, a.nlink, n)
		}
	}
	inodes := uint64(len(seen))
	for oid := range orphans {
		if !seen[oid] {
			inodes++
		}
	}
	if b, ok, err := v.Get(inodeCountPath()); err != nil || !ok || len(b) != 8 {
		bad("inode count unreadable (%v, present %v)", err, ok)
	} else if le(b) != inodes {
		bad("inode count is %d, %d inodes found", le(b), inodes)
	}
	if err := v.ListObjects(func(oid uint64) bool {
		base := oid &^ (entriesBit | xattrBit)
		switch {
		case oid == orphanOID:
		case orphans[base]:
			if a, err := loadAttrs(v, base); err != nil || a.nlink != 0 {
				bad("orphan %d has link count %d (%v)", base, a.nlink, err)
			}
		case !seen[base]:
			bad("object %d belongs to no reachable inode (leaked)", oid)
		}
		return true
	}); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
