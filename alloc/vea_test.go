package alloc

import (
	"cmp"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"vosfs/umem"
	"vosfs/wal"
)

const (
	vHeapSize  = 1 << 16
	vBitmapOff = 128
)

type veaEnv struct {
	h       *umem.Heap
	v       *VEA
	log     *testLog
	durable *durableID
}

func newTestVEA(t testing.TB, blocks uint64) *veaEnv {
	t.Helper()
	e := &veaEnv{h: umem.New(vHeapSize), log: &testLog{}, durable: &durableID{}}
	var err error
	e.v, err = NewVEA(e.h, vBitmapOff, blocks, e.durable.get)
	require.NoError(t, err)
	return e
}

func (e *veaEnv) bits(t testing.TB, start, n uint64) string {
	t.Helper()
	return bitString(t, e.h, vBitmapOff, start, n)
}

// alloc reserves count blocks and publishes them in one committed tx.
func (e *veaEnv) alloc(t testing.TB, hint *Hint, count uint64) []Extent {
	t.Helper()
	exts, err := e.v.Reserve(hint, count)
	require.NoError(t, err)
	commit(t, e.h, e.log, func(tx *umem.Tx) error { return e.v.Publish(tx, exts) })
	return exts
}

// free frees exts in one committed tx and returns its ID.
func (e *veaEnv) free(t testing.TB, exts ...Extent) wal.ID {
	t.Helper()
	return commit(t, e.h, e.log, func(tx *umem.Tx) error { return e.v.Free(tx, exts) })
}

func veaFree(v *VEA) []Range {
	v.mu.Lock()
	defer v.mu.Unlock()
	return allRanges(v.free)
}

func TestVEAReservePublishCommit(t *testing.T) {
	e := newTestVEA(t, 100)
	require.Equal(t, VEAStats{Blocks: 100, Free: 100}, e.v.Stats())
	exts, err := e.v.Reserve(nil, 10)
	require.NoError(t, err)
	require.Equal(t, []Extent{{0, 10}}, exts)
	require.Equal(t, VEAStats{Blocks: 100, Free: 90, Reserved: 10}, e.v.Stats())
	require.Equal(t, rep('0', 12), e.bits(t, 0, 12))
	require.NoError(t, e.v.Check(nil))

	id := commit(t, e.h, e.log, func(tx *umem.Tx) error { return e.v.Publish(tx, exts) })
	require.Equal(t, wal.ID(100), id)
	require.Equal(t, rep('1', 10)+"00", e.bits(t, 0, 12))
	require.Equal(t, uint64(10), countSet(t, e.h, vBitmapOff, 100))
	require.Equal(t, VEAStats{Blocks: 100, Free: 90}, e.v.Stats())
	require.NoError(t, e.v.Check(exts))
	require.Equal(t, rep('1', 10)+"00", bitString(t, e.log.replay(t, vHeapSize), vBitmapOff, 0, 12))
}

func TestVEAAbortAndCancel(t *testing.T) {
	e := newTestVEA(t, 100)
	exts, err := e.v.Reserve(nil, 30)
	require.NoError(t, err)
	tx := e.h.Begin(txLimit)
	require.NoError(t, e.v.Publish(tx, exts))
	require.Equal(t, "11", txBitString(t, tx, vBitmapOff, 28, 2))
	require.ErrorIs(t, e.v.Publish(tx, exts), ErrNotReserved)
	e.v.Cancel(exts) // owned by the tx: a no-op
	require.Equal(t, VEAStats{Blocks: 100, Free: 70, Reserved: 30}, e.v.Stats())
	tx.Abort()
	require.Equal(t, rep('0', 100), e.bits(t, 0, 100))
	require.Equal(t, VEAStats{Blocks: 100, Free: 100}, e.v.Stats())
	require.Equal(t, []Range{{0, 100}}, veaFree(e.v))

	a, err := e.v.Reserve(nil, 5)
	require.NoError(t, err)
	b, err := e.v.Reserve(nil, 5)
	require.NoError(t, err)
	require.Equal(t, []Extent{{5, 5}}, b)
	e.v.Cancel(a)
	e.v.Cancel(a)
	require.Equal(t, VEAStats{Blocks: 100, Free: 95, Reserved: 5}, e.v.Stats())
	tx = e.h.Begin(txLimit)
	require.ErrorIs(t, e.v.Publish(tx, a), ErrNotReserved)
	require.ErrorIs(t, e.v.Publish(tx, []Extent{{5, 4}}), ErrNotReserved, "part of a reservation")
	require.ErrorIs(t, e.v.Publish(tx, []Extent{{5, 5}, {5, 5}}), ErrNotReserved, "twice in one call")
	require.True(t, tx.Empty())
	require.NoError(t, e.v.Publish(tx, nil))
	tx.Abort()
	tx.Abort()
	require.ErrorIs(t, e.v.Publish(tx, b), umem.ErrTxDone)
	require.Equal(t, uint64(5), e.v.Stats().Reserved, "still the caller's")
	e.v.Cancel(b)
	require.Equal(t, VEAStats{Blocks: 100, Free: 100}, e.v.Stats())
	require.NoError(t, e.v.Check(nil))

	// A failed commit aborts and returns the blocks.
	exts, err = e.v.Reserve(nil, 7)
	require.NoError(t, err)
	tx = e.h.Begin(txLimit)
	require.NoError(t, e.v.Publish(tx, exts))
	_, err = tx.Commit(&testLog{fail: errInjected})
	require.ErrorIs(t, err, errInjected)
	require.Equal(t, VEAStats{Blocks: 100, Free: 100}, e.v.Stats())
	require.NoError(t, e.v.Check(nil))
}

