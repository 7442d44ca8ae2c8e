package btree

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"vosfs/umem"
)

// Node layout (NodeSize bytes, little-endian):
//
//	[0:8)    link     internal: heap offset of the leftmost child; leaf: 0
//	[8]      kind     kindLeaf or kindInternal
//	[9]      level    0 for leaves, the height above the leaves otherwise
//	[10:12)  count    number of entries
//	[12:14)  low      start of the record area: records lie in [low, NodeSize)
//	[14:16)  garbage  bytes of holes (dead records) inside [low, NodeSize)
//	[16:16+2*count)   slots: u16 record offsets, in key order
//	[16+2*count:low)  free
//	[low:NodeSize)    records and holes
//
// A record is: key length u16, key, value. A leaf's values are the tree's
// ValueSize bytes; an internal node's are the u64 heap offset of the child
// holding the keys from the record's key up to the next record's key.
//
// The header fields that inserts and deletes change (count, low, garbage)
// sit right before the slots, so that they and a short slot shift are logged
// as one range.
const (
	offLink    = 0
	offKind    = 8
	offLevel   = 9
	offCount   = 10
	offLow     = 12
	offGarbage = 14
	hdrSize    = 16

	slotSize  = 2
	recHead   = 2
	childSize = 8

	kindLeaf     = 0x4c // 'L'
	kindInternal = 0x49 // 'I'
)

var le = binary.LittleEndian

// node is a decoded view of a node: b holds its NodeSize bytes (aliasing the
// heap, or a scratch image), the other fields are its checked header.
type node struct {
	b       []byte
	off     uint64 // heap offset
	n       int    // entries
	low     int    // start of the record area
	garbage int    // bytes of holes
	level   int    // 0 for leaves
	vs      int    // value bytes per record
}

func (nd *node) leaf() bool { return nd.level == 0 }

// slotsEnd is the end of the slot array.
func (nd *node) slotsEnd() int { return hdrSize + slotSize*nd.n }

// link is the leftmost child of an internal node.
func (nd *node) link() uint64 { return le.Uint64(nd.b[offLink:]) }

func corruptf(off uint64, format string, args ...any) error {
	return fmt.Errorf("%w: node at %d: %s", ErrCorrupt, off, fmt.Sprintf(format, args...))
}

// readNode reads and checks the header of the node at off. valueSize is the
// tree's value size, used if the node is a leaf.
func readNode(r umem.Reader, off uint64, valueSize int) (node, error) {
	if off == 0 {
		return node{}, corruptf(off, "null child pointer")
	}
	b, err := r.Bytes(off, NodeSize)
	if err != nil {
		return node{}, fmt.Errorf("%w: node at %d: %w", ErrCorrupt, off, err)
	}
	return parseNode(b, off, valueSize)
}

// parseNode checks the header of the node image b (NodeSize bytes).
func parseNode(b []byte, off uint64, valueSize int) (node, error) {
	if len(b) != NodeSize {
		return node{}, corruptf(off, "%d bytes", len(b))
	}
	nd := node{
		b:       b,
		off:     off,
		n:       int(le.Uint16(b[offCount:])),
		low:     int(le.Uint16(b[offLow:])),
		garbage: int(le.Uint16(b[offGarbage:])),
		level:   int(b[offLevel]),
	}
	switch b[offKind] {
	case kindLeaf:
		if nd.level != 0 {
			return node{}, corruptf(off, "leaf at level %d", nd.level)
		}
		if nd.link() != 0 {
			return node{}, corruptf(off, "leaf with a child pointer")
		}
		// An empty leaf is freed at once, so none is ever read: taking
		// one for corruption also bounds the work of a walk through a
		// damaged tree by the entries it returns.
		if nd.n == 0 {
			return node{}, corruptf(off, "empty leaf")
		}
		nd.vs = valueSize
	case kindInternal:
		if nd.level == 0 || nd.level > maxLevel {
			return node{}, corruptf(off, "internal node at level %d", nd.level)
		}
		if nd.link() == 0 {
			return node{}, corruptf(off, "internal node without a leftmost child")
		}
		nd.vs = childSize
	default:
		return node{}, corruptf(off, "kind %#x", b[offKind])
	}
	if nd.low > NodeSize || nd.slotsEnd() > nd.low {
		return node{}, corruptf(off, "%d entries with records from %d", nd.n, nd.low)
	}
	if nd.garbage > NodeSize-nd.low || NodeSize-nd.low-nd.garbage < nd.n*(recHead+nd.vs) {
		return node{}, corruptf(off, "%d bytes of holes in %d bytes of records for %d entries", nd.garbage, NodeSize-nd.low, nd.n)
	}
	return nd, nil
}

