package alloc

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

func allRanges(x *FreeIndex) []Range {
	var rs []Range
	x.Ascend(func(r Range) bool {
		rs = append(rs, r)
		return true
	})
	return rs
}

func TestFreeIndexInsertCoalesces(t *testing.T) {
	x := NewFreeIndex()
	require.NoError(t, x.Insert(10, 5))
	require.NoError(t, x.Insert(20, 5))
	require.Equal(t, []Range{{10, 5}, {20, 5}}, allRanges(x))
	require.NoError(t, x.Insert(15, 5)) // touches both
	require.Equal(t, []Range{{10, 15}}, allRanges(x))
	require.NoError(t, x.Insert(5, 5)) // touches the left end
	require.NoError(t, x.Insert(25, 1))
	require.Equal(t, []Range{{5, 21}}, allRanges(x))
	require.Equal(t, uint64(21), x.Total())
	require.Equal(t, 1, x.Len())
	require.NoError(t, x.Verify())
}

func TestFreeIndexInsertOverlap(t *testing.T) {
	x := NewFreeIndex()
	require.NoError(t, x.Insert(10, 10))
	for _, r := range []Range{{10, 1}, {5, 6}, {19, 5}, {0, 100}, {12, 2}} {
		err := x.Insert(r.Start, r.Count)
		require.ErrorIs(t, err, ErrOverlap, "insert %v", r)
	}
	require.ErrorIs(t, x.Insert(3, 0), ErrBadRange)
	require.ErrorIs(t, x.Insert(^uint64(0), 2), ErrBadRange)
	require.Equal(t, []Range{{10, 10}}, allRanges(x))
	require.Equal(t, uint64(10), x.Total())
	require.EqualError(t, x.Insert(19, 5), "alloc: free extents overlap: inserting [19, +5), already free [10, +10)")
}

func TestFreeIndexRemoveSplits(t *testing.T) {
	x := NewFreeIndex()
	require.NoError(t, x.Insert(0, 100))
	require.NoError(t, x.Remove(10, 5))
	require.Equal(t, []Range{{0, 10}, {15, 85}}, allRanges(x))
	require.NoError(t, x.Remove(0, 10)) // a whole extent
	require.NoError(t, x.Remove(90, 10))
	require.Equal(t, []Range{{15, 75}}, allRanges(x))
	require.ErrorIs(t, x.Remove(10, 6), ErrNotFree) // starts before
	require.ErrorIs(t, x.Remove(89, 2), ErrNotFree) // ends after
	require.ErrorIs(t, x.Remove(0, 1), ErrNotFree)
	require.ErrorIs(t, x.Remove(20, 0), ErrBadRange)
	require.NoError(t, x.Insert(91, 2))
	require.ErrorIs(t, x.Remove(89, 3), ErrNotFree) // spans two extents
	require.Equal(t, []Range{{15, 75}, {91, 2}}, allRanges(x))
	require.Equal(t, uint64(77), x.Total())
	require.NoError(t, x.Verify())
}

func TestFreeIndexSearch(t *testing.T) {
	x := NewFreeIndex()
	for _, r := range []Range{{100, 4}, {0, 2}, {10, 4}, {50, 8}, {30, 2}, {70, 8}} {
		require.NoError(t, x.Insert(r.Start, r.Count))
	}
	fit := func(n uint64) Range {
		r, ok := x.FindBestFit(n)
		require.True(t, ok, "fit %d", n)
		return r
	}
	require.Equal(t, Range{0, 2}, fit(1))
	require.Equal(t, Range{0, 2}, fit(2))
	require.Equal(t, Range{10, 4}, fit(3))
	require.Equal(t, Range{50, 8}, fit(5))
	_, ok := x.FindBestFit(9)
	require.False(t, ok)
	_, ok = x.FindBestFit(0)
	require.False(t, ok)
	big, ok := x.Largest()
	require.True(t, ok)
	require.Equal(t, Range{50, 8}, big)

	e, ok := x.Find(52)
	require.True(t, ok)
	require.Equal(t, Range{50, 8}, e)
	_, ok = x.Find(58)
	require.False(t, ok)
	require.True(t, x.Contains(50, 8))
	require.True(t, x.Contains(51, 7))
	require.False(t, x.Contains(51, 8))
	require.False(t, x.Contains(49, 2))
	require.False(t, x.Contains(50, 0))

	_, ok = NewFreeIndex().Largest()
	require.False(t, ok)
}

