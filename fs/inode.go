package fs

import (
	"encoding/binary"
	"fmt"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"vosfs/vos"
)

// Keys of an inode's object. Attributes are split so that what many
// operations bump at once (times, link count, size grown by writes) can
// change through merge operators without conflicts.
var (
	dkeyInode = []byte("i")
	dkeyData  = []byte("d")
	akeyAttr  = []byte("a") // mode, uid, gid, rdev, parent directory
	akeySize  = []byte("s") // u64: Put by truncate, max-merged by writes
	akeyLinks = []byte("n") // u64: add64-merged by link and unlink
	akeyTimes = []byte("t") // atime, mtime, ctime: Put, or max-merged
	akeyLink  = []byte("l") // symlink target
	akeyEntry = []byte("")  // a directory entry's value; an xattr's value
)

func attrPath(oid uint64) vos.Path  { return vos.Path{OID: oid, Dkey: dkeyInode, Akey: akeyAttr} }
func sizePath(oid uint64) vos.Path  { return vos.Path{OID: oid, Dkey: dkeyInode, Akey: akeySize} }
func linksPath(oid uint64) vos.Path { return vos.Path{OID: oid, Dkey: dkeyInode, Akey: akeyLinks} }
func timesPath(oid uint64) vos.Path { return vos.Path{OID: oid, Dkey: dkeyInode, Akey: akeyTimes} }
func linkPath(oid uint64) vos.Path  { return vos.Path{OID: oid, Dkey: dkeyInode, Akey: akeyLink} }
func dataPath(oid uint64) vos.Path  { return vos.Path{OID: oid, Dkey: dkeyData, Akey: akeyEntry} }
func entryPath(dir uint64, name string) vos.Path {
	return vos.Path{OID: dir | entriesBit, Dkey: []byte(name), Akey: akeyEntry}
}
func xattrPath(oid uint64, name string) vos.Path {
	return vos.Path{OID: oid | xattrBit, Dkey: []byte(name), Akey: akeyEntry}
}

// inode is the "a" attribute record: mode u32, uid u32, gid u32, rdev u32,
// parent u64 (a directory's parent, for rename's loop check and "..").
type inode struct {
	mode, uid, gid, rdev uint32
	parent               uint64
}

func (a inode) encode() []byte {
	b := make([]byte, 24)
	binary.LittleEndian.PutUint32(b, a.mode)
	binary.LittleEndian.PutUint32(b[4:], a.uid)
	binary.LittleEndian.PutUint32(b[8:], a.gid)
	binary.LittleEndian.PutUint32(b[12:], a.rdev)
	binary.LittleEndian.PutUint64(b[16:], a.parent)
	return b
}

func decodeInode(b []byte) (inode, error) {
	if len(b) != 24 {
		return inode{}, fmt.Errorf("%w: inode record of %d bytes", errCorrupt, len(b))
	}
	le := binary.LittleEndian
	return inode{le.Uint32(b), le.Uint32(b[4:]), le.Uint32(b[8:]), le.Uint32(b[12:]), le.Uint64(b[16:])}, nil
}

func (a inode) isDir() bool { return a.mode&syscall.S_IFMT == syscall.S_IFDIR }

// times are an inode's times in nanoseconds; a zero field in a merge
// operand leaves the field alone.
type times struct{ atime, mtime, ctime int64 }

func (t times) encode() []byte {
	b := make([]byte, 24)
	binary.LittleEndian.PutUint64(b, uint64(t.atime))
	binary.LittleEndian.PutUint64(b[8:], uint64(t.mtime))
	binary.LittleEndian.PutUint64(b[16:], uint64(t.ctime))
	return b
}

func decodeTimes(b []byte) (times, error) {
	if len(b) != 24 {
		return times{}, fmt.Errorf("%w: times record of %d bytes", errCorrupt, len(b))
	}
	le := binary.LittleEndian
	return times{int64(le.Uint64(b)), int64(le.Uint64(b[8:])), int64(le.Uint64(b[16:]))}, nil
}

// Merge operators registered by the filesystem.
const (
	mergeTimes   = "vosfs.times" // elementwise max of times
	mergeTimesID = 16
	mergeMax     = "vosfs.max64" // max of little-endian u64
	mergeMaxID   = 17
)

func foldTimes(base []byte, exists bool, ops [][]byte) ([]byte, error) {
	var t times
	if exists {
		var err error
		if t, err = decodeTimes(base); err != nil {
			return nil, err
		}
	}
	for _, o := range ops {
		u, err := decodeTimes(o)
		if err != nil {
			return nil, err
		}
		t.atime, t.mtime, t.ctime = max(t.atime, u.atime), max(t.mtime, u.mtime), max(t.ctime, u.ctime)
	}
	return t.encode(), nil
}

