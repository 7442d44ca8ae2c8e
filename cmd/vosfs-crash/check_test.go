package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runCheck checks found against the log with the empty base.
func runCheck(t *testing.T, commit string, threads int, logText string, found *Snapshot) *checkResult {
	t.Helper()
	g := parse(t, logText)
	return check(checkInput{Seed: testSeed, Commit: commit, Threads: threads, Base: emptyBase(threads), Log: g, Found: found})
}

// stateAfter is the snapshot of thread 0 after its first n operations.
func stateAfter(t *testing.T, logText string, n int) *Snapshot {
	return snapshotOf(replay(t, emptyBase(1), parse(t, logText), 0, n))
}

func requireOK(t *testing.T, r *checkResult) {
	t.Helper()
	require.Empty(t, r.Violations, "%s", strings.Join(r.Violations, "\n"))
}

func requireViolation(t *testing.T, r *checkResult, contains string) {
	t.Helper()
	require.NotEmpty(t, r.Violations, "no violation")
	assert.Contains(t, strings.Join(r.Violations, "\n"), contains)
}

// A sync log: four operations returned, the fifth was in flight at the
// kill (no result).
const syncLog = `H seq=1 cycle=4 seed=7 commit=sync threads=1 powercut=0
I seq=2 t=0 id=1 kind=create path="t0/a"
R seq=3 t=0 id=1 res=ok
I seq=4 t=0 id=2 kind=write path="t0/a" off=0 len=9000
R seq=5 t=0 id=2 res=ok
I seq=6 t=0 id=3 kind=create path="t0/b"
R seq=7 t=0 id=3 res=ok
I seq=8 t=0 id=4 kind=setxattr path="t0/b" len=7 name="user.x0"
R seq=9 t=0 id=4 res=ok
K seq=10 pid=1
I seq=11 t=0 id=5 kind=rename path="t0/a" path2="shared/s0_c"
`

func TestCheckSync(t *testing.T) {
	requireOK(t, runCheck(t, "sync", 1, syncLog, stateAfter(t, syncLog, 4)))
	requireOK(t, runCheck(t, "sync", 1, syncLog, stateAfter(t, syncLog, 5)))

	// An acknowledged operation lost.
	r := runCheck(t, "sync", 1, syncLog, stateAfter(t, syncLog, 3))
	requireViolation(t, r, "none of those allowed: 4 to 5")
	requireViolation(t, r, "it equals the state after {3 ops}")
	requireViolation(t, r, "#3 c0.t0.4 setxattr t0/b user.x0 len=7: ok")

	// The in-flight rename done by halves: a file under both names.
	found := stateAfter(t, syncLog, 4)
	c := *found.Entries["t0/a"]
	found.Entries["shared/s0_c"] = &c
	found.Entries["shared/s0_c"].Ino = 999
	requireViolation(t, runCheck(t, "sync", 1, syncLog, found), "t0/a: expected absent; found file size=9000")

	// Wrong bytes.
	found = stateAfter(t, syncLog, 5)
	e := *found.Entries["shared/s0_c"]
	e.Data = append([]byte{}, e.Data...)
	e.Data[5000] ^= 1
	found.Entries["shared/s0_c"] = &e
	requireViolation(t, runCheck(t, "sync", 1, syncLog, found), "contents differ at bytes 5000..5001")

	// The same with the in-flight operation failed by the dead daemon.
	failed := strings.Replace(syncLog, `path2="shared/s0_c"`+"\n", `path2="shared/s0_c"`+"\nR seq=12 t=0 id=5 res=ENOTCONN\n", 1)
	requireOK(t, runCheck(t, "sync", 1, failed, stateAfter(t, syncLog, 4)))
	requireOK(t, runCheck(t, "sync", 1, failed, stateAfter(t, syncLog, 5)))

	// ENOTCONN before the kill: the daemon died by itself.
	early := strings.Replace(syncLog, "R seq=9 t=0 id=4 res=ok", "R seq=9 t=0 id=4 res=ENOTCONN", 1)
	early = strings.Replace(early, "I seq=11 t=0 id=5 kind=rename path=\"t0/a\" path2=\"shared/s0_c\"\n", "", 1)
	requireViolation(t, runCheck(t, "sync", 1, early, stateAfter(t, early, 3)), "setxattr t0/b user.x0 len=7: ENOTCONN before the daemon was killed")

	// A live result that the model does not expect.
	live := strings.Replace(syncLog, "R seq=7 t=0 id=3 res=ok", "R seq=7 t=0 id=3 res=EEXIST", 1)
	requireViolation(t, runCheck(t, "sync", 1, live, stateAfter(t, syncLog, 2)), "create t0/b: EEXIST, but the model of its state says ok")
}