func TestFreeIndexVerifyFindsCorruption(t *testing.T) {
	x := NewFreeIndex()
	require.NoError(t, x.Insert(0, 10))
	x.add(Range{10, 5}) // bypasses coalescing
	x.add(Range{12, 5})
	x.bySize.Delete(Range{0, 10})
	x.total++
	err := x.Verify()
	require.ErrorIs(t, err, ErrInconsistent)
	require.ErrorContains(t, err, "free extents [0, +10) and [10, +5) touch (not coalesced)")
	require.ErrorContains(t, err, "free extents [10, +5) and [12, +5) overlap")
	require.ErrorContains(t, err, "free extent [0, +10) missing from the size order")
	require.ErrorContains(t, err, "free index holds 3 extents by start, 2 by size")
	require.ErrorContains(t, err, "free extents sum to 20 units, total says 21")
}

// modelRuns returns the maximal free runs of a []bool model.
func modelRuns(free []bool) []Range {
	var rs []Range
	for i := 0; i < len(free); {
		if !free[i] {
			i++
			continue
		}
		j := i
		for j < len(free) && free[j] {
			j++
		}
		rs = append(rs, Range{uint64(i), uint64(j - i)})
		i = j
	}
	return rs
}

func TestFreeIndexRandomAgainstModel(t *testing.T) {
	const n = 500
	rng := rand.New(rand.NewPCG(1, 2))
	x := NewFreeIndex()
	model := make([]bool, n)
	for step := range 20000 {
		start := uint64(rng.IntN(n))
		count := uint64(1 + rng.IntN(min(n-int(start), 40)))
		anyFree, allFree := false, true
		for i := start; i < start+count; i++ {
			anyFree = anyFree || model[i]
			allFree = allFree && model[i]
		}
		switch rng.IntN(3) {
		case 0:
			err := x.Insert(start, count)
			if anyFree {
				require.ErrorIs(t, err, ErrOverlap, "step %d", step)
			} else {
				require.NoError(t, err, "step %d", step)
				for i := start; i < start+count; i++ {
					model[i] = true
				}
			}
		case 1:
			err := x.Remove(start, count)
			if allFree {
				require.NoError(t, err, "step %d", step)
				for i := start; i < start+count; i++ {
					model[i] = false
				}
			} else {
				require.ErrorIs(t, err, ErrNotFree, "step %d", step)
			}
		case 2:
			require.Equal(t, allFree, x.Contains(start, count), "step %d", step)
		}
		runs := modelRuns(model)
		var total uint64
		for _, r := range runs {
			total += r.Count
		}
		require.Equal(t, total, x.Total(), "step %d", step)
		if step%50 == 0 {
			require.Equal(t, runs, allRanges(x), "step %d", step)
			require.NoError(t, x.Verify(), "step %d", step)
		}
		// Best fit and largest against the model.
		want := uint64(1 + rng.IntN(30))
		var best, big Range
		for _, r := range runs {
			if r.Count >= want && (best.Count == 0 || r.Count < best.Count) {
				best = r
			}
			if r.Count > big.Count {
				big = r
			}
		}
		got, ok := x.FindBestFit(want)
		require.Equal(t, best.Count != 0, ok, "step %d", step)
		require.Equal(t, best, got, "step %d fit %d", step, want)
		got, ok = x.Largest()
		require.Equal(t, big.Count != 0, ok, "step %d", step)
		require.Equal(t, big, got, "step %d", step)
	}
}

func TestBitsetRuns(t *testing.T) {
	b := newBitset(200)
	b.setRange(3, 2)
	b.setRange(60, 70) // across words, with a whole word inside
	b.setRange(199, 1)
	var got []Range
	b.runs(0, 200, func(s, n uint64) { got = append(got, Range{s, n}) })
	require.Equal(t, []Range{{3, 2}, {60, 70}, {199, 1}}, got)
	got = nil
	b.runs(4, 100, func(s, n uint64) { got = append(got, Range{s, n}) })
	require.Equal(t, []Range{{4, 1}, {60, 40}}, got)
	got = nil
	b.not(200).runs(0, 200, func(s, n uint64) { got = append(got, Range{s, n}) })
	require.Equal(t, []Range{{0, 3}, {5, 55}, {130, 69}}, got)
}
