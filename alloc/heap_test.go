package alloc

import (
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"vosfs/umem"
	"vosfs/wal"
)

const (
	tHeapSize  = 1 << 20
	tBitmapOff = 64
	tArenaOff  = 8192
	tUnits     = 1000
	tArenaSize = tUnits * HeapUnit
)

func newTestHeap(t testing.TB) (*umem.Heap, *Heap, *testLog) {
	t.Helper()
	h := umem.New(tHeapSize)
	a, err := NewHeap(h, tBitmapOff, tArenaOff, tArenaSize)
	require.NoError(t, err)
	return h, a, &testLog{}
}

func heapBits(t testing.TB, h *umem.Heap, start, n uint64) string {
	t.Helper()
	return bitString(t, h, tBitmapOff, start, n)
}

func freeExtents(a *Heap) []Range {
	a.mu.Lock()
	defer a.mu.Unlock()
	return allRanges(a.free)
}

// unitOff is the heap offset of arena unit u.
func unitOff(u uint64) uint64 { return tArenaOff + u*HeapUnit }

func TestHeapReservePublishCommit(t *testing.T) {
	h, a, log := newTestHeap(t)
	require.Equal(t, HeapStats{Total: 64000, Free: 64000}, a.Stats())

	r, err := a.Reserve(100)
	require.NoError(t, err)
	require.Equal(t, uint64(tArenaOff), r.Off())
	require.Equal(t, uint64(128), r.Size())
	require.Equal(t, HeapStats{Total: 64000, Free: 64000 - 128, Reserved: 128}, a.Stats())
	require.Equal(t, "0000", heapBits(t, h, 0, 4), "reserve must not touch the heap")
	require.NoError(t, a.Check(nil), "a held reservation is neither lost nor leaked")

	var off uint64
	commit(t, h, log, func(tx *umem.Tx) error {
		require.NoError(t, a.Publish(tx, r))
		require.Equal(t, "1100", txBitString(t, tx, tBitmapOff, 0, 4))
		off, err = a.Alloc(tx, 1)
		return err
	})
	require.Equal(t, unitOff(2), off)
	require.Equal(t, "1110", heapBits(t, h, 0, 4))
	require.Equal(t, uint64(3), countSet(t, h, tBitmapOff, tUnits))
	require.Equal(t, HeapStats{Total: 64000, Free: 64000 - 192}, a.Stats())
	require.Equal(t, []Range{{3, 997}}, freeExtents(a))
	require.NoError(t, a.Check([]Span{{r.Off(), 100}, {off, 1}}))

	// The bits were logged: replaying the records gives the same bitmap.
	h2 := log.replay(t, tHeapSize)
	require.Equal(t, "1110", heapBits(t, h2, 0, 4))
	require.Equal(t, uint64(3), countSet(t, h2, tBitmapOff, tUnits))
}

func TestHeapAbortAfterPublish(t *testing.T) {
	h, a, _ := newTestHeap(t)
	r, err := a.Reserve(64 * 5)
	require.NoError(t, err)
	tx := h.Begin(txLimit)
	require.NoError(t, a.Publish(tx, r))
	require.ErrorIs(t, a.Publish(tx, r), ErrNotReserved, "published twice")
	require.Equal(t, "111110", txBitString(t, tx, tBitmapOff, 0, 6))
	require.Equal(t, uint64(5*64), a.Stats().Reserved, "owned by the tx until it ends")
	a.Cancel(r) // the tx owns it: a no-op
	require.Equal(t, HeapStats{Total: 64000, Free: 64000 - 5*64, Reserved: 5 * 64}, a.Stats())
	tx.Abort()

	require.Equal(t, "000000", heapBits(t, h, 0, 6))
	require.Equal(t, HeapStats{Total: 64000, Free: 64000}, a.Stats())
	require.Equal(t, []Range{{0, 1000}}, freeExtents(a))
	require.NoError(t, a.Check(nil))
	tx = h.Begin(txLimit)
	require.ErrorIs(t, a.Publish(tx, r), ErrNotReserved, "the abort ended the reservation")
	tx.Abort()
}

