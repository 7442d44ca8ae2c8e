package alloc

import (
	"encoding/binary"
	"math"
	"math/bits"

	"vosfs/umem"
)

// The persistent bitmaps use umem's bit numbering: bit i of a bitmap at
// heap offset off is bit i%8 (least significant first) of byte off+i/8.
// Loading the bytes little-endian into 64-bit words keeps the numbering:
// bit i is bit i%64 of word i/64.

// bitmapBytes is the size in bytes of a bitmap of n bits.
func bitmapBytes(n uint64) uint64 { return n/8 + min(n%8, 1) }

// bitset is an in-memory bitmap of a known length.
type bitset []uint64

func newBitset(n uint64) bitset { return make(bitset, n/64+min(n%64, 1)) }

// setRange sets bits [start, start+n).
func (b bitset) setRange(start, n uint64) {
	for i, end := start, start+n; i < end; {
		if i%64 == 0 && end-i >= 64 {
			b[i/64] = ^uint64(0)
			i += 64
			continue
		}
		b[i/64] |= 1 << (i % 64)
		i++
	}
}

// andNot returns b &^ o.
func (b bitset) andNot(o bitset) bitset {
	r := make(bitset, len(b))
	for i := range b {
		r[i] = b[i] &^ o[i]
	}
	return r
}

// not returns the complement of b's first n bits (bits from n on are zero).
func (b bitset) not(n uint64) bitset {
	r := make(bitset, len(b))
	for i := range b {
		r[i] = ^b[i]
	}
	r.trim(n)
	return r
}

// trim clears the bits from n on.
func (b bitset) trim(n uint64) {
	if n%64 != 0 && len(b) > 0 {
		b[len(b)-1] &= 1<<(n%64) - 1
	}
}

// runs calls fn for each maximal run of set bits within [from, to), cut at
// the bounds. Bits at or beyond the bitset's length count as clear.
func (b bitset) runs(from, to uint64, fn func(start, n uint64)) {
	to = min(to, uint64(len(b))*64)
	i := from
	for i < to {
		// Find the next set bit.
		w := b[i/64] >> (i % 64)
		if w == 0 {
			i = (i/64 + 1) * 64
			continue
		}
		i += uint64(bits.TrailingZeros64(w))
		if i >= to {
			return
		}
		start := i
		// Find the next clear bit.
		for i < to {
			c := ^b[i/64] >> (i % 64)
			if c == 0 {
				i = (i/64 + 1) * 64
				continue
			}
			i += uint64(bits.TrailingZeros64(c))
			break
		}
		i = min(i, to)
		fn(start, i-start)
	}
}

// loadBitset copies the n-bit bitmap at heap offset off.
func loadBitset(r umem.Reader, off, n uint64) (bitset, error) {
	p, err := r.Bytes(off, bitmapBytes(n))
	if err != nil {
		return nil, err
	}
	b := newBitset(n)
	for i := range b {
		if len(p) >= 8 {
			b[i] = binary.LittleEndian.Uint64(p)
			p = p[8:]
			continue
		}
		var w [8]byte
		copy(w[:], p)
		b[i] = binary.LittleEndian.Uint64(w[:])
	}
	b.trim(n)
	return b, nil
}

// allBits reports whether bits [start, start+n) of the bitmap at heap
// offset off all equal set.
func allBits(r umem.Reader, off, start, n uint64, set bool) (bool, error) {
	if n == 0 {
		return true, nil
	}
	first := start / 8
	p, err := r.Bytes(off+first, (start+n-1)/8-first+1)
	if err != nil {
		return false, err
	}
	want := byte(0)
	if set {
		want = 0xff
	}
	for i, end := start, start+n; i < end; {
		c := p[i/8-first]
		if i%8 == 0 && end-i >= 8 {
			if c != want {
				return false, nil
			}
			i += 8
			continue
		}
		if (c>>(i%8)&1 == 1) != set {
			return false, nil
		}
		i++
	}
	return true, nil
}

// changeBits sets or clears bits [start, start+n) of the bitmap at heap
// offset off in tx, in pieces that fit one bit action.
func changeBits(tx *umem.Tx, off, start, n uint64, set bool) error {
	for n > 0 {
		k := min(n, math.MaxUint32)
		var err error
		if set {
			err = tx.SetBits(off, start, uint32(k))
		} else {
			err = tx.ClearBits(off, start, uint32(k))
		}
		if err != nil {
			return err
		}
		start, n = start+k, n-k
	}
	return nil
}

// rebuild fills free with the clear runs of the n-bit bitmap at off.
func rebuild(h *umem.Heap, off, n uint64, free *FreeIndex) error {
	return h.View(func(r umem.Reader) error {
		b, err := loadBitset(r, off, n)
		if err != nil {
			return err
		}
		var ierr error
		b.not(n).runs(0, n, func(s, k uint64) {
			if err := free.Insert(s, k); err != nil && ierr == nil {
				ierr = err
			}
		})
		return ierr
	})
}
