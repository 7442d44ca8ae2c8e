package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// config is one run of the crash test.
type config struct {
	Cycles   int
	Seed     int64
	Commit   string // "sync" or "async"
	Threads  int
	PowerCut bool // mount with -o powercut=SEED
	// Writeback mounts with -o writeback_cache.
	Writeback bool
	// Shutdown ends each cycle with the shutdown ioctl instead of a
	// kill, with flag ShutdownFlag (0, 1 or 2; -1: drawn per cycle);
	// later operations must get EIO, and the mount is unmounted.
	Shutdown     bool
	ShutdownFlag int
	Vosfs        string        // the vosfs executable
	Dir          string        // holds pool/, mnt/ and logs/
	Duration     time.Duration // mean workload time per cycle
	Out          io.Writer     // progress and violations
}

// runner carries a run's state from cycle to cycle.
type runner struct {
	cfg        config
	v          *vosfsCmd
	rng        *rand.Rand // the harness's decisions: kill times, power-cut seeds
	logs       string
	pid        int // the live daemon
	conn       int // its fusectl connection
	violations int
}

func (r *runner) printf(format string, args ...any) { fmt.Fprintf(r.cfg.Out, format, args...) }

// violation reports one violation.
func (r *runner) violation(cycle int, text string) {
	r.violations++
	pc := ""
	if r.cfg.PowerCut {
		pc = " powercut"
	}
	if r.cfg.Writeback {
		pc += " writeback_cache"
	}
	if r.cfg.Shutdown {
		pc += " shutdown"
	}
	r.printf("VIOLATION cycle %d (seed %d, commit=%s%s): %s\n", cycle, r.cfg.Seed, r.cfg.Commit, pc, text)
}

// run runs the crash test: mkfs, setup, the cycles, then a clean unmount
// and a final fsck. It returns the number of cycles done and of
// violations; err is set when the run could not go on.
func run(cfg config) (cycles, violations int, err error) {
	r := &runner{
		cfg:  cfg,
		rng:  rand.New(rand.NewPCG(uint64(cfg.Seed), 0x68617273)),
		logs: filepath.Join(cfg.Dir, "logs"),
		v:    &vosfsCmd{bin: cfg.Vosfs, pool: filepath.Join(cfg.Dir, "pool"), mnt: filepath.Join(cfg.Dir, "mnt")},
	}
	for _, d := range []string{r.logs, r.v.pool, r.v.mnt} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return 0, 0, err
		}
	}
	if mounted(r.v.mnt) {
		r.v.detach()
	}
	if err := r.v.mkfs(); err != nil {
		return 0, 0, err
	}
	if err := r.mount(); err != nil {
		return 0, 0, err
	}
	defer func() {
		if mounted(r.v.mnt) {
			if r.pid > 0 {
				kill(r.pid)
				waitExit(r.pid, 10*time.Second)
			}
			r.v.detach()
		}
	}()
	if err := r.setup(); err != nil {
		return 0, r.violations, err
	}
	base, err := scan(r.v.mnt)
	if err != nil {
		return 0, r.violations, fmt.Errorf("scan after setup: %w", err)
	}
	for c := 1; c <= cfg.Cycles; c++ {
		next, err := r.cycle(c, base)
		if err != nil {
			r.violation(c, err.Error())
			return c, r.violations, err
		}
		base = next
		cycles = c
	}
	r.checkSpace(cycles, base)
	if err := r.finish(); err != nil {
		return cycles, r.violations, err
	}
	return cycles, r.violations, nil
}

// mount mounts with the run's commit mode and, with PowerCut, a new seed.
func (r *runner) mount() error {
	var seed *int64
	if r.cfg.PowerCut {
		s := r.rng.Int64()
		seed = &s
	}
	pid, err := r.v.mount(r.cfg.Commit, r.cfg.Writeback, seed)
	if err != nil {
		return err
	}
	r.pid, r.conn = pid, fuseConn(r.v.mnt)
	return nil
}