func TestHeapCommitFailureReturnsSpace(t *testing.T) {
	h, a, log := newTestHeap(t)
	log.fail = errInjected
	tx := h.Begin(txLimit)
	off, err := a.Alloc(tx, 640)
	require.NoError(t, err)
	require.Equal(t, unitOff(0), off)
	_, err = tx.Commit(log)
	require.ErrorIs(t, err, errInjected)
	require.Equal(t, HeapStats{Total: 64000, Free: 64000}, a.Stats())
	require.Equal(t, uint64(0), countSet(t, h, tBitmapOff, tUnits))
	require.NoError(t, a.Check(nil))
}

func TestHeapPublishOnEndedTx(t *testing.T) {
	h, a, _ := newTestHeap(t)
	r, err := a.Reserve(64)
	require.NoError(t, err)
	tx := h.Begin(txLimit)
	tx.Abort()
	require.ErrorIs(t, a.Publish(tx, r), umem.ErrTxDone)
	require.Equal(t, uint64(64), a.Stats().Reserved, "still the caller's")
	a.Cancel(r)
	require.Equal(t, HeapStats{Total: 64000, Free: 64000}, a.Stats())

	// A tx that fails later aborts, and the reservation comes back.
	r, err = a.Reserve(64)
	require.NoError(t, err)
	tx = h.Begin(int(wal.RecordSize(0)) + wal.CopySize(1)) // room for one bit change only
	require.NoError(t, a.Publish(tx, r))
	_, err = a.Alloc(tx, 64)
	require.Error(t, err)
	_, err = tx.Commit(&testLog{})
	require.Error(t, err)
	require.Equal(t, HeapStats{Total: 64000, Free: 64000}, a.Stats())
	require.NoError(t, a.Check(nil))
}

func TestHeapCancel(t *testing.T) {
	h, a, _ := newTestHeap(t)
	r1, err := a.Reserve(64)
	require.NoError(t, err)
	r2, err := a.Reserve(65)
	require.NoError(t, err)
	require.Equal(t, unitOff(1), r2.Off())
	a.Cancel(r1)
	require.Equal(t, HeapStats{Total: 64000, Free: 64000 - 128, Reserved: 128}, a.Stats())
	require.Equal(t, []Range{{0, 1}, {3, 997}}, freeExtents(a))
	a.Cancel(r1) // twice: a no-op
	require.Equal(t, []Range{{0, 1}, {3, 997}}, freeExtents(a))
	a.Cancel(HeapRes{})
	a.Cancel(r2)
	require.Equal(t, []Range{{0, 1000}}, freeExtents(a))
	require.Equal(t, HeapStats{Total: 64000, Free: 64000}, a.Stats())
	tx := h.Begin(txLimit)
	require.ErrorIs(t, a.Publish(tx, r1), ErrNotReserved)
	require.ErrorIs(t, a.Publish(tx, HeapRes{}), ErrNotReserved)
	require.True(t, tx.Empty())
	tx.Abort()
	r3, err := a.Reserve(64)
	require.NoError(t, err)
	require.Equal(t, unitOff(0), r3.Off(), "cancelled space is reused at once")
	require.Equal(t, uint64(0), countSet(t, h, tBitmapOff, tUnits))
}

func TestHeapFreeOnCommit(t *testing.T) {
	h, a, log := newTestHeap(t)
	var offs []uint64
	commit(t, h, log, func(tx *umem.Tx) error {
		for range 3 {
			off, err := a.Alloc(tx, 128)
			if err != nil {
				return err
			}
			offs = append(offs, off)
		}
		return nil
	})
	require.Equal(t, []uint64{unitOff(0), unitOff(2), unitOff(4)}, offs)
	require.Equal(t, "1111110", heapBits(t, h, 0, 7))

	tx := h.Begin(txLimit)
	require.NoError(t, a.Free(tx, offs[1], 128))
	require.Equal(t, "1100110", txBitString(t, tx, tBitmapOff, 0, 7))
	require.Equal(t, []Range{{6, 994}}, freeExtents(a), "not reservable before the commit")
	r, err := a.Reserve(128) // Reserve does not need the heap lock
	require.NoError(t, err)
	require.Equal(t, unitOff(6), r.Off())
	a.Cancel(r)
	_, err = tx.Commit(log)
	require.NoError(t, err)

	require.Equal(t, "1100110", heapBits(t, h, 0, 7))
	require.Equal(t, []Range{{2, 2}, {6, 994}}, freeExtents(a))
	require.Equal(t, HeapStats{Total: 64000, Free: 64000 - 4*64}, a.Stats())
	require.NoError(t, a.Check([]Span{{offs[0], 128}, {offs[2], 128}}))
	r, err = a.Reserve(100)
	require.NoError(t, err)
	require.Equal(t, offs[1], r.Off(), "freed heap space is reused at once")
	a.Cancel(r)

	// Freeing the rest coalesces everything.
	commit(t, h, log, func(tx *umem.Tx) error {
		if err := a.Free(tx, offs[0], 128); err != nil {
			return err
		}
		return a.Free(tx, offs[2], 65) // rounded up like the allocation
	})
	require.Equal(t, []Range{{0, 1000}}, freeExtents(a))
	require.Equal(t, uint64(0), countSet(t, h, tBitmapOff, tUnits))
	require.NoError(t, a.Check(nil))
	require.Equal(t, uint64(0), countSet(t, log.replay(t, tHeapSize), tBitmapOff, tUnits))
}

