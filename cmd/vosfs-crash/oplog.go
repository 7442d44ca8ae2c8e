package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The operation log is a text file outside the mount, one event a line:
//
//	H cycle=3 seed=42 commit=sync threads=4 powercut=77   the cycle's header
//	I seq=17 t=2 id=… kind=write path="t2/f3" off=0 len=100 …   issued
//	R seq=18 t=2 id=… res=ok                               returned (ok or an errno name)
//	K seq=90 pid=1234                                      the daemon is about to be killed
//	S seq=90 flag=2                                        the mount is about to be shut down (ioctl)
//
// seq orders all events of a cycle: an operation whose R line comes before
// the I line of another returned before that one was issued. Strings are Go
// quoted.

// Kinds of operations.
const (
	kCreate    = "create"
	kWrite     = "write"  // pwrite
	kDWrite    = "dwrite" // pwrite on an O_DIRECT descriptor, aligned
	kMWrite    = "mwrite" // store into a shared mapping, then msync(MS_SYNC)
	kTruncate  = "truncate"
	kFalloc    = "falloc"
	kRename    = "rename"
	kLink      = "link"
	kUnlink    = "unlink"
	kMkdir     = "mkdir"
	kRmdir     = "rmdir"
	kSetxattr  = "setxattr"
	kFsync     = "fsync"
	kFdatasync = "fdatasync"
	kSyncfs    = "syncfs"
)

// Results that are not errno names.
const (
	resOK    = "ok"
	resShort = "SHORT" // a write wrote fewer bytes than asked
	resFault = "SIGBUS"
)

// Op is one operation of the workload, as logged.
type Op struct {
	Seq    int64 // of its I line
	Done   int64 // of its R line; 0 if it never returned
	Thread int
	ID     uint64
	Kind   string
	Path   string
	Path2  string // rename and link: the new name
	Off    int64
	Len    int64  // writes and falloc: bytes; truncate: the size; setxattr: value length
	Flags  int    // rename: renameat2 flags; falloc: mode
	Name   string // setxattr: the attribute
	Result string // "ok", an errno name, or "" if it never returned
}

// unknownResult reports whether a result leaves it open whether the
// operation happened: no result, or the errors of a mount whose daemon died
// (and a short write, a fault in a mapping, an interrupted call).
func unknownResult(res string) bool {
	switch res {
	case "", "ENOTCONN", "ECONNABORTED", "EIO", "EINTR", resShort, resFault:
		return true
	}
	return false
}

// fence reports whether a successful op makes everything before it
// durable in commit=async. syncfs is not one: the kernel sends a FUSE
// daemon no request for syncfs(2) or sync(2) (only virtio-fs gets one), so
// the filesystem never learns of it.
func (op *Op) fence() bool {
	switch op.Kind {
	case kFsync, kFdatasync, kMWrite:
		return op.Result == resOK
	}
	return false
}

func (op *Op) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s", fmtID(op.ID), op.Kind, op.Path)
	switch op.Kind {
	case kRename, kLink:
		fmt.Fprintf(&b, " -> %s", op.Path2)
		if op.Flags != 0 {
			fmt.Fprintf(&b, " flags=%#x", op.Flags)
		}
	case kWrite, kDWrite, kMWrite:
		fmt.Fprintf(&b, " off=%d len=%d", op.Off, op.Len)
	case kFalloc:
		fmt.Fprintf(&b, " mode=%#x off=%d len=%d", op.Flags, op.Off, op.Len)
	case kTruncate:
		fmt.Fprintf(&b, " size=%d", op.Len)
	case kSetxattr:
		fmt.Fprintf(&b, " %s len=%d", op.Name, op.Len)
	}
	res := op.Result
	if res == "" {
		res = "no result"
	}
	fmt.Fprintf(&b, ": %s", res)
	return b.String()
}

// opLog appends events to the log file; Close flushes and syncs it. The
// buffer is flushed and synced every flushEvery, which is enough since only
// the daemon is killed, never this process.
type opLog struct {
	mu   sync.Mutex
	f    *os.File
	w    *bufio.Writer
	seq  int64 // guarded by mu
	err  error // first write error; guarded by mu
	done chan struct{}
	wg   sync.WaitGroup
}