// slot is the offset of record i (0 <= i < n), unchecked.
func (nd *node) slot(i int) int { return int(le.Uint16(nd.b[hdrSize+slotSize*i:])) }

// record locates record i (0 <= i < n) and checks that it lies inside the
// record area.
func (nd *node) record(i int) (off, klen int, err error) { return nd.recordIn(nd.b, i) }

// recordIn is record with the records read from recs: nd.b, or the heap
// bytes of a node whose slots are being edited in nd.b.
func (nd *node) recordIn(recs []byte, i int) (off, klen int, err error) {
	off = nd.slot(i)
	if off < nd.low || off > NodeSize-recHead {
		return 0, 0, corruptf(nd.off, "entry %d at %d, records in [%d, %d)", i, off, nd.low, NodeSize)
	}
	klen = int(le.Uint16(recs[off:]))
	if klen > MaxKeySize || off+recHead+klen+nd.vs > NodeSize {
		return 0, 0, corruptf(nd.off, "entry %d at %d with a key of %d bytes", i, off, klen)
	}
	return off, klen, nil
}

// recSize is the size of a record holding a key of klen bytes.
func (nd *node) recSize(klen int) int { return recHead + klen + nd.vs }

// key returns key i.
func (nd *node) key(i int) ([]byte, error) {
	off, klen, err := nd.record(i)
	if err != nil {
		return nil, err
	}
	return nd.b[off+recHead : off+recHead+klen : off+recHead+klen], nil
}

// entry returns key and value i.
func (nd *node) entry(i int) (k, v []byte, err error) {
	off, klen, err := nd.record(i)
	if err != nil {
		return nil, nil, err
	}
	k = nd.b[off+recHead : off+recHead+klen : off+recHead+klen]
	vo := off + recHead + klen
	return k, nd.b[vo : vo+nd.vs : vo+nd.vs], nil
}

// valueOff is the offset in the node of value i.
func (nd *node) valueOff(i int) (int, error) {
	off, klen, err := nd.record(i)
	if err != nil {
		return 0, err
	}
	return off + recHead + klen, nil
}

// child returns child c of an internal node: the leftmost child for c = -1,
// else the child of entry c.
func (nd *node) child(c int) (uint64, error) {
	if c < 0 {
		return nd.link(), nil
	}
	vo, err := nd.valueOff(c)
	if err != nil {
		return 0, err
	}
	return le.Uint64(nd.b[vo:]), nil
}

// search returns the first index whose key is >= key, and whether that key
// equals key.
func (nd *node) search(key []byte) (int, bool, error) {
	lo, hi := 0, nd.n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		k, err := nd.key(m)
		if err != nil {
			return 0, false, err
		}
		switch c := bytes.Compare(k, key); {
		case c < 0:
			lo = m + 1
		case c > 0:
			hi = m
		default:
			return m, true, nil
		}
	}
	return lo, false, nil
}

// childFor returns the index of the child whose range holds key: -1 for the
// leftmost child, else the entry with the greatest separator <= key.
func (nd *node) childFor(key []byte) (int, error) {
	i, eq, err := nd.search(key)
	if err != nil {
		return 0, err
	}
	if eq {
		return i, nil
	}
	return i - 1, nil
}

// descend reads the child c of internal node nd and checks its level.
func (nd *node) descend(r umem.Reader, c int, valueSize int) (node, error) {
	off, err := nd.child(c)
	if err != nil {
		return node{}, err
	}
	ch, err := readNode(r, off, valueSize)
	if err != nil {
		return node{}, err
	}
	if ch.level != nd.level-1 {
		return node{}, corruptf(off, "level %d below a node of level %d at %d", ch.level, nd.level, nd.off)
	}
	return ch, nil
}