func TestHeapFreeAbort(t *testing.T) {
	h, a, log := newTestHeap(t)
	var off uint64
	commit(t, h, log, func(tx *umem.Tx) (err error) {
		off, err = a.Alloc(tx, 256)
		return err
	})
	tx := h.Begin(txLimit)
	require.NoError(t, a.Free(tx, off, 256))
	tx.Abort()
	require.Equal(t, "11110", heapBits(t, h, 0, 5))
	require.Equal(t, []Range{{4, 996}}, freeExtents(a))
	require.NoError(t, a.Check([]Span{{off, 256}}))
}

func TestHeapFreeNotAllocated(t *testing.T) {
	h, a, log := newTestHeap(t)
	var off uint64
	commit(t, h, log, func(tx *umem.Tx) (err error) {
		off, err = a.Alloc(tx, 128)
		return err
	})
	tx := h.Begin(txLimit)
	err := a.Free(tx, unitOff(5), 64)
	require.ErrorIs(t, err, ErrNotAllocated)
	require.EqualError(t, err, "alloc: space not allocated: free of heap [8512, +64 bytes) (units [5, +1))")
	require.ErrorIs(t, a.Free(tx, off, 192), ErrNotAllocated, "partly allocated")
	require.ErrorIs(t, a.Free(tx, off+1, 64), ErrBadRange, "misaligned")
	require.ErrorIs(t, a.Free(tx, off, 0), ErrBadRange)
	require.ErrorIs(t, a.Free(tx, tArenaOff-64, 64), ErrBadRange, "before the arena")
	require.ErrorIs(t, a.Free(tx, unitOff(999), 128), ErrBadRange, "past the arena")
	require.True(t, tx.Empty(), "nothing changed")
	require.NoError(t, a.Free(tx, off, 128))
	require.ErrorIs(t, a.Free(tx, off, 64), ErrNotAllocated, "freed twice in one tx")
	_, err = tx.Commit(log)
	require.NoError(t, err)
	require.Equal(t, []Range{{0, 1000}}, freeExtents(a))
	require.NoError(t, a.Check(nil))
}

func TestHeapNoSpace(t *testing.T) {
	h := umem.New(umem.ChunkSize * 4)
	a, err := NewHeap(h, 0, 4096, 10*HeapUnit)
	require.NoError(t, err)
	log := &testLog{}
	var offs []uint64
	commit(t, h, log, func(tx *umem.Tx) error {
		for range 10 {
			off, err := a.Alloc(tx, 64)
			if err != nil {
				return err
			}
			offs = append(offs, off)
		}
		return nil
	})
	_, err = a.Reserve(1)
	require.ErrorIs(t, err, ErrNoSpace)
	require.EqualError(t, err, "alloc: no space: heap reservation of 1 bytes: 0 bytes free, largest free extent 0 bytes")
	require.Equal(t, HeapStats{Total: 640, Free: 0}, a.Stats())

	// Free units 2-3 and 6-7: 256 bytes free, but 192 do not fit.
	commit(t, h, log, func(tx *umem.Tx) error {
		for _, i := range []int{2, 3, 6, 7} {
			if err := a.Free(tx, offs[i], 64); err != nil {
				return err
			}
		}
		return nil
	})
	_, err = a.Reserve(129)
	require.EqualError(t, err, "alloc: no space: heap reservation of 129 bytes: 256 bytes free, largest free extent 128 bytes")
	require.Equal(t, HeapStats{Total: 640, Free: 256}, a.Stats(), "nothing lost")
	r1, err := a.Reserve(128)
	require.NoError(t, err)
	r2, err := a.Reserve(128)
	require.NoError(t, err)
	require.Equal(t, []uint64{offs[2], offs[6]}, []uint64{r1.Off(), r2.Off()})
	_, err = a.Reserve(64)
	require.ErrorIs(t, err, ErrNoSpace)
	a.Cancel(r1)
	a.Cancel(r2)
	require.Equal(t, HeapStats{Total: 640, Free: 256}, a.Stats())
	_, err = a.Reserve(^uint64(0))
	require.ErrorIs(t, err, ErrNoSpace)
	_, err = a.Reserve(0)
	require.ErrorIs(t, err, ErrBadRange)
	require.NoError(t, a.Check([]Span{{offs[0], 128}, {offs[4], 128}, {offs[8], 128}}))
}

