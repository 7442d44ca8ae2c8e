package main

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
)

// Limits of one thread's namespace, so that the model stays small.
const (
	maxFiles = 24      // files (names) per thread
	maxDirs  = 6       // directories per thread, its own included
	maxSize  = 2 << 20 // bytes per file
	maxDepth = 2       // of a directory under the thread's directory
)

// worker is one thread of the workload. It works in its own directory tN
// and on its names sN_* in the shared directory, so that its operations'
// outcomes depend on nothing else: its model says what each returns. It
// stops at the first operation whose outcome is unknown (the daemon died)
// or that returned something else than the model says (a bug, reported).
type worker struct {
	t     int
	cycle int
	seed  int64
	mnt   string
	rng   *rand.Rand
	m     *Model
	log   *opLog
	stop  *atomic.Bool // set to end the workload without a crash
	n     uint32       // operations issued

	live string // a live result that disagreed with the model
}

func newWorker(t, cycle int, seed int64, mnt string, m *Model, log *opLog, stop *atomic.Bool) *worker {
	return &worker{
		t: t, cycle: cycle, seed: seed, mnt: mnt, m: m, log: log, stop: stop,
		rng: rand.New(rand.NewPCG(uint64(seed), uint64(cycle)<<8|uint64(t))),
	}
}

// run issues operations until one has an unknown outcome, a live result
// is wrong, or stop is set.
func (w *worker) run() {
	for !w.stop.Load() {
		op := w.next()
		op.Thread, op.ID = w.t, opID(w.cycle, w.t, w.n)
		w.n++
		gen := func(n int) []byte { return genData(w.seed, op.ID, n) }
		var data []byte
		switch op.Kind {
		case kWrite, kDWrite, kMWrite:
			data = gen(int(op.Len))
		case kSetxattr:
			data = gen(int(op.Len))
		}
		w.log.issue(op)
		res := execOp(w.mnt, op, data)
		w.log.result(op, res)
		if unknownResult(res) {
			return
		}
		want := w.m.Apply(op, func(n int) []byte { return data[:n] })
		w.m.ForgetDirty()
		if want != res {
			w.live = fmt.Sprintf("%s, but the model of its state says %s", op, want)
			return
		}
	}
}

// ForgetDirty drops the record of changed paths (the workload has no use
// for it).
func (m *Model) ForgetDirty() { clear(m.dirty) }

func (w *worker) pick(s []string) string { return s[w.rng.IntN(len(s))] }

// ownDirs are the thread's directories, the shared one left out.
func (w *worker) ownDirs() []string {
	var out []string
	for _, d := range w.m.Dirs() {
		if d != sharedDir {
			out = append(out, d)
		}
	}
	return out
}

// nestedDirs are the thread's directories below its own.
func (w *worker) nestedDirs() []string {
	var out []string
	for _, d := range w.ownDirs() {
		if d != threadDir(w.t) {
			out = append(out, d)
		}
	}
	return out
}

// nameIn returns a random file name in dir, which may exist.
func (w *worker) nameIn(dir string) string {
	if dir == sharedDir {
		return fmt.Sprintf("%s/%sf%d", sharedDir, sharedPrefix(w.t), w.rng.IntN(8))
	}
	return fmt.Sprintf("%s/f%d", dir, w.rng.IntN(10))
}

// fileDir returns a random directory for a file: one of the thread's, or
// the shared one.
func (w *worker) fileDir() string {
	if w.rng.IntN(4) == 0 {
		return sharedDir
	}
	return w.pick(w.ownDirs())
}

// freeName returns a name that does not exist in a random directory, or ""
// after a few tries.
func (w *worker) freeName() string {
	for range 8 {
		if p := w.nameIn(w.fileDir()); !w.m.Exists(p) {
			return p
		}
	}
	return ""
}

// depth is the depth of p below the thread's directory (0 for it, and for
// the shared directory's entries).
func depth(p string) int { return strings.Count(p, "/") }