func TestVEAHint(t *testing.T) {
	e := newTestVEA(t, 100)
	hole := e.alloc(t, nil, 10) // blocks 0-9
	mid := e.alloc(t, nil, 10)  // blocks 10-19
	e.durable.set(e.free(t, hole...) + 1)
	require.Equal(t, uint64(10), e.v.Age())
	require.Equal(t, []Range{{0, 10}, {20, 80}}, veaFree(e.v))

	var s Hint
	first, err := e.v.Reserve(&s, 30)
	require.NoError(t, err)
	require.Equal(t, []Extent{{20, 30}}, first)
	// Best fit would take the hole at 0; the hint continues the stream.
	for i := range uint64(4) {
		exts, err := e.v.Reserve(&s, 5)
		require.NoError(t, err)
		require.Equal(t, []Extent{{50 + 5*i, 5}}, exts)
	}
	exts, err := e.v.Reserve(nil, 5)
	require.NoError(t, err)
	require.Equal(t, []Extent{{0, 5}}, exts, "no hint: best fit")
	var other Hint
	exts, err = e.v.Reserve(&other, 5)
	require.NoError(t, err)
	require.Equal(t, []Extent{{5, 5}}, exts, "a fresh hint: best fit")
	// The stream's next block is taken: fall back to best fit.
	blocker, err := e.v.Reserve(nil, 30)
	require.NoError(t, err)
	require.Equal(t, []Extent{{70, 30}}, blocker)
	e.v.Cancel(blocker)
	blocker, err = e.v.Reserve(&other, 1) // other's next block is 10: allocated
	require.NoError(t, err)
	require.Equal(t, []Extent{{70, 1}}, blocker)
	exts, err = e.v.Reserve(&s, 3)
	require.NoError(t, err)
	require.Equal(t, []Extent{{71, 3}}, exts, "block 70 is taken, best fit")
	exts, err = e.v.Reserve(&s, 3)
	require.NoError(t, err)
	require.Equal(t, []Extent{{74, 3}}, exts, "sequential again")
	require.NoError(t, e.v.Check(mid))
}

func TestVEAFragmentedReserve(t *testing.T) {
	e := newTestVEA(t, 20)
	all := e.alloc(t, nil, 20)
	require.Equal(t, []Extent{{0, 20}}, all)
	e.durable.set(e.free(t, Extent{0, 5}, Extent{8, 3}, Extent{14, 4}) + 1)
	require.Equal(t, uint64(12), e.v.Age())
	require.Equal(t, []Range{{0, 5}, {8, 3}, {14, 4}}, veaFree(e.v))

	exts, err := e.v.Reserve(nil, 10)
	require.NoError(t, err)
	require.Equal(t, []Extent{{0, 5}, {14, 4}, {8, 1}}, exts, "largest first, then a best fit for the rest")
	require.Equal(t, VEAStats{Blocks: 20, Free: 2, Reserved: 10}, e.v.Stats())
	_, err = e.v.Reserve(nil, 3)
	require.ErrorIs(t, err, ErrNoSpace)
	require.EqualError(t, err, "alloc: no space: reservation of 3 blocks: 2 free (largest extent 2), 0 aging, 10 reserved, of 20")
	require.Equal(t, VEAStats{Blocks: 20, Free: 2, Reserved: 10}, e.v.Stats(), "all or nothing")

	refs := []Extent{{5, 3}, {11, 3}, {18, 2}}
	commit(t, e.h, e.log, func(tx *umem.Tx) error { return e.v.Publish(tx, exts) })
	require.Equal(t, "11111111100111111111", e.bits(t, 0, 20))
	require.NoError(t, e.v.Check(append(refs, exts...)))
}