func TestHeapBestFit(t *testing.T) {
	h, a, log := newTestHeap(t)
	// Allocate units 0-9, then free holes of 3 (1-3), 1 (5) and 2 (7-8).
	var offs []uint64
	commit(t, h, log, func(tx *umem.Tx) error {
		for range 10 {
			off, err := a.Alloc(tx, 64)
			if err != nil {
				return err
			}
			offs = append(offs, off)
		}
		return nil
	})
	commit(t, h, log, func(tx *umem.Tx) error {
		for _, u := range []int{1, 2, 3, 5, 7, 8} {
			if err := a.Free(tx, offs[u], 64); err != nil {
				return err
			}
		}
		return nil
	})
	require.Equal(t, []Range{{1, 3}, {5, 1}, {7, 2}, {10, 990}}, freeExtents(a))
	for _, c := range []struct {
		size uint64
		unit uint64
	}{{128, 7}, {64, 5}, {65, 1}, {64, 3}, {64, 10}} {
		r, err := a.Reserve(c.size)
		require.NoError(t, err)
		require.Equal(t, unitOff(c.unit), r.Off(), "reserve %d", c.size)
	}
}

func TestHeapReopenRebuild(t *testing.T) {
	h, a, log := newTestHeap(t)
	rng := rand.New(rand.NewPCG(7, 7))
	live := map[uint64]uint64{}
	for range 50 {
		commit(t, h, log, func(tx *umem.Tx) error {
			for range 5 {
				if len(live) > 0 && rng.IntN(3) == 0 {
					offs := slices.Sorted(maps.Keys(live))
					off := offs[rng.IntN(len(offs))]
					size := live[off]
					delete(live, off)
					return a.Free(tx, off, size)
				}
				size := uint64(1 + rng.IntN(300))
				off, err := a.Alloc(tx, size)
				if err != nil {
					return err
				}
				live[off] = size
			}
			return nil
		})
	}
	var refs []Span
	for off, size := range live {
		refs = append(refs, Span{off, size})
	}
	require.NoError(t, a.Check(refs))
	want := freeExtents(a)

	b, err := NewHeap(h, tBitmapOff, tArenaOff, tArenaSize)
	require.NoError(t, err)
	require.Equal(t, want, freeExtents(b))
	require.Equal(t, a.Stats(), b.Stats())
	require.NoError(t, b.Check(refs))

	// Replaying the log into an empty heap gives the same allocator.
	c, err := NewHeap(log.replay(t, tHeapSize), tBitmapOff, tArenaOff, tArenaSize)
	require.NoError(t, err)
	require.Equal(t, want, freeExtents(c))
	require.NoError(t, c.Check(refs))
}