// A write across pages in flight: it may be there up to a page boundary.
const partialLog = `H seq=1 cycle=1 seed=7 commit=sync threads=1 powercut=0
I seq=2 t=0 id=1 kind=create path="t0/a"
R seq=3 t=0 id=1 res=ok
I seq=4 t=0 id=2 kind=write path="t0/a" off=100 len=3000
R seq=5 t=0 id=2 res=ok
I seq=6 t=0 id=3 kind=write path="t0/a" off=3000 len=6000
K seq=7 pid=1
R seq=8 t=0 id=3 res=SHORT
`

func TestCheckPartialWrite(t *testing.T) {
	g := parse(t, partialLog)
	for _, n := range []int{2, 3} {
		requireOK(t, runCheck(t, "sync", 1, partialLog, stateAfter(t, partialLog, n)))
	}
	// The first request: up to the page boundary at 4096.
	m := replay(t, emptyBase(1), g, 0, 2)
	m.setData("t0/a", writeAt(m.Data("t0/a"), genData(testSeed, 3, 6000)[:4096-3000], 3000))
	r := runCheck(t, "sync", 1, partialLog, snapshotOf(m))
	requireOK(t, r)
	assert.Equal(t, candidate{P: 2, K: 1096}, r.Threads[0].Chosen)
	assert.Equal(t, "t0 2+1096B/3", r.Summary())

	// Torn elsewhere than a page boundary.
	m = replay(t, emptyBase(1), g, 0, 2)
	m.setData("t0/a", writeAt(m.Data("t0/a"), genData(testSeed, 3, 6000)[:500], 3000))
	requireViolation(t, runCheck(t, "sync", 1, partialLog, snapshotOf(m)), "none of those allowed: 2 to 3")
}

// An async log of two threads. Thread 0 fsyncs after its write; thread 1's
// create returned before that fsync was issued, its write after.
const asyncLog = `H seq=1 cycle=2 seed=7 commit=async threads=2 powercut=0
I seq=2 t=0 id=1 kind=create path="t0/a"
I seq=3 t=1 id=2 kind=create path="t1/x"
R seq=4 t=0 id=1 res=ok
R seq=5 t=1 id=2 res=ok
I seq=6 t=0 id=3 kind=write path="t0/a" off=0 len=100
I seq=7 t=1 id=4 kind=write path="t1/x" off=0 len=10
R seq=8 t=0 id=3 res=ok
I seq=9 t=0 id=5 kind=fsync path="t0/a"
R seq=10 t=1 id=4 res=ok
R seq=11 t=0 id=5 res=ok
I seq=12 t=0 id=6 kind=truncate path="t0/a" len=7
R seq=13 t=0 id=6 res=ok
I seq=14 t=0 id=7 kind=mkdir path="t0/d"
R seq=15 t=0 id=7 res=ok
I seq=16 t=1 id=8 kind=unlink path="t1/x"
R seq=17 t=1 id=8 res=ok
K seq=18 pid=1
I seq=19 t=0 id=9 kind=create path="t0/d/f"
R seq=20 t=0 id=9 res=ECONNABORTED
`

// asyncState is the snapshot with thread 0 after n0 and thread 1 after n1
// operations.
func asyncState(t *testing.T, n0, n1 int) *Snapshot {
	g := parse(t, asyncLog)
	return snapshotOf(replay(t, emptyBase(2), g, 0, n0), replay(t, emptyBase(2), g, 1, n1))
}