func foldMax(base []byte, exists bool, ops [][]byte) ([]byte, error) {
	var m uint64
	if exists {
		if len(base) != 8 {
			return nil, fmt.Errorf("%w: max64 base of %d bytes", errCorrupt, len(base))
		}
		m = binary.LittleEndian.Uint64(base)
	}
	for _, o := range ops {
		if len(o) != 8 {
			return nil, fmt.Errorf("%w: max64 operand of %d bytes", errCorrupt, len(o))
		}
		m = max(m, binary.LittleEndian.Uint64(o))
	}
	return binary.LittleEndian.AppendUint64(nil, m), nil
}

func u64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

// entry is a directory entry's value: the child's object and file type.
type entry struct {
	oid  uint64
	mode uint32 // S_IFMT bits
}

func (e entry) encode() []byte {
	b := binary.LittleEndian.AppendUint64(nil, e.oid)
	return binary.LittleEndian.AppendUint32(b, e.mode)
}

func decodeEntry(b []byte) (entry, error) {
	if len(b) != 12 {
		return entry{}, fmt.Errorf("%w: directory entry of %d bytes", errCorrupt, len(b))
	}
	return entry{binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint32(b[8:])}, nil
}

// putInode writes every attribute of a new inode.
func putInode(tx *vos.Tx, oid uint64, a inode, nlink uint64, now time.Time) error {
	ns := now.UnixNano()
	for _, kv := range []struct {
		p vos.Path
		v []byte
	}{
		{attrPath(oid), a.encode()},
		{sizePath(oid), u64(0)},
		{linksPath(oid), u64(nlink)},
		{timesPath(oid), times{ns, ns, ns}.encode()},
	} {
		if err := tx.Put(kv.p, kv.v); err != nil {
			return err
		}
	}
	return nil
}

// touch merges new times into oid (zero fields are left alone).
func touch(tx *vos.Tx, oid uint64, t times) error {
	return tx.Merge(timesPath(oid), mergeTimes, t.encode())
}

// addLinks changes oid's link count by delta.
func addLinks(tx *vos.Tx, oid uint64, delta int64) error {
	return tx.Merge(linksPath(oid), vos.MergeAdd64, u64(uint64(delta)))
}

// attrs is everything Getattr reports.
type attrs struct {
	inode
	size   uint64
	nlink  uint64
	stored uint64 // regular files read through a view: bytes their data takes (vos Allocated)
	times
}

// getter reads values: a vos.View or a vos.Tx.
type getter interface {
	Get(p vos.Path) ([]byte, bool, error)
}

// loadInode reads an inode's mode, owner and parent — not its size, link
// count or times, which concurrent operations change through merges: a
// transaction that reads only this does not conflict with them.
func loadInode(g getter, oid uint64) (inode, error) {
	b, ok, err := g.Get(attrPath(oid))
	if err != nil {
		return inode{}, err
	}
	if !ok {
		return inode{}, syscall.ENOENT
	}
	return decodeInode(b)
}

// loadAttrs reads an inode's attributes; ENOENT if it has none.
func loadAttrs(g getter, oid uint64) (attrs, error) {
	var a attrs
	var err error
	if a.inode, err = loadInode(g, oid); err != nil {
		return a, err
	}
	for _, f := range []struct {
		p   vos.Path
		dst *uint64
	}{{sizePath(oid), &a.size}, {linksPath(oid), &a.nlink}} {
		b, ok, err := g.Get(f.p)
		if err != nil {
			return a, err
		}
		if ok && len(b) == 8 {
			*f.dst = binary.LittleEndian.Uint64(b)
		}
	}
	if a.times, err = loadTimes(g, oid); err != nil {
		return a, err
	}
	// What stat reports, so through views only: transactions read
	// attributes to change them.
	if v, ok := g.(*vos.View); ok && a.mode&syscall.S_IFMT == syscall.S_IFREG {
		a.stored, err = v.Allocated(dataPath(oid))
	}
	return a, err
}

// loadTimes reads an inode's times (zero if it has none).
func loadTimes(g getter, oid uint64) (times, error) {
	b, ok, err := g.Get(timesPath(oid))
	if err != nil || !ok {
		return times{}, err
	}
	return decodeTimes(b)
}

func (a attrs) fill(oid uint64, blksize uint32, out *fuse.Attr) {
	out.Ino = oid
	out.Mode = a.mode
	out.Uid, out.Gid = a.uid, a.gid
	out.Rdev = a.rdev
	out.Nlink = uint32(a.nlink)
	out.Size = a.size
	// st_blocks: 512-byte units of what the data takes (holes take
	// nothing, bytes kept in the heap count as they are); other inodes
	// keep theirs in the heap, and report their size.
	out.Blocks = (a.size + 511) / 512
	if a.mode&syscall.S_IFMT == syscall.S_IFREG {
		out.Blocks = (a.stored + 511) / 512
	}
	out.Blksize = blksize
	set := func(ns int64, sec *uint64, nsec *uint32) {
		*sec, *nsec = uint64(ns/1e9), uint32(ns%1e9)
	}
	set(a.atime, &out.Atime, &out.Atimensec)
	set(a.mtime, &out.Mtime, &out.Mtimensec)
	set(a.ctime, &out.Ctime, &out.Ctimensec)
}
