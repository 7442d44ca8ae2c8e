package alloc

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
)

// maxProblems bounds the problems one Check lists; the rest are counted.
const maxProblems = 100

// checker collects the problems found by a Check.
type checker struct {
	where func(Range) string // names a range of units for messages
	unit  string             // what a unit is called: "units", "blocks"
	errs  []error
	more  int
}

func (c *checker) addf(format string, args ...any) {
	if len(c.errs) >= maxProblems {
		c.more++
		return
	}
	c.errs = append(c.errs, fmt.Errorf("%w: "+format, append([]any{ErrInconsistent}, args...)...))
}

// add records err, or each error it joins, marking as an inconsistency
// whatever is not one already.
func (c *checker) add(err error) {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			c.add(e)
		}
		return
	}
	switch {
	case err == nil:
	case !errors.Is(err, ErrInconsistent):
		c.addf("%v", err)
	case len(c.errs) >= maxProblems:
		c.more++
	default:
		c.errs = append(c.errs, err)
	}
}

func (c *checker) err() error {
	if c.more > 0 {
		c.errs = append(c.errs, fmt.Errorf("%w: %d more problems not listed", ErrInconsistent, c.more))
	}
	return errors.Join(c.errs...)
}

// claim is a range of units that some structure says is in a given state:
// clear (free, aging or reserved) or allocated (referenced).
type claim struct {
	what string // the claimant, with its location, for messages
	r    Range
}

// checkBitmap checks the bitmap alloc of n units against claims: every
// clear unit is in exactly one of clears, every allocated unit in exactly
// one of refs, and no claim covers a unit in the other state.
func (c *checker) checkBitmap(alloc bitset, n uint64, clears, refs []claim) {
	free := alloc.not(n)
	clearCover := c.cover(n, clears, alloc, "allocated")
	refCover := c.cover(n, refs, free, "free")
	free.andNot(clearCover).runs(0, n, func(s, k uint64) {
		c.addf("%s is clear in the bitmap but neither free nor reserved (lost space)", c.where(Range{s, k}))
	})
	alloc.andNot(refCover).runs(0, n, func(s, k uint64) {
		c.addf("%s is allocated in the bitmap but not referenced (leaked space)", c.where(Range{s, k}))
	})
}

// cover reports claims outside the bitmap, claims that overlap each other
// and units of a claim that are in the wrong state (set in wrong), and
// returns the union of the valid claims.
func (c *checker) cover(n uint64, claims []claim, wrong bitset, wrongState string) bitset {
	sorted := make([]claim, 0, len(claims))
	for _, x := range claims {
		if !validRange(x.r) || x.r.End() > n {
			c.addf("%s is empty or outside the bitmap of %d %s", x.what, n, c.unit)
			continue
		}
		sorted = append(sorted, x)
	}
	slices.SortStableFunc(sorted, func(a, b claim) int { return cmp.Compare(a.r.Start, b.r.Start) })
	cov := newBitset(n)
	var reach claim // the claim reaching furthest so far
	seen := false
	for _, x := range sorted {
		if seen && reach.r.End() > x.r.Start {
			c.addf("%s overlaps %s", x.what, reach.what)
		}
		if !seen || x.r.End() > reach.r.End() {
			reach, seen = x, true
		}
		cov.setRange(x.r.Start, x.r.Count)
		wrong.runs(x.r.Start, x.r.End(), func(s, k uint64) {
			c.addf("%s: %s is %s in the bitmap", x.what, c.where(Range{s, k}), wrongState)
		})
	}
	return cov
}