const flushEvery = 200 * time.Millisecond

func createLog(path string) (*opLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	l := &opLog{f: f, w: bufio.NewWriterSize(f, 1<<20), done: make(chan struct{})}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		t := time.NewTicker(flushEvery)
		defer t.Stop()
		for {
			select {
			case <-l.done:
				return
			case <-t.C:
				l.flush()
			}
		}
	}()
	return l, nil
}

func (l *opLog) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.w.Flush(); err != nil && l.err == nil {
		l.err = err
	}
	if err := l.f.Sync(); err != nil && l.err == nil {
		l.err = err
	}
}

// line appends one event and returns its sequence number.
func (l *opLog) line(kind string, format string, args ...any) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	fmt.Fprintf(l.w, "%s seq=%d ", kind, l.seq)
	fmt.Fprintf(l.w, format, args...)
	l.w.WriteByte('\n')
	return l.seq
}

func (l *opLog) header(cycle int, seed int64, commit string, threads int, powercut int64) {
	l.line("H", "cycle=%d seed=%d commit=%s threads=%d powercut=%d", cycle, seed, commit, threads, powercut)
}

// issue logs op before it is issued and sets op.Seq.
func (l *opLog) issue(op *Op) {
	var b strings.Builder
	fmt.Fprintf(&b, "t=%d id=%d kind=%s path=%s", op.Thread, op.ID, op.Kind, strconv.Quote(op.Path))
	if op.Path2 != "" {
		fmt.Fprintf(&b, " path2=%s", strconv.Quote(op.Path2))
	}
	if op.Off != 0 {
		fmt.Fprintf(&b, " off=%d", op.Off)
	}
	if op.Len != 0 {
		fmt.Fprintf(&b, " len=%d", op.Len)
	}
	if op.Flags != 0 {
		fmt.Fprintf(&b, " flags=%d", op.Flags)
	}
	if op.Name != "" {
		fmt.Fprintf(&b, " name=%s", strconv.Quote(op.Name))
	}
	op.Seq = l.line("I", "%s", b.String())
}

// result logs what op returned and sets op.Done.
func (l *opLog) result(op *Op, res string) {
	op.Result = res
	op.Done = l.line("R", "t=%d id=%d res=%s", op.Thread, op.ID, res)
}

func (l *opLog) kill(pid int) int64 { return l.line("K", "pid=%d", pid) }

func (l *opLog) shutdown(flag uint32) int64 { return l.line("S", "flag=%d", flag) }

func (l *opLog) Close() error {
	close(l.done)
	l.wg.Wait()
	l.flush()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.f.Close(); err != nil && l.err == nil {
		l.err = err
	}
	return l.err
}

// Log is a parsed operation log.
type Log struct {
	Cycle   int
	Seed    int64
	Commit  string
	Threads int
	Kill    int64 // seq of the K or S line; 0 if none
	// Shutdown: the cycle ended with the shutdown ioctl (an S line) with
	// flag Flag, not a kill.
	Shutdown bool
	Flag     uint32
	Ops      []*Op // in issue order
}

// ThreadOps returns the operations of thread t in issue order.
func (g *Log) ThreadOps(t int) []*Op {
	var ops []*Op
	for _, op := range g.Ops {
		if op.Thread == t {
			ops = append(ops, op)
		}
	}
	return ops
}

