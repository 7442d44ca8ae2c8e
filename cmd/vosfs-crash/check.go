package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// The checker compares the state found after a crash and recovery with the
// states the log allows, thread by thread: thread t's operations are
// replayed on the model of its state at the start of the cycle, and after
// each one the model is compared with the state found. The state found
// must equal the model after some number P of the thread's operations,
// with lo <= P <= hi:
//
//   - hi is every operation issued, the one in flight included (a thread
//     stops at its first operation whose outcome is unknown, so there is at
//     most one);
//   - with commit=sync, lo is every operation that returned: those are
//     durable, and the one in flight may be there or not;
//   - after the shutdown ioctl with flag 0 or 1 (sync, or flush the log,
//     then stop), lo is every operation that returned, whatever the
//     commit mode: the flush made them durable;
//   - with commit=async (and a kill, or the shutdown's flag 2: stop at
//     once), lo counts the operations that returned before the
//     latest successful fsync, fdatasync or msync of any thread was
//     issued: that call made them durable. The operations after may be
//     lost, but only as a suffix.
//
// A write that crosses a page boundary may reach the daemon as several
// requests, each its own transaction, so a write may also be there in
// part: a prefix of it ending on a page boundary of the file, after P whole
// operations. Across
// threads, the chosen prefixes must be consistent: an operation that
// returned before another was issued cannot be lost while that one is
// there.

// checkInput is what one cycle's check needs.
type checkInput struct {
	Seed    int64     // the run's seed: operation contents derive from it
	Commit  string    // "sync" or "async"
	Threads int       // threads of the workload
	Base    *Snapshot // the state at the start of the cycle
	Log     *Log      // the cycle's operations
	Found   *Snapshot // the state after the crash, recovery and remount
}

// candidate is a state allowed by the log: the first P operations of a
// thread and, when K > 0, the first K bytes of operation P (a write).
type candidate struct {
	P int
	K int64
}

func (c candidate) String() string {
	if c.K > 0 {
		return fmt.Sprintf("%d ops + %d bytes of the next", c.P, c.K)
	}
	return fmt.Sprintf("%d ops", c.P)
}

// last is the index of the last operation c includes, wholly or in part;
// -1 if none.
func (c candidate) last() int {
	if c.K > 0 {
		return c.P
	}
	return c.P - 1
}

// threadCheck is the check of one thread.
type threadCheck struct {
	Thread  int
	Ops     []*Op
	Lo, Hi  int
	Acked   int         // operations with a known result
	Counts  []int       // differing paths after each prefix 0..Hi
	Matches []candidate // every candidate equal to the state found
	Chosen  candidate   // the candidate retained, when OK
	OK      bool
	Broken  bool // the live results disagreed with the model: not checked
}

// checkResult is the outcome of one cycle's check.
type checkResult struct {
	Violations []string
	Notes      []string
	Threads    []*threadCheck
}

func (r *checkResult) violation(format string, args ...any) {
	r.Violations = append(r.Violations, fmt.Sprintf(format, args...))
}

// Summary describes the retained prefixes in one line.
func (r *checkResult) Summary() string {
	var parts []string
	for _, tc := range r.Threads {
		switch {
		case tc.Broken:
			parts = append(parts, fmt.Sprintf("t%d unchecked", tc.Thread))
		case !tc.OK:
			parts = append(parts, fmt.Sprintf("t%d MISMATCH", tc.Thread))
		default:
			s := fmt.Sprintf("t%d %d", tc.Thread, tc.Chosen.P)
			if tc.Chosen.K > 0 {
				s += fmt.Sprintf("+%dB", tc.Chosen.K)
			}
			parts = append(parts, s+fmt.Sprintf("/%d", tc.Hi))
		}
	}
	return strings.Join(parts, " ")
}

// check runs the check of one cycle.
func check(in checkInput) *checkResult {
	r := &checkResult{}
	for _, p := range in.Found.strays(in.Threads) {
		r.violation("stray entry %q: no thread created it", p)
	}
	for _, op := range in.Log.Ops {
		if op.Done != 0 && unknownResult(op.Result) && (in.Log.Kill == 0 || op.Done < in.Log.Kill) {
			if op.Result == "EINTR" {
				r.Notes = append(r.Notes, fmt.Sprintf("%s was interrupted before the kill", op))
				continue
			}
			r.violation("%s before the daemon was %s", op, map[bool]string{false: "killed", true: "shut down"}[in.Log.Shutdown])
		}
	}
	// The latest fence: every operation that returned before it was issued
	// is durable (commit=async).
	var fence int64
	for _, op := range in.Log.Ops {
		if op.fence() && op.Seq > fence {
			fence = op.Seq
		}
	}
	data := newDataCache(in.Seed)
	for t := range in.Threads {
		tc := checkThread(in, t, fence, data, r)
		r.Threads = append(r.Threads, tc)
	}
	checkGlobal(r)
	return r
}

// dataCache keeps the bytes of the operations of one check.
type dataCache struct {
	seed int64
	m    map[uint64][]byte
}