// subtreeDepth is how deep the tree under directory p goes below it.
func (m *Model) subtreeDepth(p string) int {
	d := 0
	for _, q := range m.Dirs() {
		if strings.HasPrefix(q, p+"/") {
			d = max(d, depth(q)-depth(p))
		}
	}
	return d
}

// weights of the kinds of operations the workload picks.
var weights = []struct {
	kind string
	w    int
}{
	{kCreate, 10}, {kWrite, 16}, {"write-large", 8}, {kDWrite, 3}, {kMWrite, 3},
	{kTruncate, 4}, {kFalloc, 4}, {kRename, 8}, {"rename-dir", 1}, {kLink, 4}, {kUnlink, 6},
	{kMkdir, 3}, {kRmdir, 3}, {kSetxattr, 5}, {kFsync, 3}, {kFdatasync, 3}, {kSyncfs, 1},
}

var totalWeight = func() int {
	n := 0
	for _, w := range weights {
		n += w.w
	}
	return n
}()

// next picks the next operation from the model of the thread's state.
func (w *worker) next() *Op {
	for {
		x := w.rng.IntN(totalWeight)
		kind := ""
		for _, k := range weights {
			if x < k.w {
				kind = k.kind
				break
			}
			x -= k.w
		}
		if op := w.build(kind); op != nil {
			return op
		}
	}
}