// setup creates the threads' directories and the shared one, durably.
func (r *runner) setup() error {
	for t := range r.cfg.Threads {
		if err := os.Mkdir(filepath.Join(r.v.mnt, threadDir(t)), 0o755); err != nil {
			return err
		}
	}
	if err := os.Mkdir(filepath.Join(r.v.mnt, sharedDir), 0o755); err != nil {
		return err
	}
	return syncfs(r.v.mnt)
}

func syncfs(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Syncfs(fd)
}

// cycle runs one cycle from a live mount whose state is base, and returns
// the state found after the crash, recovery and remount (checked), which
// is the next cycle's base. An error means the run cannot go on.
func (r *runner) cycle(c int, base *Snapshot) (*Snapshot, error) {
	cfg := r.cfg
	logPath := filepath.Join(r.logs, fmt.Sprintf("cycle-%03d.log", c))
	olog, err := createLog(logPath)
	if err != nil {
		return nil, err
	}
	olog.header(c, cfg.Seed, cfg.Commit, cfg.Threads, 0)

	// The workload, then the kill at a random moment.
	var stop atomic.Bool
	var wg sync.WaitGroup
	workers := make([]*worker, cfg.Threads)
	for t := range cfg.Threads {
		workers[t] = newWorker(t, c, cfg.Seed, r.v.mnt, modelOf(base, t), olog, &stop)
		wg.Add(1)
		go func() {
			defer wg.Done()
			workers[t].run()
		}()
	}
	killAt := time.Duration(float64(cfg.Duration) * (0.25 + 1.5*r.rng.Float64()))
	start := time.Now()
	time.Sleep(killAt)
	if !alive(r.pid) {
		r.violation(c, fmt.Sprintf("the daemon (pid %d) died by itself before the kill; the end of its log:\n%s", r.pid, logTail(r.v.pool, 30)))
	}
	how := "killed"
	shut := false
	if cfg.Shutdown {
		flag := uint32(cfg.ShutdownFlag)
		if cfg.ShutdownFlag < 0 {
			flag = uint32(r.rng.IntN(3))
		}
		how = fmt.Sprintf("shut down (flag %d)", flag)
		olog.shutdown(flag)
		if err := shutdownMount(r.v.mnt, flag); err != nil {
			r.violation(c, fmt.Sprintf("the shutdown ioctl with flag %d: %v; killing instead", flag, err))
		} else {
			shut = true
		}
	}
	if !shut {
		olog.kill(r.pid)
		if err := kill(r.pid); err != nil && alive(r.pid) {
			stop.Store(true)
			return nil, fmt.Errorf("kill %d: %w", r.pid, err)
		}
	}
	killed := time.Since(start)
	if err := waitGroup(&wg, 30*time.Second); err != nil {
		r.violation(c, "workload threads still blocked 30s after the "+map[bool]string{false: "kill", true: "shutdown"}[shut]+"; aborting the FUSE connection")
		abortFuse(r.conn)
		if err := waitGroup(&wg, 30*time.Second); err != nil {
			stop.Store(true)
			return nil, fmt.Errorf("workload threads hang on the dead mount")
		}
	}
	if shut {
		// Every operation now gets EIO; then the mount unmounts and the
		// daemon exits by itself.
		for _, v := range probeStopped(r.v.mnt) {
			r.violation(c, "after the shutdown: "+v)
		}
		if err := r.v.unmount(r.pid); err != nil {
			r.violation(c, "unmount after the shutdown: "+err.Error())
			kill(r.pid)
		}
	}
	if err := waitExit(r.pid, 30*time.Second); err != nil {
		return nil, err
	}
	if err := olog.Close(); err != nil {
		return nil, fmt.Errorf("operation log: %w", err)
	}

	// Detach, recover with fsck, remount.
	if err := r.v.detach(); err != nil {
		return nil, fmt.Errorf("detach the dead mount: %w", err)
	}
	out, code := r.v.fsck()
	if code != 0 {
		r.violation(c, fmt.Sprintf("vosfs fsck exited %d after the crash:\n%s", code, indent(out)))
	}
	recovery := fsckSummary(out)
	if err := r.mount(); err != nil {
		return nil, fmt.Errorf("remount after the crash: %w", err)
	}

	// Check.
	found, err := scan(r.v.mnt)
	if err != nil {
		return nil, fmt.Errorf("reading the remounted filesystem: %w", err)
	}
	f, err := os.Open(logPath)
	if err != nil {
		return nil, err
	}
	g, err := parseLog(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	res := check(checkInput{Seed: cfg.Seed, Commit: cfg.Commit, Threads: cfg.Threads, Base: base, Log: g, Found: found})
	for _, v := range res.Violations {
		r.violation(c, v+"\n  log: "+logPath)
	}
	for _, n := range res.Notes {
		r.printf("note: cycle %d: %s\n", c, n)
	}
	for _, w := range workers {
		if w.live != "" && !res.Threads[w.t].Broken {
			r.violation(c, fmt.Sprintf("thread %d: %s", w.t, w.live))
		}
	}
	for _, v := range probe(r.v.mnt, found, c) {
		r.violation(c, v)
	}
	if err := syncfs(r.v.mnt); err != nil {
		return nil, fmt.Errorf("syncfs after the check: %w", err)
	}

	inFlight := 0
	for _, op := range g.Ops {
		if unknownResult(op.Result) {
			inFlight++
		}
	}
	r.printf("cycle %d/%d: %d ops (%d in flight), %s at %s; fsck: %s; state %s: %s\n",
		c, cfg.Cycles, len(g.Ops), inFlight, how, killed.Round(time.Millisecond), recovery,
		map[bool]string{true: "ok", false: "WRONG"}[len(res.Violations) == 0], res.Summary())
	return found, nil
}

// finish unmounts cleanly and runs the final fsck, which must find the
// pool clean and closed cleanly.
func (r *runner) finish() error {
	pid := r.pid
	if err := r.v.unmount(pid); err != nil {
		r.violation(0, "clean unmount at the end: "+err.Error())
		return err
	}
	r.pid = 0
	out, code := r.v.fsck()
	switch {
	case code != 0:
		r.violation(0, fmt.Sprintf("final vosfs fsck exited %d:\n%s", code, indent(out)))
	case strings.Contains(out, "not closed cleanly"):
		r.violation(0, "the pool was not closed cleanly by the final unmount: "+firstLine(out))
	}
	r.printf("final unmount and fsck: %s\n", firstLine(out))
	return nil
}

// probe checks that every directory accepts a create and a delete.
func probe(mnt string, s *Snapshot, cycle int) []string {
	var out []string
	dirs := []string{""}
	for p, e := range s.Entries {
		if e.Dir {
			dirs = append(dirs, p)
		}
	}
	for _, d := range dirs {
		name := filepath.Join(mnt, d, fmt.Sprintf(".probe-%d", cycle))
		fd, err := unix.Open(name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			out = append(out, fmt.Sprintf("directory %q refuses a create: %v", "/"+d, err))
			continue
		}
		_, werr := unix.Write(fd, []byte("x"))
		unix.Close(fd)
		if werr != nil {
			out = append(out, fmt.Sprintf("directory %q: write to a new file: %v", "/"+d, werr))
		}
		if err := unix.Unlink(name); err != nil {
			out = append(out, fmt.Sprintf("directory %q refuses a delete: %v", "/"+d, err))
		}
	}
	return out
}

func waitGroup(wg *sync.WaitGroup, timeout time.Duration) error {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("timed out")
	}
}

// logTail returns the last n lines of the daemon's log.
func logTail(pool string, n int) string {
	b, err := os.ReadFile(filepath.Join(pool, "vosfs.log"))
	if err != nil {
		return "  (" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ")
}

// fsckSummary shortens the output of a successful fsck after a crash.
func fsckSummary(out string) string {
	if i := strings.Index(out, "replaying "); i >= 0 {
		return "recovered, " + firstLine(out[i:])
	}
	return firstLine(out)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}