func TestVEAAging(t *testing.T) {
	e := newTestVEA(t, 100)
	require.Equal(t, []Extent{{0, 100}}, e.alloc(t, nil, 100))
	id := e.free(t, Extent{40, 10})
	require.Equal(t, wal.ID(200), id)
	require.Equal(t, rep('1', 40)+rep('0', 10)+rep('1', 50), e.bits(t, 0, 100))
	require.Equal(t, VEAStats{Blocks: 100, Free: 0, Aging: 10}, e.v.Stats())
	require.NoError(t, e.v.Check([]Extent{{0, 40}, {50, 50}}))

	_, err := e.v.Reserve(nil, 1)
	require.EqualError(t, err, "alloc: no space: reservation of 1 blocks: 0 free (largest extent 0), 10 aging, 0 reserved, of 100")
	e.durable.set(id) // durable == id: the record is not durable yet
	_, err = e.v.Reserve(nil, 1)
	require.ErrorIs(t, err, ErrNoSpace)
	require.Equal(t, uint64(0), e.v.Age())
	require.Equal(t, VEAStats{Blocks: 100, Free: 0, Aging: 10}, e.v.Stats())

	e.durable.set(id + 1)
	got, err := e.v.Reserve(nil, 10) // Reserve promotes
	require.NoError(t, err)
	require.Equal(t, []Extent{{40, 10}}, got)
	e.v.Cancel(got)

	// Aged blocks are not reused while younger free space is available,
	// and promotion is in ID order.
	e.durable.set(0)
	id1 := e.free(t, Extent{0, 10})
	id2 := e.free(t, Extent{60, 10})
	require.Equal(t, VEAStats{Blocks: 100, Free: 10, Aging: 20}, e.v.Stats())
	got, err = e.v.Reserve(nil, 10)
	require.NoError(t, err)
	require.Equal(t, []Extent{{40, 10}}, got, "only the durable free")
	e.durable.set(id1 + 1)
	require.Equal(t, VEAStats{Blocks: 100, Free: 10, Aging: 10, Reserved: 10}, e.v.Stats(), "Stats promotes")
	e.durable.set(id2 + 1)
	require.NoError(t, e.v.Check([]Extent{{10, 30}, {50, 10}, {70, 30}}), "Check promotes")
	require.Equal(t, VEAStats{Blocks: 100, Free: 20, Reserved: 10}, e.v.Stats())
	require.Equal(t, []Range{{0, 10}, {60, 10}}, veaFree(e.v))
}

func TestVEAFreeErrors(t *testing.T) {
	e := newTestVEA(t, 100)
	e.alloc(t, nil, 10)
	tx := e.h.Begin(txLimit)
	err := e.v.Free(tx, []Extent{{0, 5}, {10, 1}})
	require.ErrorIs(t, err, ErrNotAllocated)
	require.EqualError(t, err, "alloc: space not allocated: free of blocks [10, +1)")
	require.ErrorIs(t, e.v.Free(tx, []Extent{{8, 4}}), ErrNotAllocated, "partly allocated")
	require.ErrorIs(t, e.v.Free(tx, []Extent{{0, 5}, {4, 2}}), ErrBadRange, "overlapping")
	require.ErrorIs(t, e.v.Free(tx, []Extent{{0, 0}}), ErrBadRange)
	require.ErrorIs(t, e.v.Free(tx, []Extent{{99, 2}}), ErrBadRange)
	require.ErrorIs(t, e.v.Free(tx, []Extent{{^uint64(0), 2}}), ErrBadRange)
	require.True(t, tx.Empty(), "nothing changed")
	require.NoError(t, e.v.Free(tx, nil))
	require.NoError(t, e.v.Free(tx, []Extent{{2, 3}}))
	require.ErrorIs(t, e.v.Free(tx, []Extent{{2, 1}}), ErrNotAllocated, "freed twice in one tx")
	tx.Abort()
	require.Equal(t, VEAStats{Blocks: 100, Free: 90}, e.v.Stats(), "an aborted free changes nothing")
	require.NoError(t, e.v.Check([]Extent{{0, 10}}))
	_, err = e.v.Reserve(nil, 0)
	require.ErrorIs(t, err, ErrBadRange)
}

