package alloc

// Each allocator owns regions of the metadata heap (its bitmap, and for the
// heap allocator the arena); these helpers validate them with no overflow.

// overlaps reports whether [a, a+an) and [b, b+bn) intersect.
func overlaps(a, an, b, bn uint64) bool { return a < b+bn && b < a+an }

// fits reports whether [off, off+n) lies within a heap of size bytes.
func fits(off, n, size uint64) bool { return n <= size && off <= size-n }
