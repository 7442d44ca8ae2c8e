package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Record layout. A record starts at a RecordAlign boundary with a head:
//
//	magic u32 | kind u8 | 0 u8 | 0 u16 | gen u32 | count u32 | id u64 | bodyLen u32 | crc u32
//
// followed by bodyLen bytes of actions, then zeros up to RecordAlign. The CRC32C
// covers the head (with crc zero) and the body; a pad record's CRC covers its
// head only (its body is not written with meaning). A record is intact at
// position P when its head decodes, its id is P, its generation is the log's,
// it fits the ring and the record limit, its CRC matches and its actions
// decode; when a record is not intact, whether that is the end of the log
// (a torn tail) or damage is decided by the rule in the package doc, which
// rests on the batch limit (MaxBatch).
const (
	recordMagic = 0x524c5756 // "VWLR"
	headSize    = 32
	// RecordAlign is the alignment of every record in the ring.
	RecordAlign = 64
	// MaxRecordSize is the hard ceiling of one record, head included (DAOS
	// uses the same figure). A log may set a lower limit (Options.RecordLimit).
	MaxRecordSize = 16 << 20

	kindTx  = 1
	kindPad = 2
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksum is the CRC32C used for records and data checksums.
func Checksum(p []byte) uint32 { return crc32.Checksum(p, castagnoli) }

// ErrRecordTooLarge is returned when a transaction's record would exceed the
// log's record limit; the caller must split the operation.
var ErrRecordTooLarge = errors.New("wal: record too large")

// errBadRecord marks a record that fails validation (end of log in replay).
var errBadRecord = errors.New("wal: invalid record")

// head is a decoded record head.
type head struct {
	kind    uint8
	gen     uint32
	count   uint32
	id      ID
	bodyLen uint32
	crc     uint32
}

// size is the record's footprint in the ring.
func (h head) size() uint64 { return alignUp(headSize+uint64(h.bodyLen), RecordAlign) }

// RecordSize returns the ring footprint of a record with a body of n bytes.
func RecordSize(n int) uint64 { return alignUp(headSize+uint64(n), RecordAlign) }

func putHead(dst []byte, h head) {
	binary.LittleEndian.PutUint32(dst[0:], recordMagic)
	dst[4] = h.kind
	dst[5], dst[6], dst[7] = 0, 0, 0
	binary.LittleEndian.PutUint32(dst[8:], h.gen)
	binary.LittleEndian.PutUint32(dst[12:], h.count)
	binary.LittleEndian.PutUint64(dst[16:], uint64(h.id))
	binary.LittleEndian.PutUint32(dst[24:], h.bodyLen)
	binary.LittleEndian.PutUint32(dst[28:], 0)
}

// rawBody is an already encoded body of count actions.
type rawBody struct {
	b     []byte
	count uint32
}

func (r rawBody) Len() int          { return len(r.b) }
func (r rawBody) Count() int        { return int(r.count) }
func (r rawBody) Encode(dst []byte) { copy(dst, r.b) }

// encodeRecord writes a transaction record of count actions encoded in body
// at dst, as encodeRecordFrom does.
func encodeRecord(dst []byte, id ID, gen uint32, count uint32, body []byte) {
	encodeRecordFrom(dst, id, gen, rawBody{b: body, count: count})
}

// encodeRecordFrom writes a transaction record with body at dst[0:size];
// dst must be at least RecordSize(body.Len()) long and is zero-padded.
func encodeRecordFrom(dst []byte, id ID, gen uint32, body Encoder) {
	n := body.Len()
	h := head{kind: kindTx, gen: gen, count: uint32(body.Count()), id: id, bodyLen: uint32(n)}
	putHead(dst, h)
	body.Encode(dst[headSize : headSize+n])
	end := headSize + n
	clear(dst[end:h.size()])
	crc := Checksum(dst[:end])
	binary.LittleEndian.PutUint32(dst[28:], crc)
}

// encodePad writes a pad record covering n bytes (n >= headSize, a multiple
// of RecordAlign) at dst.
func encodePad(dst []byte, id ID, gen uint32, n uint64) {
	h := head{kind: kindPad, gen: gen, id: id, bodyLen: uint32(n - headSize)}
	putHead(dst, h)
	clear(dst[headSize:n])
	crc := Checksum(dst[:headSize])
	binary.LittleEndian.PutUint32(dst[28:], crc)
}

// decodeHead parses and checks a head without its CRC.
func decodeHead(p []byte) (head, error) {
	if len(p) < headSize {
		return head{}, fmt.Errorf("%w: short head", errBadRecord)
	}
	if binary.LittleEndian.Uint32(p[0:]) != recordMagic {
		return head{}, fmt.Errorf("%w: bad magic", errBadRecord)
	}
	h := head{
		kind:    p[4],
		gen:     binary.LittleEndian.Uint32(p[8:]),
		count:   binary.LittleEndian.Uint32(p[12:]),
		id:      ID(binary.LittleEndian.Uint64(p[16:])),
		bodyLen: binary.LittleEndian.Uint32(p[24:]),
		crc:     binary.LittleEndian.Uint32(p[28:]),
	}
	if h.kind != kindTx && h.kind != kindPad || p[5]|p[6]|p[7] != 0 {
		return head{}, fmt.Errorf("%w: bad kind %d", errBadRecord, p[4])
	}
	if uint64(h.bodyLen) > MaxRecordSize-headSize {
		return head{}, fmt.Errorf("%w: body of %d bytes", errBadRecord, h.bodyLen)
	}
	if h.kind == kindPad && h.count != 0 {
		return head{}, fmt.Errorf("%w: pad with entries", errBadRecord)
	}
	return h, nil
}

// checkCRC verifies the record's CRC; rec holds at least head and body.
func checkCRC(h head, rec []byte) error {
	n := headSize
	if h.kind == kindTx {
		n += int(h.bodyLen)
	}
	var z [4]byte
	c := crc32.Update(0, castagnoli, rec[:28])
	c = crc32.Update(c, castagnoli, z[:])
	c = crc32.Update(c, castagnoli, rec[headSize:n])
	if c != h.crc {
		return fmt.Errorf("%w: checksum mismatch", errBadRecord)
	}
	return nil
}

// Record is one decoded transaction record, handed to the replay callback.
type Record struct {
	ID    ID
	Count uint32
	// Body holds the encoded actions; it is only valid during the callback.
	Body []byte
}

// Actions decodes the record's actions.
func (r *Record) Actions(fn func(Action) error) error {
	return DecodeActions(r.Body, r.Count, fn)
}

// DecodeRecord checks and decodes one encoded record (head, body and
// padding) at the start of p, as replay does: magic, kind, sizes and CRC. It
// is the entry point of the fuzz target for on-disk records.
func DecodeRecord(p []byte) (Record, uint64, error) {
	h, err := decodeHead(p)
	if err != nil {
		return Record{}, 0, err
	}
	if uint64(len(p)) < h.size() {
		return Record{}, 0, fmt.Errorf("%w: %d bytes for a record of %d", errBadRecord, len(p), h.size())
	}
	if err := checkCRC(h, p); err != nil {
		return Record{}, 0, err
	}
	r := Record{ID: h.id, Count: h.count}
	if h.kind == kindTx {
		r.Body = p[headSize : headSize+int(h.bodyLen)]
		if err := DecodeActions(r.Body, r.Count, func(Action) error { return nil }); err != nil {
			return Record{}, 0, fmt.Errorf("%w: %w", errBadRecord, err)
		}
	}
	return r, h.size(), nil
}