func TestHeapCheckFindsProblems(t *testing.T) {
	h, a, log := newTestHeap(t)
	var x, y uint64
	commit(t, h, log, func(tx *umem.Tx) (err error) {
		if x, err = a.Alloc(tx, 128); err != nil {
			return err
		}
		y, err = a.Alloc(tx, 64)
		return err
	})
	require.NoError(t, a.Check([]Span{{x, 128}, {y, 64}}))

	// Leak: an allocated unit no reference covers.
	err := a.Check([]Span{{x, 128}})
	require.ErrorIs(t, err, ErrInconsistent)
	require.EqualError(t, err, "alloc: inconsistent: heap [8320, +64 bytes) (units [2, +1)) is allocated in the bitmap but not referenced (leaked space)")

	// Overlap, referenced-but-free, misaligned and outside.
	err = a.Check([]Span{{x, 128}, {y, 64}, {y, 128}, {unitOff(10), 64}, {x + 3, 64}, {unitOff(999), 128}})
	require.ErrorIs(t, err, ErrInconsistent)
	require.Equal(t, []string{
		"alloc: inconsistent: reference 4 (heap [8195, +64 bytes)): alloc: invalid range: heap span [8195, +64) is empty or not at a unit of the arena at 8192",
		"alloc: inconsistent: reference 5 (heap [72128, +128 bytes)): alloc: invalid range: heap span [72128, +128) outside the arena [8192, +64000)",
		"alloc: inconsistent: reference 2 (heap [8320, +128 bytes)) overlaps reference 1 (heap [8320, +64 bytes))",
		"alloc: inconsistent: reference 2 (heap [8320, +128 bytes)): heap [8384, +64 bytes) (units [3, +1)) is free in the bitmap",
		"alloc: inconsistent: reference 3 (heap [8832, +64 bytes)): heap [8832, +64 bytes) (units [10, +1)) is free in the bitmap",
	}, problems(err))

	// An allocated unit in the free index, and a free range lost from it.
	a.mu.Lock()
	require.NoError(t, a.free.Insert(2, 1))
	require.NoError(t, a.free.Remove(500, 10))
	a.mu.Unlock()
	err = a.Check([]Span{{x, 128}, {y, 64}})
	require.Equal(t, []string{
		"alloc: inconsistent: free extent heap [8320, +31872 bytes) (units [2, +498)): heap [8320, +64 bytes) (units [2, +1)) is allocated in the bitmap",
		"alloc: inconsistent: heap [40192, +640 bytes) (units [500, +10)) is clear in the bitmap but neither free nor reserved (lost space)",
	}, problems(err))

	// A reservation overlapping free space (the same space handed out twice).
	a.mu.Lock()
	require.NoError(t, a.free.Remove(2, 1))
	require.NoError(t, a.free.Insert(500, 10))
	a.resv.add(Range{600, 2})
	a.mu.Unlock()
	err = a.Check([]Span{{x, 128}, {y, 64}})
	require.Equal(t, []string{
		"alloc: inconsistent: reservation heap [46592, +128 bytes) (units [600, +2)) overlaps free extent heap [8384, +63808 bytes) (units [3, +997))",
	}, problems(err))
	a.mu.Lock()
	a.resv.remove(Range{600, 2})
	a.mu.Unlock()
	require.NoError(t, a.Check([]Span{{x, 128}, {y, 64}}))

	// A double free caught by a hook is kept for Check.
	a.mu.Lock()
	a.insertLocked(Range{700, 1})
	a.mu.Unlock()
	require.EqualError(t, a.Check([]Span{{x, 128}, {y, 64}}),
		"alloc: inconsistent: returning heap [52992, +64 bytes) (units [700, +1)) to the free index: alloc: free extents overlap: inserting [700, +1), already free [3, +997)")
}

func TestHeapLayoutErrors(t *testing.T) {
	h := umem.New(1 << 16)
	for _, c := range []struct {
		bitmap, arena, size uint64
		msg                 string
	}{
		{0, 4096, 0, "alloc: invalid layout: arena at 4096 of 0 bytes is empty or not aligned to 64-byte units"},
		{0, 4096, 100, "alloc: invalid layout: arena at 4096 of 100 bytes is empty or not aligned to 64-byte units"},
		{0, 4100, 640, "alloc: invalid layout: arena at 4100 of 640 bytes is empty or not aligned to 64-byte units"},
		{0, 1 << 15, 1 << 15, ""},
		{0, 1 << 15, 1<<15 + 64, "alloc: invalid layout: arena [32768, +32832) outside the heap of 65536 bytes"},
		{1<<16 - 2, 0, 1024, ""}, // the bitmap's last byte is the heap's
		{1<<16 - 1, 0, 1024, "alloc: invalid layout: heap bitmap [65535, +2) outside the heap of 65536 bytes"},
		{100, 64, 640, "alloc: invalid layout: heap bitmap [100, +2) overlaps the arena [64, +640)"},
		{^uint64(0), 64, 640, "alloc: invalid layout: heap bitmap [18446744073709551615, +2) outside the heap of 65536 bytes"},
	} {
		_, err := NewHeap(h, c.bitmap, c.arena, c.size)
		if c.msg == "" {
			require.NoError(t, err, "%+v", c)
			continue
		}
		require.ErrorIs(t, err, ErrLayout, "%+v", c)
		require.EqualError(t, err, c.msg, "%+v", c)
	}
	_, err := NewHeap(nil, 0, 64, 64)
	require.ErrorIs(t, err, ErrLayout)
}

