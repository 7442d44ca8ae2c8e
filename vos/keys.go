package vos

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Named limits.
const (
	// MaxDkeyLen is the longest dkey (a file name is a dkey).
	MaxDkeyLen = 255
	// MaxAkeyLen is the longest akey.
	MaxAkeyLen = 200
	// MaxExtentLen is the longest extent of an array; longer writes are
	// split. Reads rely on it to bound their search.
	MaxExtentLen = 1 << 20
	// MaxArrayOffset is the end of the addressable array space.
	MaxArrayOffset = 1 << 62
)

// Errors.
var (
	ErrKeyTooLong = errors.New("vos: key too long")
	ErrEmptyKey   = errors.New("vos: empty dkey")
	ErrRange      = errors.New("vos: array range out of bounds")
)

// Key kinds: the first byte of every tree key.
const (
	kindData     = 'k' // 'k' | oid | esc(dkey) | esc(akey) | sub | ...
	kindObjPunch = 'j' // 'j' | oid | ^epoch
	kindSnapshot = 's' // 's' | name
)

// Sub-kinds after an akey.
const (
	subValue = 1 // | ^epoch: a single-value version
	subPunch = 2 // | ^epoch | start: an array range punch
	subExt   = 3 // | offset | ^epoch: an array extent
)

// esc appends b escaped so that byte order of escaped keys is byte order of
// the keys and no escaped key is a prefix of another: 0x00 becomes 0x00 0xff
// and the key ends with 0x00 0x01.
func esc(dst, b []byte) []byte {
	for _, c := range b {
		if c == 0 {
			dst = append(dst, 0, 0xff)
		} else {
			dst = append(dst, c)
		}
	}
	return append(dst, 0, 1)
}

// unesc decodes an escaped key at the start of p and returns it and the rest.
func unesc(p []byte) ([]byte, []byte, error) {
	var out []byte
	for i := 0; i < len(p); i++ {
		if p[i] != 0 {
			out = append(out, p[i])
			continue
		}
		if i+1 >= len(p) {
			break
		}
		switch p[i+1] {
		case 0xff:
			out = append(out, 0)
			i++
		case 1:
			return out, p[i+2:], nil
		default:
			return nil, nil, fmt.Errorf("vos: bad key escape %#x", p[i+1])
		}
	}
	return nil, nil, errors.New("vos: unterminated key")
}

func putU64(dst []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(dst, v) }

// Path names one akey of one dkey of one object.
type Path struct {
	OID  uint64
	Dkey []byte
	Akey []byte
}

func (p Path) String() string { return fmt.Sprintf("%d/%q/%q", p.OID, p.Dkey, p.Akey) }

func (p Path) check() error {
	switch {
	case len(p.Dkey) == 0:
		return ErrEmptyKey
	case len(p.Dkey) > MaxDkeyLen:
		return fmt.Errorf("%w: dkey of %d bytes (max %d)", ErrKeyTooLong, len(p.Dkey), MaxDkeyLen)
	case len(p.Akey) > MaxAkeyLen:
		return fmt.Errorf("%w: akey of %d bytes (max %d)", ErrKeyTooLong, len(p.Akey), MaxAkeyLen)
	}
	return nil
}

// equal reports whether p and q name the same akey.
func (p Path) equal(q Path) bool {
	return p.OID == q.OID && bytes.Equal(p.Dkey, q.Dkey) && bytes.Equal(p.Akey, q.Akey)
}

// key is the path's prefix as a string, for maps and comparisons.
func (p Path) key() string {
	var b [96]byte
	return string(p.prefix(b[:0]))
}

// keyBuf returns an empty buffer with room for the path's prefix and extra
// bytes (escapes aside), so that a key is built in one allocation.
func (p Path) keyBuf(extra int) []byte {
	return make([]byte, 0, 1+8+len(p.Dkey)+2+len(p.Akey)+2+extra)
}

// objPrefix is 'k' | oid.
func objPrefix(dst []byte, oid uint64) []byte { return putU64(append(dst, kindData), oid) }

// dkeyPrefix is 'k' | oid | esc(dkey).
func dkeyPrefix(dst []byte, oid uint64, dkey []byte) []byte {
	return esc(objPrefix(dst, oid), dkey)
}

// prefix is 'k' | oid | esc(dkey) | esc(akey).
func (p Path) prefix(dst []byte) []byte { return esc(dkeyPrefix(dst, p.OID, p.Dkey), p.Akey) }

func (p Path) valueKey(epoch uint64) []byte { return p.appendValueKey(p.keyBuf(9), epoch) }

func (p Path) punchKey(epoch, start uint64) []byte {
	return p.appendPunchKey(p.keyBuf(17), epoch, start)
}

func (p Path) extKey(off, epoch uint64) []byte { return p.appendExtKey(p.keyBuf(17), off, epoch) }

func (p Path) appendValueKey(dst []byte, epoch uint64) []byte {
	return putU64(append(p.prefix(dst), subValue), ^epoch)
}

func (p Path) appendPunchKey(dst []byte, epoch, start uint64) []byte {
	return putU64(putU64(append(p.prefix(dst), subPunch), ^epoch), start)
}

func (p Path) appendExtKey(dst []byte, off, epoch uint64) []byte {
	return putU64(putU64(append(p.prefix(dst), subExt), off), ^epoch)
}

// subPrefix is the path's prefix and the sub-kind sub: where its versions,
// punches or extents start.
func (p Path) subPrefix(sub byte) []byte { return append(p.prefix(p.keyBuf(1+17)), sub) }

func objPunchKey(oid, epoch uint64) []byte {
	return putU64(putU64(append(make([]byte, 0, 17), kindObjPunch), oid), ^epoch)
}

// after returns the smallest key greater than every key starting with
// prefix, where prefix ends with an escaped key's terminator 0x00 0x01.
func afterEscaped(prefix []byte) []byte {
	out := append([]byte(nil), prefix...)
	out[len(out)-1] = 2
	return out
}

// parsed is a decoded data key.
type parsed struct {
	oid   uint64
	dkey  []byte
	akey  []byte
	sub   byte
	off   uint64
	epoch uint64
}

func parseDataKey(k []byte) (parsed, error) {
	var p parsed
	if len(k) < 9 || k[0] != kindData {
		return p, fmt.Errorf("vos: not a data key: %x", k)
	}
	p.oid = binary.BigEndian.Uint64(k[1:])
	rest := k[9:]
	var err error
	if p.dkey, rest, err = unesc(rest); err != nil {
		return p, err
	}
	if p.akey, rest, err = unesc(rest); err != nil {
		return p, err
	}
	if len(rest) < 1 {
		return p, fmt.Errorf("vos: data key without kind: %x", k)
	}
	p.sub, rest = rest[0], rest[1:]
	switch p.sub {
	case subValue:
		if len(rest) != 8 {
			return p, fmt.Errorf("vos: bad version key: %x", k)
		}
		p.epoch = ^binary.BigEndian.Uint64(rest)
	case subPunch:
		if len(rest) != 16 {
			return p, fmt.Errorf("vos: bad punch key: %x", k)
		}
		p.epoch = ^binary.BigEndian.Uint64(rest)
		p.off = binary.BigEndian.Uint64(rest[8:])
	case subExt:
		if len(rest) != 16 {
			return p, fmt.Errorf("vos: bad extent key: %x", k)
		}
		p.off = binary.BigEndian.Uint64(rest)
		p.epoch = ^binary.BigEndian.Uint64(rest[8:])
	default:
		return p, fmt.Errorf("vos: bad data key kind %d: %x", p.sub, k)
	}
	return p, nil
}