func TestVEANoSpace(t *testing.T) {
	e := newTestVEA(t, 64)
	all, err := e.v.Reserve(nil, 64)
	require.NoError(t, err)
	_, err = e.v.Reserve(nil, 1)
	require.EqualError(t, err, "alloc: no space: reservation of 1 blocks: 0 free (largest extent 0), 0 aging, 64 reserved, of 64")
	e.v.Cancel(all)
	_, err = e.v.Reserve(nil, 65)
	require.ErrorIs(t, err, ErrNoSpace)
	require.Equal(t, VEAStats{Blocks: 64, Free: 64}, e.v.Stats(), "nothing lost")
	all = e.alloc(t, nil, 64)
	require.Equal(t, []Extent{{0, 64}}, all)
	_, err = e.v.Reserve(nil, 1)
	require.ErrorIs(t, err, ErrNoSpace)
	require.NoError(t, e.v.Check(all))
}

func TestVEAReopen(t *testing.T) {
	e := newTestVEA(t, 1000)
	rng := rand.New(rand.NewPCG(3, 4))
	var live []Extent
	for range 60 {
		if len(live) > 0 && rng.IntN(3) == 0 {
			i := rng.IntN(len(live))
			e.free(t, live[i])
			live = append(live[:i], live[i+1:]...)
			continue
		}
		live = append(live, e.alloc(t, nil, uint64(1+rng.IntN(30)))...)
	}
	require.NoError(t, e.v.Check(live))
	st := e.v.Stats()
	require.NotZero(t, st.Aging)

	// At reopen the log is replayed and durable: aged blocks are free.
	v2, err := NewVEA(e.h, vBitmapOff, 1000, e.durable.get)
	require.NoError(t, err)
	require.Equal(t, VEAStats{Blocks: 1000, Free: st.Free + st.Aging}, v2.Stats())
	require.NoError(t, v2.Check(live))
	e.durable.set(e.log.next + 1)
	require.Equal(t, st.Aging, e.v.Age())
	require.Equal(t, veaFree(e.v), veaFree(v2))

	v3, err := NewVEA(e.log.replay(t, vHeapSize), vBitmapOff, 1000, e.durable.get)
	require.NoError(t, err)
	require.Equal(t, veaFree(e.v), veaFree(v3))
	require.NoError(t, v3.Check(live))
}

func TestVEACheckFindsProblems(t *testing.T) {
	e := newTestVEA(t, 100)
	a := e.alloc(t, nil, 10)[0] // 0-9
	b := e.alloc(t, nil, 10)[0] // 10-19
	require.NoError(t, e.v.Check([]Extent{a, b}))

	require.Equal(t, []string{
		"alloc: inconsistent: blocks [10, +10) is allocated in the bitmap but not referenced (leaked space)",
	}, problems(e.v.Check([]Extent{a})))
	require.Equal(t, []string{
		"alloc: inconsistent: reference 4 (blocks [95, +10)) is empty or outside the bitmap of 100 blocks",
		"alloc: inconsistent: reference 5 (blocks [50, +0)) is empty or outside the bitmap of 100 blocks",
		"alloc: inconsistent: reference 2 (blocks [5, +10)) overlaps reference 0 (blocks [0, +10))",
		"alloc: inconsistent: reference 1 (blocks [10, +10)) overlaps reference 2 (blocks [5, +10))",
		"alloc: inconsistent: reference 3 (blocks [18, +4)) overlaps reference 1 (blocks [10, +10))",
		"alloc: inconsistent: reference 3 (blocks [18, +4)): blocks [20, +2) is free in the bitmap",
	}, problems(e.v.Check([]Extent{a, b, {5, 10}, {18, 4}, {95, 10}, {50, 0}})))

	// A freed extent also in the free index; a reservation over an
	// allocated block; a free block nobody holds.
	e.free(t, Extent{10, 2})
	e.v.mu.Lock()
	require.NoError(t, e.v.free.Insert(10, 1))
	e.v.resv.add(Range{9, 1})
	require.NoError(t, e.v.free.Remove(90, 1))
	e.v.mu.Unlock()
	require.Equal(t, []string{
		"alloc: inconsistent: reservation blocks [9, +1): blocks [9, +1) is allocated in the bitmap",
		"alloc: inconsistent: aging extent blocks [10, +2) (freed by tx 300) overlaps free extent blocks [10, +1)",
		"alloc: inconsistent: blocks [90, +1) is clear in the bitmap but neither free nor reserved (lost space)",
	}, problems(e.v.Check([]Extent{a, {12, 8}})))
}

