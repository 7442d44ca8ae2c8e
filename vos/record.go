package vos

import (
	"encoding/binary"
	"fmt"
)

// recSize is the size of a tree value: the record of one version or extent.
const recSize = 40

// inlineMax is the largest value kept inside the record itself.
const inlineMax = 16

// Record kinds.
const (
	recInline = 1 // bytes in the record
	recHeap   = 2 // bytes in the heap at loc
	recData   = 3 // bytes in the data blob from block loc
	recPunch  = 4 // a tombstone; for a range punch [loc, size)
)

// rec is one decoded version or extent record:
//
//	kind u8 | merge u8 | 0 u16 | csum u32 | size u64 | loc u64 | inline [16]
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
	b[0], b[1] = r.kind, r.merge
	binary.LittleEndian.PutUint32(b[4:], r.csum)
	binary.LittleEndian.PutUint64(b[8:], r.size)
	binary.LittleEndian.PutUint64(b[16:], r.loc)
	copy(b[24:], r.inline[:])
	return b
}

func decodeRec(b []byte) (rec, error) {
	var r rec
	if len(b) != recSize {
		return r, fmt.Errorf("vos: record of %d bytes", len(b))
	}
	r.kind, r.merge = b[0], b[1]
	r.csum = binary.LittleEndian.Uint32(b[4:])
	r.size = binary.LittleEndian.Uint64(b[8:])
	r.loc = binary.LittleEndian.Uint64(b[16:])
	copy(r.inline[:], b[24:])
	switch {
	case r.kind < recInline || r.kind > recPunch:
		return r, fmt.Errorf("vos: record kind %d", r.kind)
	case r.kind == recInline && r.size > inlineMax:
		return r, fmt.Errorf("vos: inline record of %d bytes", r.size)
	}
	return r, nil
}

// blocks is the number of data blocks a recData record holds.
func (r rec) blocks() uint64 { return (r.size + blockSize - 1) / blockSize }