func TestCheckAsync(t *testing.T) {
	// Thread 0: the fsync (op 2) makes ops 0..1 durable; thread 1: its
	// create returned before the fsync was issued.
	for _, n := range [][2]int{{2, 1}, {3, 1}, {4, 2}, {5, 3}, {3, 2}, {5, 2}, {6, 3}} {
		requireOK(t, runCheck(t, "async", 2, asyncLog, asyncState(t, n[0], n[1])))
	}
	// Thread 0 lost its write, which its fsync had made durable.
	r := runCheck(t, "async", 2, asyncLog, asyncState(t, 1, 1))
	requireViolation(t, r, "thread 0: the state found is none of those allowed: 2 to 6")
	// Thread 1 lost the create that returned before thread 0's fsync. Its
	// state is then also the one after its unlink, which thread 0's
	// state is too early for.
	requireViolation(t, runCheck(t, "async", 2, asyncLog, asyncState(t, 3, 0)), "not a suffix")
	// Thread 1 lost the write that returned before thread 0's truncate
	// was issued.
	requireViolation(t, runCheck(t, "async", 2, asyncLog, asyncState(t, 4, 1)),
		"thread 1 lost c0.t0.4 write t1/x off=0 len=10: ok, which returned before c0.t0.6 truncate t0/a size=7: ok was issued")
	// Not a suffix: thread 0's mkdir (issued after thread 1's write
	// returned) is there, thread 1's write is not.
	requireViolation(t, runCheck(t, "async", 2, asyncLog, asyncState(t, 5, 1)), "not a suffix")
	// Thread 1's unlink (issued after thread 0's mkdir returned) is there,
	// the mkdir is not.
	requireViolation(t, runCheck(t, "async", 2, asyncLog, asyncState(t, 4, 3)), "thread 0 lost c0.t0.7 mkdir t0/d: ok, which returned before c0.t0.8 unlink t1/x: ok was issued")
	// The same states in sync mode: everything returned must be there.
	requireOK(t, runCheck(t, "sync", 2, asyncLog, asyncState(t, 5, 3)))
	requireOK(t, runCheck(t, "sync", 2, asyncLog, asyncState(t, 6, 3)))
	requireViolation(t, runCheck(t, "sync", 2, asyncLog, asyncState(t, 4, 3)), "thread 0: the state found is none of those allowed: 5 to 6")

	// A thread's state in the middle: its truncate lost, its mkdir there.
	g := parse(t, asyncLog)
	m0 := replay(t, emptyBase(2), g, 0, 3)
	m0.Apply(&Op{Kind: kMkdir, Path: "t0/d"}, nil)
	requireViolation(t, runCheck(t, "async", 2, asyncLog, snapshotOf(m0, replay(t, emptyBase(2), g, 1, 3))), "thread 0: the state found is none of those allowed")
}

func TestCheckStraysAndLinks(t *testing.T) {
	found := stateAfter(t, syncLog, 4)
	found.Entries["t7"] = &SnapEntry{Dir: true}
	requireViolation(t, runCheck(t, "sync", 1, syncLog, found), `stray entry "t7"`)

	// Two names of one file found as two files.
	const linkLog = `I seq=1 t=0 id=1 kind=create path="t0/a"
R seq=2 t=0 id=1 res=ok
I seq=3 t=0 id=2 kind=link path="t0/a" path2="shared/s0_b"
R seq=4 t=0 id=2 res=ok
`
	found = stateAfter(t, linkLog, 2)
	requireOK(t, runCheck(t, "sync", 1, linkLog, found))
	b := *found.Entries["shared/s0_b"]
	b.Ino++
	found.Entries["shared/s0_b"] = &b
	requireViolation(t, runCheck(t, "sync", 1, linkLog, found), "links-with=shared/s0_b")
}

// TestCheckShutdown: a cycle ended by the shutdown ioctl. Under
// commit=async, flags 0 and 1 promise every operation that returned (as
// commit=sync does); flag 2 only what a fence made durable; an EIO before
// the S line is a violation.
func TestCheckShutdown(t *testing.T) {
	asyncLog := strings.Replace(strings.Replace(syncLog, "commit=sync", "commit=async", 1), "K seq=10 pid=1", "S seq=10 flag=%d", 1)
	withFlag := func(f string) string { return strings.Replace(asyncLog, "%d", f, 1) }
	for _, f := range []string{"0", "1"} {
		g := parse(t, withFlag(f))
		require.True(t, g.Shutdown)
		requireOK(t, runCheck(t, "async", 1, withFlag(f), stateAfter(t, syncLog, 4)))
		requireViolation(t, runCheck(t, "async", 1, withFlag(f), stateAfter(t, syncLog, 2)), "none of those allowed: 4 to 5")
	}
	requireOK(t, runCheck(t, "async", 1, withFlag("2"), stateAfter(t, syncLog, 2)))
	early := strings.Replace(withFlag("1"), "R seq=9 t=0 id=4 res=ok", "R seq=9 t=0 id=4 res=EIO", 1)
	requireViolation(t, runCheck(t, "async", 1, early, stateAfter(t, syncLog, 4)), "before the daemon was shut down")
	_, err := parseLog(strings.NewReader(withFlag("3")))
	require.ErrorContains(t, err, "flag: want 0, 1 or 2")
}
