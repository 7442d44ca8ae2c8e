package main

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const testSeed = 7

func parse(t *testing.T, text string) *Log {
	t.Helper()
	g, err := parseLog(strings.NewReader(text))
	require.NoError(t, err)
	return g
}

// emptyBase is the state after setup: the threads' directories and the
// shared one.
func emptyBase(threads int) *Snapshot {
	s := &Snapshot{Entries: map[string]*SnapEntry{sharedDir: {Dir: true, Ino: 1, Nlink: 2, Xattr: map[string][]byte{}}}}
	for t := range threads {
		s.Entries[threadDir(t)] = &SnapEntry{Dir: true, Ino: uint64(2 + t), Nlink: 2, Xattr: map[string][]byte{}}
	}
	return s
}

// replay returns the model of thread t after its first n operations of g
// (all if n < 0), checking that each known result is the model's.
func replay(t *testing.T, base *Snapshot, g *Log, thread, n int) *Model {
	t.Helper()
	m := modelOf(base, thread)
	for i, op := range g.ThreadOps(thread) {
		if i == n {
			break
		}
		res := m.Apply(op, func(k int) []byte { return genData(testSeed, op.ID, k) })
		if !unknownResult(op.Result) {
			require.Equal(t, op.Result, res, "%s", op)
		}
	}
	return m
}

// snapshotOf returns the snapshot a mount would show for the models (one
// per thread).
func snapshotOf(models ...*Model) *Snapshot {
	s := &Snapshot{Entries: make(map[string]*SnapEntry)}
	for t, m := range models {
		for p, id := range m.names {
			if p == sharedDir && s.Entries[p] != nil {
				continue
			}
			in := m.inodes[id]
			e := m.Entry(p)
			s.Entries[p] = &SnapEntry{
				Dir: in.dir, Ino: uint64(t)<<32 | uint64(id), Nlink: e.Nlink,
				Size: int64(len(in.data)), Data: in.data, Xattr: in.xattr,
			}
		}
	}
	return s
}

const modelLog = `H seq=1 cycle=1 seed=7 commit=sync threads=1 powercut=0
I seq=2 t=0 id=1 kind=create path="t0/a"
R seq=3 t=0 id=1 res=ok
I seq=4 t=0 id=2 kind=write path="t0/a" off=10 len=100
R seq=5 t=0 id=2 res=ok
I seq=6 t=0 id=3 kind=link path="t0/a" path2="shared/s0_b"
R seq=7 t=0 id=3 res=ok
I seq=8 t=0 id=4 kind=mkdir path="t0/d"
R seq=9 t=0 id=4 res=ok
I seq=10 t=0 id=5 kind=rename path="t0/a" path2="t0/d/c"
R seq=11 t=0 id=5 res=ok
I seq=12 t=0 id=6 kind=setxattr path="t0/d/c" len=5 name="user.x"
R seq=13 t=0 id=6 res=ok
I seq=14 t=0 id=7 kind=truncate path="shared/s0_b" len=50
R seq=15 t=0 id=7 res=ok
I seq=16 t=0 id=8 kind=falloc path="shared/s0_b" off=12 len=5 flags=3
R seq=17 t=0 id=8 res=ok
I seq=18 t=0 id=9 kind=rename path="t0/d/c" path2="shared/s0_b" flags=1
R seq=19 t=0 id=9 res=EEXIST
I seq=20 t=0 id=10 kind=rmdir path="t0/d"
R seq=21 t=0 id=10 res=ENOTEMPTY
I seq=22 t=0 id=11 kind=mkdir path="t0/d/e"
R seq=23 t=0 id=11 res=ok
I seq=24 t=0 id=12 kind=unlink path="t0/d/c"
R seq=25 t=0 id=12 res=ok
I seq=26 t=0 id=13 kind=falloc path="shared/s0_b" off=60 len=4 flags=0
R seq=27 t=0 id=13 res=ok
I seq=28 t=0 id=14 kind=mwrite path="shared/s0_b" off=62 len=10
R seq=29 t=0 id=14 res=ok
I seq=30 t=0 id=15 kind=create path="shared/s0_b"
R seq=31 t=0 id=15 res=EEXIST
`