// parseLog reads a log. Unknown keys are errors, so that a change of the
// format is noticed.
func parseLog(r io.Reader) (*Log, error) {
	g := &Log{}
	byID := make(map[uint64]*Op)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		kind, fields, err := splitLine(text)
		if err != nil {
			return nil, fmt.Errorf("log line %d: %w", n, err)
		}
		bad := func(format string, args ...any) error {
			return fmt.Errorf("log line %d: %s: %s", n, fmt.Sprintf(format, args...), text)
		}
		num := func(k string) (int64, error) {
			v, ok := fields[k]
			if !ok {
				return 0, nil
			}
			return strconv.ParseInt(v, 10, 64)
		}
		switch kind {
		case "H":
			for k, v := range fields {
				var err error
				switch k {
				case "seq", "powercut":
				case "cycle":
					g.Cycle, err = strconv.Atoi(v)
				case "seed":
					g.Seed, err = strconv.ParseInt(v, 10, 64)
				case "commit":
					g.Commit = v
				case "threads":
					g.Threads, err = strconv.Atoi(v)
				default:
					return nil, bad("unknown key %q", k)
				}
				if err != nil {
					return nil, bad("%s: %v", k, err)
				}
			}
		case "K":
			if g.Kill, err = num("seq"); err != nil {
				return nil, bad("%v", err)
			}
		case "S":
			if g.Kill, err = num("seq"); err != nil {
				return nil, bad("%v", err)
			}
			f, err := strconv.ParseUint(fields["flag"], 10, 32)
			if err != nil || f > 2 {
				return nil, bad("flag: want 0, 1 or 2")
			}
			g.Shutdown, g.Flag = true, uint32(f)
		case "I":
			op := &Op{}
			for k, v := range fields {
				var err error
				var x int64
				switch k {
				case "seq":
					op.Seq, err = strconv.ParseInt(v, 10, 64)
				case "t":
					op.Thread, err = strconv.Atoi(v)
				case "id":
					op.ID, err = strconv.ParseUint(v, 10, 64)
				case "kind":
					op.Kind = v
				case "path":
					op.Path = v
				case "path2":
					op.Path2 = v
				case "off":
					op.Off, err = strconv.ParseInt(v, 10, 64)
				case "len":
					op.Len, err = strconv.ParseInt(v, 10, 64)
				case "flags":
					x, err = strconv.ParseInt(v, 10, 64)
					op.Flags = int(x)
				case "name":
					op.Name = v
				default:
					return nil, bad("unknown key %q", k)
				}
				if err != nil {
					return nil, bad("%s: %v", k, err)
				}
			}
			if byID[op.ID] != nil {
				return nil, bad("operation %s issued twice", fmtID(op.ID))
			}
			byID[op.ID] = op
			g.Ops = append(g.Ops, op)
		case "R":
			id, err := strconv.ParseUint(fields["id"], 10, 64)
			if err != nil {
				return nil, bad("id: %v", err)
			}
			op := byID[id]
			switch {
			case op == nil:
				return nil, bad("result of an operation never issued")
			case op.Done != 0:
				return nil, bad("second result")
			}
			if op.Done, err = num("seq"); err != nil {
				return nil, bad("%v", err)
			}
			op.Result = fields["res"]
			if op.Result == "" {
				return nil, bad("no res")
			}
		default:
			return nil, bad("unknown event %q", kind)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	sort.SliceStable(g.Ops, func(i, j int) bool { return g.Ops[i].Seq < g.Ops[j].Seq })
	return g, nil
}

// splitLine splits "KIND k=v k="quoted v" ..." into the kind and fields.
func splitLine(s string) (string, map[string]string, error) {
	kind, rest, _ := strings.Cut(s, " ")
	fields := make(map[string]string)
	for rest = strings.TrimLeft(rest, " "); rest != ""; rest = strings.TrimLeft(rest, " ") {
		k, after, ok := strings.Cut(rest, "=")
		if !ok || k == "" || strings.Contains(k, " ") {
			return "", nil, fmt.Errorf("want key=value at %q", rest)
		}
		var v string
		if strings.HasPrefix(after, `"`) {
			q, err := strconv.QuotedPrefix(after)
			if err != nil {
				return "", nil, fmt.Errorf("key %s: bad quoted value", k)
			}
			if v, err = strconv.Unquote(q); err != nil {
				return "", nil, err
			}
			after = after[len(q):]
		} else {
			v, after, _ = strings.Cut(after, " ")
			after = " " + after
		}
		if _, dup := fields[k]; dup {
			return "", nil, fmt.Errorf("key %s twice", k)
		}
		fields[k] = v
		rest = after
	}
	return kind, fields, nil
}