// heapModel is the test's knowledge of a heap allocator's live space.
type heapModel struct {
	live map[uint64]uint64 // allocated: offset -> requested size
}

func (m *heapModel) refs() []Span {
	var s []Span
	for off, size := range m.live {
		s = append(s, Span{off, size})
	}
	return s
}

func (m *heapModel) used() uint64 {
	var n uint64
	for _, size := range m.live {
		n += unitsFor(size) * HeapUnit
	}
	return n
}

func TestHeapRandom(t *testing.T) {
	const arenaSize = 300 * HeapUnit // small, to run out of space
	h, log := umem.New(tHeapSize), &testLog{}
	a, err := NewHeap(h, tBitmapOff, tArenaOff, arenaSize)
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(42, 1))
	m := heapModel{live: map[uint64]uint64{}}
	var held []HeapRes // reservations held across steps
	var nospace, aborts, commits, frees int
	pick := func() (uint64, uint64) { // deterministic for the seed
		if len(m.live) == 0 {
			return 0, 0
		}
		offs := slices.Sorted(maps.Keys(m.live))
		off := offs[rng.IntN(len(offs))]
		return off, m.live[off]
	}
	for step := range 3000 {
		switch op := rng.IntN(10); {
		case op < 2: // reserve, held for later
			r, err := a.Reserve(uint64(1 + rng.IntN(2000)))
			if err != nil {
				require.ErrorIs(t, err, ErrNoSpace)
				nospace++
				break
			}
			held = append(held, r)
		case op < 3 && len(held) > 0: // cancel
			i := rng.IntN(len(held))
			a.Cancel(held[i])
			held = append(held[:i], held[i+1:]...)
		default: // a transaction of publishes, allocs and frees
			tx := h.Begin(txLimit)
			pending := map[uint64]uint64{}
			freed := map[uint64]bool{}
			for range 1 + rng.IntN(6) {
				switch k := rng.IntN(5); {
				case k == 0 && len(held) > 0:
					r := held[0]
					held = held[1:]
					require.NoError(t, a.Publish(tx, r))
					pending[r.Off()] = r.Size()
				case k <= 2:
					size := uint64(1 + rng.IntN(1500))
					off, err := a.Alloc(tx, size)
					if err != nil {
						require.ErrorIs(t, err, ErrNoSpace)
						nospace++
						continue
					}
					pending[off] = size
				default:
					off, size := pick()
					if size == 0 || freed[off] {
						continue
					}
					require.NoError(t, a.Free(tx, off, size))
					freed[off] = true
				}
			}
			if rng.IntN(4) == 0 {
				tx.Abort()
				aborts++
				break
			}
			_, err := tx.Commit(log)
			require.NoError(t, err)
			commits, frees = commits+1, frees+len(freed)
			for off := range freed {
				delete(m.live, off)
			}
			for off, size := range pending {
				m.live[off] = size
			}
		}
		require.NoError(t, a.Check(m.refs()), "step %d", step)
		var heldBytes uint64
		for _, r := range held {
			heldBytes += r.Size()
		}
		st := a.Stats()
		require.Equal(t, heldBytes, st.Reserved, "step %d", step)
		require.Equal(t, st.Total, st.Free+st.Reserved+m.used(), "step %d", step)
	}
	t.Logf("%d commits (%d frees), %d aborts, %d out of space", commits, frees, aborts, nospace)
	require.NotZero(t, nospace)
	require.NotZero(t, aborts)
	require.NotZero(t, frees)
	for _, r := range held {
		a.Cancel(r)
	}
	b, err := NewHeap(log.replay(t, tHeapSize), tBitmapOff, tArenaOff, arenaSize)
	require.NoError(t, err)
	require.Equal(t, freeExtents(a), freeExtents(b))
	require.NoError(t, b.Check(m.refs()))
}