func TestParseLog(t *testing.T) {
	g := parse(t, modelLog+`K seq=32 pid=99
I seq=33 t=0 id=16 kind=fsync path="t0/d"
`)
	assert.Equal(t, 1, g.Cycle)
	assert.Equal(t, int64(7), g.Seed)
	assert.Equal(t, "sync", g.Commit)
	assert.Equal(t, int64(32), g.Kill)
	require.Len(t, g.Ops, 16)
	op := g.Ops[7]
	assert.Equal(t, &Op{Seq: 16, Done: 17, ID: 8, Kind: kFalloc, Path: "shared/s0_b", Off: 12, Len: 5, Flags: 3, Result: "ok"}, op)
	assert.Equal(t, "EEXIST", g.Ops[8].Result)
	assert.Equal(t, "", g.Ops[15].Result)
	assert.Equal(t, int64(0), g.Ops[15].Done)

	for _, bad := range []string{
		"I seq=1 t=0 id=1 kind=create path=\"t0/a\" bogus=1",
		"R seq=2 t=0 id=5 res=ok",
		"I seq=1 t=0 id=1 kind=create path=\"t0/a\nI seq=2 t=0 id=1 kind=create path=\"t0/b\"",
		"X seq=1",
		"I seq=1 t=0 id=1 kind=create path=\"a\"\nI seq=2 t=0 id=1 kind=create path=\"b\"",
		"I seq=1 t=0 id=1 kind=create path=\"a\"\nR seq=2 t=0 id=1 res=ok\nR seq=3 t=0 id=1 res=ok",
		"I seq=1 t=0 id=1 kind=create path=\"a\"\nR seq=2 t=0 id=1",
	} {
		_, err := parseLog(strings.NewReader(bad))
		assert.Error(t, err, "%q", bad)
	}
}

// TestLogRoundTrip writes operations with opLog and reads them back.
func TestLogRoundTrip(t *testing.T) {
	path := t.TempDir() + "/log"
	l, err := createLog(path)
	require.NoError(t, err)
	l.header(3, 42, "async", 2, 5)
	ops := []*Op{
		{Thread: 1, ID: opID(3, 1, 0), Kind: kRename, Path: "t1/a b", Path2: "shared/s1_\"q\"", Flags: 1},
		{Thread: 0, ID: opID(3, 0, 0), Kind: kWrite, Path: "t0/f", Off: 4095, Len: 70000},
		{Thread: 0, ID: opID(3, 0, 1), Kind: kSetxattr, Path: "t0/f", Name: "user.x1", Len: 3},
	}
	l.issue(ops[0])
	l.issue(ops[1])
	l.result(ops[1], "ok")
	l.result(ops[0], "ENOENT")
	l.kill(1234)
	l.issue(ops[2])
	require.NoError(t, l.Close())

	g := parseFile(t, path)
	assert.Equal(t, 3, g.Cycle)
	assert.Equal(t, int64(42), g.Seed)
	assert.Equal(t, "async", g.Commit)
	assert.Equal(t, 2, g.Threads)
	assert.Equal(t, ops[0].Seq, int64(2))
	assert.Equal(t, int64(6), g.Kill)
	assert.Equal(t, ops, g.Ops)
	assert.Equal(t, "c3.t1.0", fmtID(ops[0].ID))
}

func parseFile(t *testing.T, path string) *Log {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	g, err := parseLog(f)
	require.NoError(t, err)
	return g
}

func TestModelReplay(t *testing.T) {
	g := parse(t, modelLog)
	m := replay(t, emptyBase(1), g, 0, -1)

	want := make([]byte, 64)
	copy(want[10:50], genData(testSeed, 2, 100)[:40])
	clear(want[12:17])
	copy(want[62:], genData(testSeed, 14, 10)[:2]) // the mapping's store is cut at the end of the file
	assert.Equal(t, want, m.Data("shared/s0_b"))
	assert.Equal(t, []string{"shared", "shared/s0_b", "t0", "t0/d", "t0/d/e"}, m.Paths())

	e := m.Entry("shared/s0_b")
	assert.Equal(t, Entry{Exists: true, Size: 64, Nlink: 1, Group: "shared/s0_b", Hash: hashBytes(want),
		Xattr: xattrKey(map[string][]byte{"user.x": genData(testSeed, 6, 5)})}, e)
	assert.Equal(t, Entry{Exists: true, Dir: true, Nlink: 3, Xattr: ""}, m.Entry("t0/d"))
	assert.Equal(t, Entry{Exists: true, Dir: true, Nlink: 3, Xattr: ""}, m.Entry("t0"))
	assert.Equal(t, Entry{}, m.Entry("t0/d/c"))

	// Halfway: two names of one inode.
	m = replay(t, emptyBase(1), g, 0, 5)
	assert.Equal(t, []string{"shared/s0_b", "t0/d/c"}, m.Names("t0/d/c"))
	e = m.Entry("t0/d/c")
	assert.Equal(t, 2, e.Nlink)
	assert.Equal(t, "shared/s0_b", e.Group)
	assert.Equal(t, int64(110), e.Size)
}

