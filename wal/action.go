package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ActionType names one kind of redo action, after DAOS's WAL entry types.
type ActionType uint8

const (
	// ActCopy copies the inline payload to heap[Off:Off+N].
	ActCopy ActionType = iota + 1
	// ActAssign stores Arg little-endian in N (1, 2, 4 or 8) bytes at Off.
	ActAssign
	// ActSet fills heap[Off:Off+N] with the byte Arg (memset).
	ActSet
	// ActSetBits sets bits [Arg, Arg+N) of the bitmap at heap offset Off.
	ActSetBits
	// ActClearBits clears bits [Arg, Arg+N) of the bitmap at heap offset Off.
	ActClearBits
	// ActDataChecksum records that N bytes at data-blob offset Off were
	// written with CRC32C Arg by this transaction; it changes no heap byte.
	ActDataChecksum
	actMax
)

func (t ActionType) String() string {
	switch t {
	case ActCopy:
		return "copy"
	case ActAssign:
		return "assign"
	case ActSet:
		return "set"
	case ActSetBits:
		return "setbits"
	case ActClearBits:
		return "clearbits"
	case ActDataChecksum:
		return "datacsum"
	}
	return fmt.Sprintf("action(%d)", uint8(t))
}

// entrySize is the encoded size of an action without its payload:
// type u8, 3 bytes zero, N u32, Off u64, Arg u64.
const entrySize = 24

// EntrySize is entrySize for encoders outside the package.
const EntrySize = entrySize

// CopySize is the encoded size of an ActCopy of n bytes: the entry and the
// payload padded to 8 bytes.
func CopySize(n int) int { return entrySize + int(alignUp(uint64(n), 8)) }

// PutEntry encodes one action entry (without payload) at dst[:EntrySize].
func PutEntry(dst []byte, t ActionType, n uint32, off, arg uint64) {
	dst[0], dst[1], dst[2], dst[3] = byte(t), 0, 0, 0
	binary.LittleEndian.PutUint32(dst[4:], n)
	binary.LittleEndian.PutUint64(dst[8:], off)
	binary.LittleEndian.PutUint64(dst[16:], arg)
}

// Encoder is a record body the log encodes straight into its batch buffer,
// so that the bytes of a change are copied once on their way to the log.
type Encoder interface {
	// Len is the encoded size of the body.
	Len() int
	// Count is the number of actions.
	Count() int
	// Encode writes exactly Len bytes of actions at dst.
	Encode(dst []byte)
}

// EncodeBody returns the encoding of e in a buffer of its own.
func EncodeBody(e Encoder) []byte {
	b := make([]byte, e.Len())
	e.Encode(b)
	return b
}

// Action is one decoded redo action of a record.
type Action struct {
	Type ActionType
	N    uint32
	Off  uint64
	Arg  uint64
	// Data is the inline payload of ActCopy; it aliases the record buffer.
	Data []byte
}

// ErrBadAction is wrapped by decoding errors of a record body.
var ErrBadAction = errors.New("wal: malformed action")

// Body accumulates the encoded actions of one record. The zero value is an
// empty body ready to use.
type Body struct {
	buf   []byte
	count uint32
}

// Len is the encoded size of the body so far.
func (b *Body) Len() int { return len(b.buf) }

// Count is the number of actions so far.
func (b *Body) Count() int { return int(b.count) }

// Reset empties the body, keeping its buffer.
func (b *Body) Reset() { b.buf, b.count = b.buf[:0], 0 }

func (b *Body) entry(t ActionType, n uint32, off, arg uint64) {
	var e [entrySize]byte
	e[0] = byte(t)
	binary.LittleEndian.PutUint32(e[4:], n)
	binary.LittleEndian.PutUint64(e[8:], off)
	binary.LittleEndian.PutUint64(e[16:], arg)
	b.buf = append(b.buf, e[:]...)
	b.count++
}

// Copy appends an ActCopy of p to off.
func (b *Body) Copy(off uint64, p []byte) {
	b.entry(ActCopy, uint32(len(p)), off, 0)
	b.buf = append(b.buf, p...)
	if pad := int(alignUp(uint64(len(p)), 8)) - len(p); pad > 0 {
		b.buf = append(b.buf, make([]byte, pad)...)
	}
}

// Assign appends an ActAssign of the size-byte value v at off.
func (b *Body) Assign(off uint64, size int, v uint64) { b.entry(ActAssign, uint32(size), off, v) }

// Set appends an ActSet of n bytes of c at off.
func (b *Body) Set(off uint64, n uint32, c byte) { b.entry(ActSet, n, off, uint64(c)) }

// SetBits appends an ActSetBits of bits [bit, bit+n) of the bitmap at off.
func (b *Body) SetBits(off uint64, bit uint64, n uint32) { b.entry(ActSetBits, n, off, bit) }

// ClearBits appends an ActClearBits of bits [bit, bit+n) of the bitmap at off.
func (b *Body) ClearBits(off uint64, bit uint64, n uint32) { b.entry(ActClearBits, n, off, bit) }

// DataChecksum appends an ActDataChecksum for n bytes at data offset off.
func (b *Body) DataChecksum(off uint64, n uint32, crc uint32) {
	b.entry(ActDataChecksum, n, off, uint64(crc))
}

// Bytes returns the encoded body.
func (b *Body) Bytes() []byte { return b.buf }

// Encode copies the encoded body to dst (Body is an Encoder).
func (b *Body) Encode(dst []byte) { copy(dst, b.buf) }

// DecodeActions decodes count actions from body, calling fn for each. The
// actions' Data alias body. It checks structure only; the heap checks bounds.
func DecodeActions(body []byte, count uint32, fn func(Action) error) error {
	p := body
	for i := uint32(0); i < count; i++ {
		if len(p) < entrySize {
			return fmt.Errorf("%w: entry %d of %d truncated", ErrBadAction, i, count)
		}
		a := Action{
			Type: ActionType(p[0]),
			N:    binary.LittleEndian.Uint32(p[4:]),
			Off:  binary.LittleEndian.Uint64(p[8:]),
			Arg:  binary.LittleEndian.Uint64(p[16:]),
		}
		if a.Type == 0 || a.Type >= actMax || p[1]|p[2]|p[3] != 0 {
			return fmt.Errorf("%w: entry %d has type %d", ErrBadAction, i, p[0])
		}
		p = p[entrySize:]
		switch a.Type {
		case ActCopy:
			padded := alignUp(uint64(a.N), 8)
			if uint64(len(p)) < padded {
				return fmt.Errorf("%w: copy payload of %d bytes truncated", ErrBadAction, a.N)
			}
			a.Data = p[:a.N:a.N]
			p = p[padded:]
		case ActAssign:
			if a.N != 1 && a.N != 2 && a.N != 4 && a.N != 8 {
				return fmt.Errorf("%w: assign of %d bytes", ErrBadAction, a.N)
			}
		}
		if err := fn(a); err != nil {
			return err
		}
	}
	if len(p) != 0 {
		return fmt.Errorf("%w: %d trailing bytes after %d entries", ErrBadAction, len(p), count)
	}
	return nil
}
