package vos

import (
	"encoding/binary"
	"fmt"
)

// recSize is the size of a tree value: the record of one version or extent.
const recSize = 40

// inlineMax is the largest value kept inside the record itself: up to
// inlineNarrow bytes after loc, more (a file's three times) over loc too.
const (
	inlineMax    = 24
	inlineNarrow = 16
)

// Record kinds.
const (
	recInline = 1 // bytes in the record
	recHeap   = 2 // bytes in the heap at loc
	recData   = 3 // bytes in the data blob from block loc
	recPunch  = 4 // a tombstone; for a range punch [loc, size)
	// recInlineWide is how an inline value of more than inlineNarrow
	// bytes is stored: its bytes from offset 16, over loc. It decodes as
	// recInline.
	recInlineWide = 5
)

// rec is one decoded version or extent record:
//
//	kind u8 | merge u8 | 0 u16 | csum u32 | size u64 | loc u64 | inline [16]
//	kind 5  | merge u8 | 0 u16 | csum u32 | size u64 | inline [24]
type rec struct {
	kind   uint8
	merge  uint8 // merge operator of an operand, 0 for a plain value
	csum   uint32
	size   uint64 // value bytes (range punch: end)
	loc    uint64 // heap offset or first data block (range punch: start)
	inline [inlineMax]byte
}

func (r rec) encode() []byte {
	b := make([]byte, recSize)
	r.encodeTo(b)
	return b
}

// encodeTo encodes r at b[:recSize].
func (r rec) encodeTo(b []byte) {
	b[0], b[1], b[2], b[3] = r.kind, r.merge, 0, 0
	binary.LittleEndian.PutUint32(b[4:], r.csum)
	binary.LittleEndian.PutUint64(b[8:], r.size)
	if r.kind == recInline && r.size > inlineNarrow {
		b[0] = recInlineWide
		copy(b[16:], r.inline[:])
		return
	}
	binary.LittleEndian.PutUint64(b[16:], r.loc)
	copy(b[24:], r.inline[:inlineNarrow])
}

func decodeRec(b []byte) (rec, error) {
	var r rec
	if len(b) != recSize {
		return r, fmt.Errorf("vos: record of %d bytes", len(b))
	}
	r.kind, r.merge = b[0], b[1]
	r.csum = binary.LittleEndian.Uint32(b[4:])
	r.size = binary.LittleEndian.Uint64(b[8:])
	if r.kind == recInlineWide {
		r.kind = recInline
		copy(r.inline[:], b[16:])
		if r.size <= inlineNarrow || r.size > inlineMax {
			return r, fmt.Errorf("vos: wide inline record of %d bytes", r.size)
		}
		return r, nil
	}
	r.loc = binary.LittleEndian.Uint64(b[16:])
	copy(r.inline[:], b[24:])
	switch {
	case r.kind < recInline || r.kind > recPunch:
		return r, fmt.Errorf("vos: record kind %d", r.kind)
	case r.kind == recInline && r.size > inlineNarrow:
		return r, fmt.Errorf("vos: inline record of %d bytes", r.size)
	}
	return r, nil
}

// blocks is the number of data blocks a recData record holds.
func (r rec) blocks() uint64 { return (r.size + blockSize - 1) / blockSize }