// build returns an operation of the kind, or nil if the state does not
// allow a sensible one.
func (w *worker) build(kind string) *Op {
	files := w.m.Files()
	if len(files) == 0 && kind != kMkdir && kind != kSyncfs {
		kind = kCreate
	}
	if len(files) >= maxFiles && (kind == kCreate || kind == kLink) {
		kind = kUnlink
	}
	switch kind {
	case kCreate:
		p := w.freeName()
		if w.rng.IntN(10) == 0 && len(files) > 0 {
			p = w.pick(files) // EEXIST
		}
		if p == "" {
			return nil
		}
		return &Op{Kind: kCreate, Path: p}
	case kWrite:
		f := w.pick(files)
		size := w.m.Size(f)
		n := 1 + w.rng.Int64N(pageSize-1)
		var off int64
		switch x := w.rng.IntN(10); {
		case x < 5:
			off = w.rng.Int64N(max(size-n, 0) + 1) // overwrite
		case x < 8:
			off = size // append
		default:
			off = w.rng.Int64N(size + 16<<10 + 1)
		}
		off = min(off, maxSize-n)
		return &Op{Kind: kWrite, Path: f, Off: off, Len: n}
	case "write-large":
		f := w.pick(files)
		size := w.m.Size(f)
		n := 64<<10 + w.rng.Int64N(1<<20-64<<10+1)
		off := w.rng.Int64N(max(min(size, maxSize-n), 0) + 1)
		if w.rng.IntN(2) == 0 { // aligned
			n = max(n/pageSize*pageSize, pageSize)
			off = off / pageSize * pageSize
		}
		return &Op{Kind: kWrite, Path: f, Off: off, Len: n}
	case kDWrite:
		f := w.pick(files)
		n := pageSize * (1 + w.rng.Int64N(32))
		blocks := min(w.m.Size(f)/pageSize+4, (maxSize-n)/pageSize)
		off := pageSize * w.rng.Int64N(blocks+1)
		return &Op{Kind: kDWrite, Path: f, Off: off, Len: n}
	case kMWrite:
		var nonEmpty []string
		for _, f := range files {
			if w.m.Size(f) > 0 {
				nonEmpty = append(nonEmpty, f)
			}
		}
		if len(nonEmpty) == 0 {
			return nil
		}
		f := w.pick(nonEmpty)
		size := w.m.Size(f)
		page := w.rng.Int64N((size+pageSize-1)/pageSize) * pageSize
		avail := min(pageSize, size-page) // bytes of the page within the file
		start := w.rng.Int64N(avail)
		n := 1 + w.rng.Int64N(min(avail-start, 2048))
		return &Op{Kind: kMWrite, Path: f, Off: page + start, Len: n}
	case kTruncate:
		f := w.pick(files)
		size := w.m.Size(f)
		var to int64
		switch x := w.rng.IntN(10); {
		case x < 4:
			to = w.rng.Int64N(size + 1)
		case x < 8:
			to = size + w.rng.Int64N(64<<10)
		default:
			to = w.rng.Int64N(size/pageSize+2) * pageSize
		}
		return &Op{Kind: kTruncate, Path: f, Len: min(to, maxSize)}
	case kFalloc:
		f := w.pick(files)
		size := w.m.Size(f)
		if w.rng.IntN(2) == 0 {
			off := w.rng.Int64N(size + 64<<10 + 1)
			n := 1 + w.rng.Int64N(128<<10)
			off = min(off, maxSize-n)
			return &Op{Kind: kFalloc, Path: f, Off: off, Len: n}
		}
		off := w.rng.Int64N(size + 1)
		n := 1 + w.rng.Int64N(256<<10)
		return &Op{Kind: kFalloc, Path: f, Off: off, Len: n, Flags: fallocPunch}
	case kRename:
		src := w.pick(files)
		for range 8 {
			dst := w.nameIn(w.fileDir())
			if dst == src || w.m.IsDir(dst) {
				continue
			}
			op := &Op{Kind: kRename, Path: src, Path2: dst}
			if w.rng.IntN(4) == 0 {
				op.Flags = renameNoReplace
			}
			return op
		}
		return nil
	case "rename-dir":
		nested := w.nestedDirs()
		if len(nested) == 0 {
			return nil
		}
		src := w.pick(nested)
		var parents []string
		for _, d := range w.ownDirs() {
			if d != src && !strings.HasPrefix(d, src+"/") && depth(d)+1+w.m.subtreeDepth(src) <= maxDepth {
				parents = append(parents, d)
			}
		}
		if len(parents) == 0 {
			return nil
		}
		dst := fmt.Sprintf("%s/d%d", w.pick(parents), w.rng.IntN(4))
		if dst == src || w.m.Exists(dst) && w.rng.IntN(2) == 0 {
			return nil
		}
		op := &Op{Kind: kRename, Path: src, Path2: dst}
		if w.rng.IntN(2) == 0 {
			op.Flags = renameNoReplace
		}
		if in := w.m.lookup(dst); in != nil && !in.dir {
			return nil // a directory onto a file: ENOTDIR, not worth it
		}
		return op
	case kLink:
		src := w.pick(files)
		dst := w.freeName()
		if w.rng.IntN(10) == 0 {
			dst = w.pick(files) // EEXIST
		}
		if dst == "" || dst == src {
			return nil
		}
		return &Op{Kind: kLink, Path: src, Path2: dst}
	case kUnlink:
		return &Op{Kind: kUnlink, Path: w.pick(files)}
	case kMkdir:
		if len(w.ownDirs()) >= maxDirs {
			return nil
		}
		var parents []string
		for _, d := range w.ownDirs() {
			if depth(d) < maxDepth {
				parents = append(parents, d)
			}
		}
		return &Op{Kind: kMkdir, Path: fmt.Sprintf("%s/d%d", w.pick(parents), w.rng.IntN(4))}
	case kRmdir:
		nested := w.nestedDirs()
		if len(nested) == 0 {
			return nil
		}
		var empty []string
		for _, d := range nested {
			if len(w.m.Children(d)) == 0 {
				empty = append(empty, d)
			}
		}
		if len(empty) > 0 && w.rng.IntN(4) != 0 {
			return &Op{Kind: kRmdir, Path: w.pick(empty)}
		}
		return &Op{Kind: kRmdir, Path: w.pick(nested)} // ENOTEMPTY if not empty
	case kSetxattr:
		targets := append(files, w.ownDirs()...)
		return &Op{Kind: kSetxattr, Path: w.pick(targets), Name: fmt.Sprintf("user.x%d", w.rng.IntN(4)), Len: 1 + w.rng.Int64N(300)}
	case kFsync, kFdatasync:
		targets := append(files, w.ownDirs()...)
		return &Op{Kind: kind, Path: w.pick(targets)}
	case kSyncfs:
		return &Op{Kind: kSyncfs, Path: threadDir(w.t)}
	}
	panic("unknown kind " + kind)
}