// TestHeapConcurrent runs reservers beside transactions, for the race
// detector and the lock order.
func TestHeapConcurrent(t *testing.T) {
	h, a, log := newTestHeap(t)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				r, err := a.Reserve(uint64(64 * (1 + (g+i)%5)))
				if err != nil {
					continue
				}
				_ = a.Stats()
				a.Cancel(r)
			}
		}()
	}
	var mu sync.Mutex
	live := map[uint64]uint64{}
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				tx := h.Begin(txLimit)
				off, err := a.Alloc(tx, uint64(1+(g*7+i)%200))
				if err != nil {
					tx.Abort()
					continue
				}
				if i%3 == 0 {
					tx.Abort()
					continue
				}
				mu.Lock()
				var freeOff, freeSize uint64
				for o, s := range live {
					if i%2 == 0 {
						freeOff, freeSize = o, s
						delete(live, o)
					}
					break
				}
				live[off] = uint64(1 + (g*7+i)%200)
				mu.Unlock()
				if freeSize != 0 {
					require.NoError(t, a.Free(tx, freeOff, freeSize))
				}
				_, err = tx.Commit(log)
				require.NoError(t, err)
			}
		}()
	}
	wg.Wait()
	var refs []Span
	for off, size := range live {
		refs = append(refs, Span{off, size})
	}
	require.NoError(t, a.Check(refs))
	require.Equal(t, uint64(0), a.Stats().Reserved)
}

func TestHeapCheckReportsIndexAndLimit(t *testing.T) {
	h, a, log := newTestHeap(t)
	var offs []uint64
	commit(t, h, log, func(tx *umem.Tx) error {
		for range tUnits {
			off, err := a.Alloc(tx, 64)
			if err != nil {
				return err
			}
			offs = append(offs, off)
		}
		return nil
	})
	_, err := a.Reserve(1)
	require.ErrorIs(t, err, ErrNoSpace)
	var refs []Span
	for i := 0; i < tUnits; i += 2 {
		refs = append(refs, Span{offs[i], 64})
	}
	p := problems(a.Check(refs))
	require.Len(t, p, maxProblems+1)
	require.Equal(t, "alloc: inconsistent: heap [8256, +64 bytes) (units [1, +1)) is allocated in the bitmap but not referenced (leaked space)", p[0])
	require.Equal(t, "alloc: inconsistent: 400 more problems not listed", p[maxProblems])

	// Free two neighbours in separate transactions, then break the index's
	// coalescing by hand.
	commit(t, h, log, func(tx *umem.Tx) error { return a.Free(tx, offs[10], 64) })
	commit(t, h, log, func(tx *umem.Tx) error { return a.Free(tx, offs[11], 64) })
	require.Equal(t, []Range{{10, 2}}, freeExtents(a))
	a.mu.Lock()
	a.free.del(Range{10, 2})
	a.free.add(Range{10, 1})
	a.free.add(Range{11, 1})
	a.mu.Unlock()
	all := make([]Span, 0, tUnits)
	for i, off := range offs {
		if i != 10 && i != 11 {
			all = append(all, Span{off, 64})
		}
	}
	require.Equal(t, []string{
		"alloc: inconsistent: free extents [10, +1) and [11, +1) touch (not coalesced)",
	}, problems(a.Check(all)))
}

