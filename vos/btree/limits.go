package btree

import "errors"

const (
	// NodeSize is the heap space of one node, in bytes.
	NodeSize = 4096
	// MaxKeySize is the longest key, in bytes.
	MaxKeySize = 1024
	// MaxValueSize is the largest value size a tree may have, in bytes.
	MaxValueSize = 256
)

var (
	// ErrKeyTooLong is returned for a key longer than MaxKeySize.
	ErrKeyTooLong = errors.New("btree: key too long")
	// ErrValueSize is returned for a value whose length is not the tree's
	// ValueSize, or for a tree whose ValueSize is outside [0, MaxValueSize].
	ErrValueSize = errors.New("btree: wrong value size")
	// ErrCorrupt is wrapped by every error about malformed tree bytes in the
	// heap.
	ErrCorrupt = errors.New("btree: corrupted tree")
)

// maxEntry is the most node space one entry takes: its slot, its record head,
// a maximal key and a maximal value (an internal node's child offset is
// smaller).
const maxEntry = slotSize + recHead + MaxKeySize + MaxValueSize

// A node must hold at least three maximal entries, so that a split of a full
// node always leaves two halves with room for the entry being inserted. The
// conversion fails to compile if the constant is negative.
const _ = uint(NodeSize - hdrSize - 3*maxEntry)

// Offsets within a node are u16.
const _ = uint(1<<16 - NodeSize)

// maxLevel is the highest level a node may have (leaves are level 0). It is
// far beyond the height of any tree a heap can hold; a higher level in a
// header means corruption, and the bound keeps every descent finite.
const maxLevel = 200
