package btree

import "fmt"

// mergeGap is the longest run of unchanged bytes logged inside one write
// rather than split into two: a copy action costs a 24-byte entry plus its
// bytes rounded up to 8, so a gap shorter than an entry is cheaper to carry.
const mergeGap = 24

// writeDiff logs the bytes of img that differ from cur, the bytes at heap
// offset base (aliasing the heap; same length as img), in as few writes as
// is cheapest.
func writeDiff(w Writer, base uint64, cur, img []byte) error {
	hi := len(img)
	cur = cur[:hi]
	i := 0
	for {
		// Skip equal bytes, a word at a time where possible.
		for i+8 <= hi && le.Uint64(cur[i:]) == le.Uint64(img[i:]) {
			i += 8
		}
		for i < hi && cur[i] == img[i] {
			i++
		}
		if i >= hi {
			return nil
		}
		start, end := i, i+1
		for j := i + 1; j < hi && j-end < mergeGap; j++ {
			if cur[j] != img[j] {
				end = j + 1
			}
		}
		if err := w.Write(base+uint64(start), img[start:end]); err != nil {
			return fmt.Errorf("btree: write at %d: %w", base+uint64(start), err)
		}
		i = end
	}
}