func newDataCache(seed int64) *dataCache {
	return &dataCache{seed: seed, m: make(map[uint64][]byte)}
}

func (d *dataCache) gen(op *Op) func(n int) []byte {
	return func(n int) []byte {
		if b, ok := d.m[op.ID]; ok && len(b) == n {
			return b
		}
		b := genData(d.seed, op.ID, n)
		d.m[op.ID] = b
		return b
	}
}

func checkThread(in checkInput, t int, fence int64, data *dataCache, r *checkResult) *threadCheck {
	tc := &threadCheck{Thread: t, Ops: in.Log.ThreadOps(t)}
	tc.Hi = len(tc.Ops)
	for i, op := range tc.Ops {
		if !unknownResult(op.Result) {
			tc.Acked++
		} else if i != len(tc.Ops)-1 {
			r.violation("thread %d: %s is not its last operation (the workload stops at an unknown outcome)", t, op)
		}
	}
	if in.Commit == "sync" || in.Log.Shutdown && in.Log.Flag != 2 {
		tc.Lo = tc.Acked
	} else {
		for _, op := range tc.Ops {
			if op.Done != 0 && op.Done < fence {
				tc.Lo++
			}
		}
	}

	m := modelOf(in.Base, t)
	found := in.Found.view(t)
	diff := make(map[string]bool)
	update := func(p string) {
		if m.Entry(p) != found[p] {
			diff[p] = true
		} else {
			delete(diff, p)
		}
	}
	for _, p := range m.Paths() {
		update(p)
	}
	for p := range found {
		update(p)
	}
	tc.Counts = append(tc.Counts, len(diff))
	if len(diff) == 0 {
		tc.Matches = append(tc.Matches, candidate{P: 0})
	}
	for i, op := range tc.Ops {
		if k := partialMatch(m, op, data.gen(op), diff, found, in.Found); k > 0 {
			tc.Matches = append(tc.Matches, candidate{P: i, K: k})
		}
		want := m.Apply(op, data.gen(op))
		if !unknownResult(op.Result) && want != op.Result {
			r.violation("thread %d: %s, but the model of its state says %s (live result wrong; thread not checked after the crash)",
				t, op, want)
			tc.Broken = true
			return tc
		}
		for _, p := range m.Dirty() {
			update(p)
		}
		tc.Counts = append(tc.Counts, len(diff))
		if len(diff) == 0 {
			tc.Matches = append(tc.Matches, candidate{P: i + 1})
		}
	}
	for _, c := range tc.Matches {
		if c.P >= tc.Lo && c.P <= tc.Hi {
			tc.OK, tc.Chosen = true, c
			break
		}
	}
	if !tc.OK {
		r.violation("%s", describeMismatch(in, tc, data))
	}
	return tc
}

// partialMatch tests whether the state found is the model with op, a
// write that spans pages, done in part: its first K bytes, ending on a
// page boundary of the file. It returns K, or 0. diff holds the paths where
// the model differs from the state found.
//
// The kernel sends a write through the page cache as several requests when
// it crosses pages: a request ends after a page it fills only in part and
// that is not cached (and at max_pages), so even a write of a few bytes
// across a page boundary can be split.
func partialMatch(m *Model, op *Op, gen func(int) []byte, diff map[string]bool, found map[string]Entry, snap *Snapshot) int64 {
	if (op.Kind != kWrite && op.Kind != kDWrite) || op.Off%pageSize+op.Len <= pageSize {
		return 0 // not a write, or within one page: one request
	}
	if !m.Exists(op.Path) || m.IsDir(op.Path) {
		return 0
	}
	names := m.Names(op.Path)
	for p := range diff {
		if !slices.Contains(names, p) {
			return 0 // the state differs elsewhere
		}
	}
	fe := snap.Entries[op.Path]
	if fe == nil || fe.Dir {
		return 0
	}
	p := gen(int(op.Len))
	var same int64
	for same < op.Len && op.Off+same < int64(len(fe.Data)) && fe.Data[op.Off+same] == p[same] {
		same++
	}
	old := m.Data(op.Path)
	k := (op.Off+same)/pageSize*pageSize - op.Off
	for range 2 {
		if k <= 0 || k >= op.Len {
			k -= pageSize
			continue
		}
		d := writeAt(old, p[:k], op.Off)
		ok := true
		for _, name := range names {
			e := m.Entry(name)
			e.Size, e.Hash = int64(len(d)), hashBytes(d)
			if e != found[name] {
				ok = false
				break
			}
		}
		if ok {
			return k
		}
		k -= pageSize
	}
	return 0
}

const pageSize = 4096