// TestHeapDeletionReserve: the deletion reserve is set aside from the top
// of the free space in whole chunks; Reserve and Alloc never take it,
// ReserveFreeing and AllocFreeing do once the free space has no room; freed
// space refills it, once there are whole chunks of it; and Check counts
// it as free.
func TestHeapDeletionReserve(t *testing.T) {
	h := umem.New(umem.ChunkSize * 4)
	a, err := NewHeap(h, 0, 4096, 10*HeapUnit)
	require.NoError(t, err)
	a.SetDeletionReserve(130, 2*HeapUnit) // 3 units, in chunks of 2: 4 units
	require.Equal(t, HeapStats{Total: 640, Free: 384, Spare: 256, SpareTarget: 192}, a.Stats())
	log := &testLog{}
	var offs []uint64
	commit(t, h, log, func(tx *umem.Tx) error {
		for range 6 {
			off, err := a.Alloc(tx, 64)
			if err != nil {
				return err
			}
			offs = append(offs, off)
		}
		return nil
	})
	require.Equal(t, uint64(4096+5*HeapUnit), offs[5], "the reserve is the top of the arena")
	_, err = a.Reserve(1)
	require.ErrorIs(t, err, ErrNoSpace)
	require.EqualError(t, err, "alloc: no space: heap reservation of 1 bytes: 0 bytes free, largest free extent 0 bytes (and 256 bytes of deletion reserve)")
	require.NoError(t, a.Check([]Span{{offs[0], 6 * 64}}), "the reserve is free space")

	// A freeing transaction takes the reserve, to its last unit.
	commit(t, h, log, func(tx *umem.Tx) error {
		for range 4 {
			off, err := a.AllocFreeing(tx, 64)
			if err != nil {
				return err
			}
			offs = append(offs, off)
		}
		return nil
	})
	require.Equal(t, HeapStats{Total: 640, SpareTarget: 192}, a.Stats())
	_, err = a.ReserveFreeing(64)
	require.ErrorIs(t, err, ErrNoSpace)

	// Freed units refill it once they make a whole chunk: units 0 and 2
	// do not, 0-2 do (the reserve takes all three, its target), and 3
	// stays free.
	commit(t, h, log, func(tx *umem.Tx) error {
		for _, i := range []int{0, 2} {
			if err := a.Free(tx, offs[i], 64); err != nil {
				return err
			}
		}
		return nil
	})
	require.Equal(t, HeapStats{Total: 640, Free: 128, SpareTarget: 192}, a.Stats())
	commit(t, h, log, func(tx *umem.Tx) error {
		for _, i := range []int{1, 3} {
			if err := a.Free(tx, offs[i], 64); err != nil {
				return err
			}
		}
		return nil
	})
	require.Equal(t, HeapStats{Total: 640, Free: 64, Spare: 192, SpareTarget: 192}, a.Stats())
	r1, err := a.Reserve(64)
	require.NoError(t, err)
	require.Equal(t, offs[3], r1.Off())
	_, err = a.Reserve(64)
	require.ErrorIs(t, err, ErrNoSpace)
	r2, err := a.ReserveFreeing(128)
	require.NoError(t, err)
	a.Cancel(r2) // back to the free space, and from there to the reserve
	a.Cancel(r1)
	require.Equal(t, HeapStats{Total: 640, Free: 64, Spare: 192, SpareTarget: 192}, a.Stats())
	require.NoError(t, a.Check([]Span{{offs[4], 6 * 64}}))

	// A smaller reserve gives the excess back; a larger one than the
	// arena keeps all that is free.
	a.SetDeletionReserve(64, 64)
	require.Equal(t, HeapStats{Total: 640, Free: 192, Spare: 64, SpareTarget: 64}, a.Stats())
	a.SetDeletionReserve(1<<20, 64)
	require.Equal(t, HeapStats{Total: 640, Free: 0, Spare: 256, SpareTarget: 640}, a.Stats())
	require.NoError(t, a.Check([]Span{{offs[4], 6 * 64}}))
}

// TestHeapDeletionReserveStaysWhole: a freeing transaction's small
// allocation cut from the reserve goes back to it when freed, so the
// reserve keeps its whole chunks; a free next to the reserve beyond its
// target stays free space.
func TestHeapDeletionReserveStaysWhole(t *testing.T) {
	h := umem.New(umem.ChunkSize * 4)
	a, err := NewHeap(h, 0, 4096, 12*HeapUnit)
	require.NoError(t, err)
	a.SetDeletionReserve(4*HeapUnit, 4*HeapUnit) // units 8-11
	log := &testLog{}
	var offs []uint64
	commit(t, h, log, func(tx *umem.Tx) error {
		for range 8 {
			off, err := a.Alloc(tx, 64)
			if err != nil {
				return err
			}
			offs = append(offs, off)
		}
		return nil
	})
	var cut uint64
	commit(t, h, log, func(tx *umem.Tx) error {
		cut, err = a.AllocFreeing(tx, 64)
		return err
	})
	require.Equal(t, uint64(4096+8*HeapUnit), cut, "best fit in the reserve")
	require.Equal(t, HeapStats{Total: 768, Spare: 192, SpareTarget: 256}, a.Stats())
	commit(t, h, log, func(tx *umem.Tx) error { return a.Free(tx, cut, 64) })
	require.Equal(t, HeapStats{Total: 768, Spare: 256, SpareTarget: 256}, a.Stats())
	r, err := a.ReserveFreeing(256)
	require.NoError(t, err, "whole again: one node-sized extent")
	a.Cancel(r)
	// Unit 7 borders on the full reserve: it is free space.
	commit(t, h, log, func(tx *umem.Tx) error { return a.Free(tx, offs[7], 64) })
	require.Equal(t, HeapStats{Total: 768, Free: 64, Spare: 256, SpareTarget: 256}, a.Stats())
	require.NoError(t, a.Check([]Span{{offs[0], 7 * 64}}))
}