func TestModelRename(t *testing.T) {
	m := newModel(0)
	gen := func(n int) []byte { return make([]byte, n) }
	apply := func(kind, p, p2 string, flags int) string {
		return m.Apply(&Op{Kind: kind, Path: p, Path2: p2, Flags: flags}, gen)
	}
	require.Equal(t, "ok", apply(kMkdir, "t0/d", "", 0))
	require.Equal(t, "ok", apply(kMkdir, "t0/d/e", "", 0))
	require.Equal(t, "ok", apply(kCreate, "t0/d/e/f", "", 0))
	require.Equal(t, "ok", apply(kMkdir, "t0/x", "", 0))
	require.Equal(t, "ok", apply(kLink, "t0/d/e/f", "t0/g", 0))

	assert.Equal(t, "EINVAL", apply(kRename, "t0/d", "t0/d/e/z", 0))
	assert.Equal(t, "ENOENT", apply(kRename, "t0/nope", "t0/z", 0))
	assert.Equal(t, "ENOENT", apply(kRename, "t0/g", "t0/nope/z", 0))
	assert.Equal(t, "EISDIR", apply(kRename, "t0/g", "t0/x", 0))
	assert.Equal(t, "ENOTDIR", apply(kRename, "t0/x", "t0/g", 0))
	assert.Equal(t, "EEXIST", apply(kRename, "t0/x", "t0/d", renameNoReplace))
	assert.Equal(t, "ENOTEMPTY", apply(kRename, "t0/x", "t0/d", 0))
	assert.Equal(t, "ok", apply(kRename, "t0/g", "t0/d/e/f", 0)) // two links of one file
	assert.Equal(t, 2, m.Entry("t0/g").Nlink)

	// A directory moves with its subtree, over an empty directory.
	require.Equal(t, "ok", apply(kRmdir, "t0/x", "", 0))
	require.Equal(t, "ok", apply(kMkdir, "t0/x", "", 0))
	require.Equal(t, "ok", apply(kRename, "t0/d", "t0/x", 0))
	assert.Equal(t, []string{"shared", "t0", "t0/g", "t0/x", "t0/x/e", "t0/x/e/f"}, m.Paths())
	assert.Equal(t, "t0/g", m.Entry("t0/x/e/f").Group)
	assert.Equal(t, 3, m.Entry("t0").Nlink)

	// A file over another: the other loses a name.
	require.Equal(t, "ok", apply(kCreate, "t0/h", "", 0))
	require.Equal(t, "ok", apply(kRename, "t0/h", "t0/g", 0))
	assert.Equal(t, 1, m.Entry("t0/x/e/f").Nlink)
	assert.Equal(t, 1, m.Entry("t0/g").Nlink)
	assert.False(t, m.Exists("t0/h"))
	assert.Equal(t, "EPERM", apply(kLink, "t0/x", "t0/y", 0))
	assert.Equal(t, "EISDIR", apply(kUnlink, "t0/x", "", 0))
	assert.Equal(t, "ENOTDIR", apply(kRmdir, "t0/g", "", 0))
	assert.Equal(t, "ENOTDIR", apply(kCreate, "t0/g/z", "", 0))
}

func TestInView(t *testing.T) {
	assert.True(t, inView("t1", 1))
	assert.True(t, inView("t1/d/f", 1))
	assert.False(t, inView("t10/f", 1))
	assert.True(t, inView("shared", 1))
	assert.True(t, inView("shared/s1_f2", 1))
	assert.False(t, inView("shared/s10_f2", 1))
	assert.False(t, inView("shared/other", 1))
	s := &Snapshot{Entries: map[string]*SnapEntry{"t0": {Dir: true}, "shared": {Dir: true}, "shared/x": {}, "t5": {Dir: true}}}
	assert.Equal(t, []string{"shared/x", "t5"}, s.strays(2))
}

func TestGenData(t *testing.T) {
	a := genData(1, opID(2, 3, 4), 100)
	assert.Equal(t, a, genData(1, opID(2, 3, 4), 100))
	assert.Equal(t, a[:10], genData(1, opID(2, 3, 4), 10))
	assert.NotEqual(t, a, genData(1, opID(2, 3, 5), 100))
	assert.NotEqual(t, a, genData(2, opID(2, 3, 4), 100))
	assert.Equal(t, "c2.t3.4", fmtID(opID(2, 3, 4)))
	assert.Equal(t, fmt.Sprint(opID(1, 0, 0)), "1099511627776")
}
