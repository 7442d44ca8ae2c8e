package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The log blob begins with two header slots of one block each; a header
// update writes the slot that does not hold the newest valid copy, so a torn
// header write leaves the previous header intact.
const (
	blockSize     = 4096
	headerSlots   = 2
	RingOffset    = headerSlots * blockSize
	headerMagic   = "VOSFSWAL"
	FormatVersion = 1
	headerLen     = 8 + 4 + 4 + 8 + 16 + 8 + 8 + 4 + 4 + 8 + 8 + 8 + 4 + 4
	// MinRingSize is the smallest ring Create accepts.
	MinRingSize = 256 << 10
)

// Header flags.
const (
	// FlagClean is set by a clean close: nothing to replay.
	FlagClean = 1 << 0
)

// ErrBadHeader is wrapped by every header decoding error.
var ErrBadHeader = errors.New("bad log header")

// Header is the durable state of the log.
type Header struct {
	Seq         uint64   // bumped at each header write; the newest valid slot wins
	PoolUUID    [16]byte // pool the log belongs to
	BlobSize    uint64   // size of the log blob
	RingSize    uint64   // bytes of the ring after the header slots
	RecordLimit uint32   // largest record this log accepts
	Flags       uint32
	Gen         uint64 // generation of the records written since the last open
	Checkpoint  ID     // replay starts here; ring space below it is free
	Durable     ID     // a lower bound of the durable end when written
}

// Encode returns the header as one block.
func (h *Header) Encode() []byte {
	b := make([]byte, blockSize)
	copy(b[0:8], headerMagic)
	le := binary.LittleEndian
	le.PutUint32(b[8:], FormatVersion)
	le.PutUint32(b[12:], headerLen)
	le.PutUint64(b[16:], h.Seq)
	copy(b[24:40], h.PoolUUID[:])
	le.PutUint64(b[40:], h.BlobSize)
	le.PutUint64(b[48:], h.RingSize)
	le.PutUint32(b[56:], h.RecordLimit)
	le.PutUint32(b[60:], h.Flags)
	le.PutUint64(b[64:], h.Gen)
	le.PutUint64(b[72:], uint64(h.Checkpoint))
	le.PutUint64(b[80:], uint64(h.Durable))
	le.PutUint32(b[88:], 0) // reserved
	le.PutUint32(b[headerLen-4:], Checksum(b[:headerLen-4]))
	return b
}

// DecodeHeader parses and validates one header slot.
func DecodeHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < headerLen {
		return h, fmt.Errorf("%w: %d bytes", ErrBadHeader, len(b))
	}
	if string(b[0:8]) != headerMagic {
		return h, fmt.Errorf("%w: not a vosfs log (magic %q)", ErrBadHeader, b[0:8])
	}
	le := binary.LittleEndian
	if v := le.Uint32(b[8:]); v != FormatVersion {
		return h, fmt.Errorf("%w: format version %d, this build reads %d", ErrBadHeader, v, FormatVersion)
	}
	if n := le.Uint32(b[12:]); n != headerLen {
		return h, fmt.Errorf("%w: header length %d", ErrBadHeader, n)
	}
	if got, want := le.Uint32(b[headerLen-4:]), Checksum(b[:headerLen-4]); got != want {
		return h, fmt.Errorf("%w: checksum mismatch", ErrBadHeader)
	}
	h.Seq = le.Uint64(b[16:])
	copy(h.PoolUUID[:], b[24:40])
	h.BlobSize = le.Uint64(b[40:])
	h.RingSize = le.Uint64(b[48:])
	h.RecordLimit = le.Uint32(b[56:])
	h.Flags = le.Uint32(b[60:])
	h.Gen = le.Uint64(b[64:])
	h.Checkpoint = ID(le.Uint64(b[72:]))
	h.Durable = ID(le.Uint64(b[80:]))
	if err := h.validate(); err != nil {
		return h, err
	}
	return h, nil
}

func (h *Header) validate() error {
	switch {
	case h.RingSize < MinRingSize || h.RingSize%blockSize != 0:
		return fmt.Errorf("%w: ring size %d", ErrBadHeader, h.RingSize)
	case h.BlobSize != RingOffset+h.RingSize:
		return fmt.Errorf("%w: blob size %d does not match ring size %d", ErrBadHeader, h.BlobSize, h.RingSize)
	case h.RecordLimit < blockSize || h.RecordLimit > MaxRecordSize || uint64(h.RecordLimit)*4 > h.RingSize:
		return fmt.Errorf("%w: record limit %d for a ring of %d", ErrBadHeader, h.RecordLimit, h.RingSize)
	case h.Checkpoint < ID(h.RingSize) || uint64(h.Checkpoint)%RecordAlign != 0:
		return fmt.Errorf("%w: checkpoint ID %d", ErrBadHeader, h.Checkpoint)
	case h.Durable != 0 && h.Durable < h.Checkpoint:
		return fmt.Errorf("%w: durable ID %d below checkpoint %d", ErrBadHeader, h.Durable, h.Checkpoint)
	}
	return nil
}
