package alloc

import "errors"

var (
	// ErrNoSpace is wrapped when a reservation cannot be satisfied; the
	// message gives the request and the free space.
	ErrNoSpace = errors.New("alloc: no space")
	// ErrNotAllocated is wrapped when Free names space that is not (wholly)
	// allocated in the bitmap. Nothing is changed.
	ErrNotAllocated = errors.New("alloc: space not allocated")
	// ErrNotReserved is wrapped when Publish is given a reservation that is
	// not live: never reserved, cancelled, or already published.
	ErrNotReserved = errors.New("alloc: not a live reservation")
	// ErrBadRange is wrapped when an argument names an empty, misaligned or
	// out-of-range span.
	ErrBadRange = errors.New("alloc: invalid range")
	// ErrLayout is wrapped when an allocator's regions do not fit the heap or
	// overlap.
	ErrLayout = errors.New("alloc: invalid layout")
	// ErrOverlap is wrapped when an extent inserted into a FreeIndex overlaps
	// one already free: the same space freed twice.
	ErrOverlap = errors.New("alloc: free extents overlap")
	// ErrNotFree is wrapped when a FreeIndex is asked to remove a range that
	// is not contained in one free extent.
	ErrNotFree = errors.New("alloc: range not free")
	// ErrInconsistent is wrapped by every problem Check reports.
	ErrInconsistent = errors.New("alloc: inconsistent")
)