func TestVEALayoutErrors(t *testing.T) {
	h := umem.New(vHeapSize)
	d := (&durableID{}).get
	for _, c := range []struct {
		off, blocks uint64
		msg         string
	}{
		{0, 0, "alloc: invalid layout: data blob of 0 blocks"},
		{vHeapSize - 1, 9, "alloc: invalid layout: data bitmap [65535, +2) outside the heap of 65536 bytes"},
		{vHeapSize - 2, 9, ""},
		{0, vHeapSize*8 + 1, "alloc: invalid layout: data bitmap [0, +65537) outside the heap of 65536 bytes"},
	} {
		_, err := NewVEA(h, c.off, c.blocks, d)
		if c.msg == "" {
			require.NoError(t, err)
			continue
		}
		require.EqualError(t, err, c.msg)
		require.ErrorIs(t, err, ErrLayout)
	}
	_, err := NewVEA(h, 0, 8, nil)
	require.ErrorIs(t, err, ErrLayout)
}

func TestVEARandom(t *testing.T) {
	const blocks = 500
	e := newTestVEA(t, blocks)
	rng := rand.New(rand.NewPCG(99, 5))
	live := map[Extent]bool{}
	var held [][]Extent
	hints := make([]Hint, 4)
	var nospace, aborts, frees, multi, promoted int
	heldBlocks := func() uint64 {
		var n uint64
		for _, exts := range held {
			for _, x := range exts {
				n += x.Count
			}
		}
		return n
	}
	for step := range 5000 {
		switch op := rng.IntN(10); {
		case op < 3:
			var hint *Hint
			if k := rng.IntN(5); k < 4 {
				hint = &hints[k]
			}
			if rng.IntN(2) == 0 { // durable moves on: only Reserve sees it
				e.durable.set(e.log.next + wal.ID(rng.IntN(2)))
			}
			agingUnits := func() uint64 {
				e.v.mu.Lock()
				defer e.v.mu.Unlock()
				return e.v.aging.units
			}
			aging := agingUnits()
			exts, err := e.v.Reserve(hint, uint64(1+rng.IntN(80)))
			if agingUnits() < aging {
				promoted++
			}
			if err != nil {
				require.ErrorIs(t, err, ErrNoSpace)
				nospace++
				break
			}
			if len(exts) > 1 {
				multi++
			}
			held = append(held, exts)
		case op < 4 && len(held) > 0:
			i := rng.IntN(len(held))
			e.v.Cancel(held[i])
			held = append(held[:i], held[i+1:]...)
		case op < 5:
			e.durable.set(e.log.next + wal.ID(rng.IntN(2))) // sometimes not past the last commit
		default:
			tx := e.h.Begin(txLimit)
			var pub []Extent
			var freed []Extent
			for range 1 + rng.IntN(4) {
				if rng.IntN(4) != 0 {
					if len(held) > 0 {
						require.NoError(t, e.v.Publish(tx, held[0]))
						pub = append(pub, held[0]...)
						held = held[1:]
					}
					continue
				}
				var cand []Extent // 1 or 2 live extents, chosen by the seed
				all := slices.SortedFunc(maps.Keys(live), func(a, b Extent) int { return cmp.Compare(a.Block, b.Block) })
				for range min(1+rng.IntN(2), len(all)) {
					i := rng.IntN(len(all))
					cand = append(cand, all[i])
					all = slices.Delete(all, i, i+1)
				}
				for _, x := range cand {
					delete(live, x)
				}
				require.NoError(t, e.v.Free(tx, cand))
				freed = append(freed, cand...)
			}
			if rng.IntN(4) == 0 {
				tx.Abort()
				aborts++
				for _, x := range freed {
					live[x] = true
				}
				break
			}
			_, err := tx.Commit(e.log)
			require.NoError(t, err)
			frees += len(freed)
			for _, x := range pub {
				live[x] = true
			}
		}
		var refs []Extent
		var used uint64
		for x := range live {
			refs = append(refs, x)
			used += x.Count
		}
		require.NoError(t, e.v.Check(refs), "step %d", step)
		st := e.v.Stats()
		require.Equal(t, heldBlocks(), st.Reserved, "step %d", step)
		require.Equal(t, st.Blocks, st.Free+st.Aging+st.Reserved+used, "step %d", step)
	}
	t.Logf("%d frees, %d aborts, %d out of space, %d split reservations, %d promotions", frees, aborts, nospace, multi, promoted)
	require.NotZero(t, frees)
	require.NotZero(t, aborts)
	require.NotZero(t, nospace)
	require.NotZero(t, multi)
	require.NotZero(t, promoted)
}