// checkGlobal checks that the prefixes retained for each thread can be one
// moment of the filesystem: if a thread's state includes an operation, it
// includes every operation of the other threads that returned before that
// one was issued. It moves threads to longer matching prefixes if that
// resolves a conflict.
func checkGlobal(r *checkResult) {
	var tcs []*threadCheck
	for _, tc := range r.Threads {
		if tc.Broken || !tc.OK {
			return
		}
		tcs = append(tcs, tc)
	}
	// returnedBefore counts the operations of u that returned before seq.
	returnedBefore := func(u *threadCheck, seq int64) int {
		n := 0
		for _, op := range u.Ops {
			if op.Done != 0 && op.Done < seq {
				n++
			}
		}
		return n
	}
	for changed := true; changed; {
		changed = false
		for _, u := range tcs {
			need, by := 0, (*Op)(nil)
			for _, t := range tcs {
				if t == u || t.Chosen.last() < 0 {
					continue
				}
				y := t.Ops[t.Chosen.last()]
				if n := returnedBefore(u, y.Seq); n > need {
					need, by = n, y
				}
			}
			if u.Chosen.P >= need {
				continue
			}
			moved := false
			for _, c := range u.Matches {
				if c.P >= need && c.P <= u.Hi && (c.P > u.Chosen.P || c.P == u.Chosen.P && c.K > u.Chosen.K) {
					u.Chosen, moved, changed = c, true, true
					break
				}
			}
			if !moved {
				u.OK = false
				r.violation("thread %d lost %s, which returned before %s was issued, yet that one is there: not a suffix of the operations was lost (thread %d matches %s)",
					u.Thread, u.Ops[u.Chosen.P], by, u.Thread, fmtCandidates(u.Matches))
				return
			}
		}
	}
}

func fmtCandidates(cs []candidate) string {
	if len(cs) == 0 {
		return "no prefix"
	}
	var s []string
	for _, c := range cs {
		s = append(s, c.String())
	}
	if len(s) > 8 {
		s = append(s[:4], "…", s[len(s)-1])
	}
	return "{" + strings.Join(s, ", ") + "}"
}

// describeMismatch explains why no allowed state matches: the closest
// allowed prefix and every path where it differs from what was found.
func describeMismatch(in checkInput, tc *threadCheck, data *dataCache) string {
	var b strings.Builder
	fmt.Fprintf(&b, "thread %d: the state found is none of those allowed: %d to %d of its %d operations (%d returned)",
		tc.Thread, tc.Lo, tc.Hi, len(tc.Ops), tc.Acked)
	if len(tc.Matches) > 0 {
		fmt.Fprintf(&b, "\n  it equals the state after %s", fmtCandidates(tc.Matches))
		c := tc.Matches[len(tc.Matches)-1]
		if c.P < tc.Lo {
			fmt.Fprintf(&b, ": operations that had to be durable were lost:")
			for i := c.P; i < tc.Lo && i < c.P+5; i++ {
				fmt.Fprintf(&b, "\n    #%d %s", i, tc.Ops[i])
			}
		}
	}
	best := tc.Lo
	for p := tc.Lo; p <= tc.Hi; p++ {
		if tc.Counts[p] <= tc.Counts[best] {
			best = p
		}
	}
	fmt.Fprintf(&b, "\n  closest allowed: after %d operations, %d paths differ:", best, tc.Counts[best])

	m := modelOf(in.Base, tc.Thread)
	for _, op := range tc.Ops[:best] {
		m.Apply(op, data.gen(op))
	}
	found := in.Found.view(tc.Thread)
	paths := make(map[string]bool)
	for _, p := range m.Paths() {
		paths[p] = true
	}
	for p := range found {
		paths[p] = true
	}
	shown := 0
	for _, p := range slices.Sorted(maps.Keys(paths)) {
		want, got := m.Entry(p), found[p]
		if want == got {
			continue
		}
		if shown++; shown > 10 {
			fmt.Fprintf(&b, "\n    …")
			break
		}
		fmt.Fprintf(&b, "\n    %s: expected %s; found %s", p, want, got)
		if want.Exists && got.Exists && !want.Dir && !got.Dir && want.Hash != got.Hash {
			fmt.Fprintf(&b, "; %s", contentDiff(m.Data(p), in.Found.Entries[p].Data))
		}
		var touching []string
		for i, op := range tc.Ops {
			if op.Path == p || op.Path2 == p {
				touching = append(touching, fmt.Sprintf("#%d %s", i, op))
			}
		}
		if len(touching) > 4 {
			touching = touching[len(touching)-4:]
		}
		for _, s := range touching {
			fmt.Fprintf(&b, "\n      %s", s)
		}
	}
	if tc.Hi > 0 {
		fmt.Fprintf(&b, "\n  last operation: #%d %s", tc.Hi-1, tc.Ops[tc.Hi-1])
	}
	return b.String()
}

// contentDiff describes where two contents differ.
func contentDiff(want, got []byte) string {
	n := min(len(want), len(got))
	i := 0
	for i < n && want[i] == got[i] {
		i++
	}
	if i == n {
		return fmt.Sprintf("contents equal up to %d bytes (sizes %d, %d)", n, len(want), len(got))
	}
	j := i
	for j < n && want[j] != got[j] {
		j++
	}
	zero := true
	for _, c := range got[i:j] {
		if c != 0 {
			zero = false
			break
		}
	}
	what := ""
	if zero {
		what = " (found zeros)"
	}
	return fmt.Sprintf("contents differ at bytes %d..%d%s", i, j, what)
}
