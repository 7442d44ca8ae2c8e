package pool

import (
	"encoding/binary"
	"errors"
	"fmt"

	"vosfs/wal"
)

// File names inside a pool directory.
const (
	WALFile  = "wal.blob"
	MetaFile = "meta.blob"
	DataFile = "data.blob"
	LockFile = "lock"
)

// Format constants.
const (
	BlockSize     = 4096
	FormatVersion = 1
	// HeapOffset is where the heap image starts in the metadata blob.
	HeapOffset = BlockSize
	// DataOffset is where block 0 starts in the data blob.
	DataOffset = BlockSize

	metaMagic = "VOSFSMET"
	dataMagic = "VOSFSDAT"
	heapMagic = "VOSHEAP1"

	blobHeaderLen = 8 + 4 + 4 + 16 + 8 + 8 + 4
)

// ErrBadPool is wrapped by every error about a malformed or foreign pool.
var ErrBadPool = errors.New("bad pool")

// blobHeader is the static header of the metadata and data blobs.
type blobHeader struct {
	magic string
	uuid  [16]byte
	size  uint64 // blob size in bytes
	units uint64 // metadata: heap bytes; data: blocks
}

func (h blobHeader) encode() []byte {
	b := make([]byte, BlockSize)
	copy(b, h.magic)
	le := binary.LittleEndian
	le.PutUint32(b[8:], FormatVersion)
	le.PutUint32(b[12:], blobHeaderLen)
	copy(b[16:32], h.uuid[:])
	le.PutUint64(b[32:], h.size)
	le.PutUint64(b[40:], h.units)
	le.PutUint32(b[48:], wal.Checksum(b[:48]))
	return b
}

func decodeBlobHeader(b []byte, magic string) (blobHeader, error) {
	var h blobHeader
	if len(b) < blobHeaderLen {
		return h, fmt.Errorf("%w: header of %d bytes", ErrBadPool, len(b))
	}
	if string(b[:8]) != magic {
		return h, fmt.Errorf("%w: magic %q, want %q", ErrBadPool, b[:8], magic)
	}
	le := binary.LittleEndian
	if v := le.Uint32(b[8:]); v != FormatVersion {
		return h, fmt.Errorf("%w: format version %d, this build reads %d", ErrBadPool, v, FormatVersion)
	}
	if n := le.Uint32(b[12:]); n != blobHeaderLen {
		return h, fmt.Errorf("%w: header length %d", ErrBadPool, n)
	}
	if le.Uint32(b[48:]) != wal.Checksum(b[:48]) {
		return h, fmt.Errorf("%w: header checksum mismatch", ErrBadPool)
	}
	h.magic = magic
	copy(h.uuid[:], b[16:32])
	h.size = le.Uint64(b[32:])
	h.units = le.Uint64(b[40:])
	return h, nil
}

// Heap layout. The superblock occupies the heap's first 4 KiB: its first
// half describes the regions (fixed at mkfs, checksummed); its second half
// is the root area, owned by the layer above (RootOffset, RootSize).
const (
	superLen = 8 + 4 + 8*7 + 4
	// RootOffset is the heap offset of the root area for the layer above.
	RootOffset = 2048
	// RootSize is the size of the root area.
	RootSize = 2048
)

// Layout says where the allocators' bitmaps and the arena are in the heap.
type Layout struct {
	HeapSize     uint64
	HeapBitmap   uint64 // heap offset of the heap allocator's bitmap
	ArenaOffset  uint64
	ArenaSize    uint64
	DataBitmap   uint64 // heap offset of the extent allocator's bitmap
	DataBlocks   uint64
	reservedZero uint64
}

// heapUnit mirrors alloc.HeapUnit (the layout must not change with it).
const heapUnit = 64

// computeLayout places the bitmaps after the superblock and gives the rest
// to the arena.
func computeLayout(heapSize, dataBlocks uint64) (Layout, error) {
	l := Layout{HeapSize: heapSize, DataBlocks: dataBlocks}
	off := uint64(BlockSize)
	l.DataBitmap = off
	off += alignUp((dataBlocks+7)/8, BlockSize)
	// The arena takes what is left after its own bitmap (1 bit per 64 B).
	if off >= heapSize {
		return l, fmt.Errorf("%w: heap of %d bytes cannot hold the bitmap of %d data blocks", ErrBadPool, heapSize, dataBlocks)
	}
	rest := heapSize - off
	arena := (rest * 8 * heapUnit / (8*heapUnit + 1)) &^ (BlockSize - 1)
	for {
		bm := alignUp(arena/heapUnit/8, BlockSize)
		if off+bm+arena <= heapSize {
			l.HeapBitmap = off
			l.ArenaOffset = off + bm
			break
		}
		arena -= BlockSize
	}
	l.ArenaSize = arena
	if l.ArenaSize < 64<<10 {
		return l, fmt.Errorf("%w: heap of %d bytes leaves an arena of %d bytes", ErrBadPool, heapSize, l.ArenaSize)
	}
	return l, nil
}

func alignUp(n, a uint64) uint64 { return (n + a - 1) / a * a }

// MinArenaSize is the least arena a pool's heap keeps beside the data
// blob's allocation bitmap.
const MinArenaSize = 512 << 10

// MinMetaSizeFor is the smallest metadata blob for a data blob of
// dataSize bytes: its heap holds the data blob's allocation bitmap (one
// bit per block) and still an arena of MinArenaSize.
func MinMetaSizeFor(dataSize uint64) uint64 {
	blocks := (dataSize&^(BlockSize-1) - min(dataSize&^(BlockSize-1), DataOffset)) / BlockSize
	return HeapOffset + BlockSize + alignUp((blocks+7)/8, BlockSize) + MinArenaSize
}

func (l Layout) encodeSuper() []byte {
	b := make([]byte, superLen)
	copy(b, heapMagic)
	le := binary.LittleEndian
	le.PutUint32(b[8:], FormatVersion)
	for i, v := range []uint64{l.HeapSize, l.HeapBitmap, l.ArenaOffset, l.ArenaSize, l.DataBitmap, l.DataBlocks, 0} {
		le.PutUint64(b[12+8*i:], v)
	}
	le.PutUint32(b[superLen-4:], wal.Checksum(b[:superLen-4]))
	return b
}

// decodeSuper parses the heap superblock.
func decodeSuper(b []byte) (Layout, error) {
	var l Layout
	if len(b) < superLen || string(b[:8]) != heapMagic {
		return l, fmt.Errorf("%w: heap superblock magic missing", ErrBadPool)
	}
	le := binary.LittleEndian
	if le.Uint32(b[superLen-4:]) != wal.Checksum(b[:superLen-4]) {
		return l, fmt.Errorf("%w: heap superblock checksum mismatch", ErrBadPool)
	}
	if v := le.Uint32(b[8:]); v != FormatVersion {
		return l, fmt.Errorf("%w: heap format version %d", ErrBadPool, v)
	}
	v := make([]uint64, 7)
	for i := range v {
		v[i] = le.Uint64(b[12+8*i:])
	}
	l = Layout{HeapSize: v[0], HeapBitmap: v[1], ArenaOffset: v[2], ArenaSize: v[3], DataBitmap: v[4], DataBlocks: v[5], reservedZero: v[6]}
	want, err := computeLayout(l.HeapSize, l.DataBlocks)
	if err != nil {
		return l, err
	}
	if want != l {
		return l, fmt.Errorf("%w: heap superblock layout %+v does not match %+v", ErrBadPool, l, want)
	}
	return l, nil
}
