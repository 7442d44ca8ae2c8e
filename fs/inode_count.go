package fs

import (
	"context"
	"fmt"

	"vosfs/vos"
)

// The inode count: how many inodes the filesystem holds (orphans
// included), a 64-bit value of the root object that every create adds 1
// to and every removal of an inode 1 from, through the add merge (so the
// operations never conflict over it). statfs reports it as the files in
// use (df -i); fsck checks it against the inodes it finds.
var dkeyCounters = []byte("c")

func inodeCountPath() vos.Path {
	return vos.Path{OID: RootOID, Dkey: dkeyCounters, Akey: []byte("inodes")}
}

// inodeCost is the heap space statfs takes an inode to need when it
// estimates how many more fit (its records and directory entry: measured
// at 500 to 900 bytes with names of 10 to 200 bytes and no data).
const inodeCost = 512

func addInodes(tx *vos.Tx, delta int64) error {
	return tx.Merge(inodeCountPath(), vos.MergeAdd64, u64(uint64(delta)))
}

// inodeCount reads the inode count.
func (f *FS) inodeCount() (uint64, error) {
	v := f.s.Latest()
	defer v.Close()
	b, ok, err := v.Get(inodeCountPath())
	if err != nil {
		return 0, err
	}
	if !ok || len(b) != 8 {
		return 0, fmt.Errorf("%w: no inode count", ErrInconsistent)
	}
	return le(b), nil
}

// countInodes counts the inodes by listing the objects: an inode's own
// object (a directory's entries and an inode's xattrs are companions).
func countInodes(v *vos.View) (uint64, error) {
	var n uint64
	err := v.ListObjects(func(oid uint64) bool {
		if oid&(entriesBit|xattrBit) == 0 && oid != orphanOID {
			n++
		}
		return true
	})
	return n, err
}

// ensureInodeCount gives a pool made before the count was kept its count,
// from the objects (once, at mount: nothing else runs yet).
func (f *FS) ensureInodeCount(ctx context.Context) error {
	v := f.s.Latest()
	_, ok, err := v.Get(inodeCountPath())
	if err != nil || ok {
		v.Close()
		return err
	}
	n, err := countInodes(v)
	v.Close()
	if err != nil {
		return err
	}
	_, err = f.s.Update(ctx, vos.UpdateOptions{}, func(tx *vos.Tx) error { return tx.Put(inodeCountPath(), u64(n)) })
	return err
}
