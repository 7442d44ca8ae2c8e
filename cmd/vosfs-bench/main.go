// Command vosfs-bench runs the fio jobs of testdata/fio against vosfs and
// its baselines, all on the same disk under one work directory:
//
//	vosfs-sync   vosfs mounted with -o commit=sync, on a fresh pool
//	vosfs-async  vosfs mounted with -o commit=async, on a fresh pool
//	loopback     a plain directory mounted through the loopback command,
//	             which lets the kernel read and write the backing files
//	             itself (FUSE passthrough) where the kernel has it
//	loopback-nopass  the same, declining passthrough: every read and write
//	             is a request to the daemon, as with vosfs
//	bare         a plain directory, no FUSE
//
// Usage:
//
//	vosfs-bench [--rounds N] [--jobs LIST] [--targets LIST] [--dir DIR]
//	            [--out DIR] [--vosfs PATH] [--loopback PATH] [--fio PATH]
//
// Each target is mounted once and unmounted at the end, also when the
// bench is interrupted. The jobs run interleaved (for each round, each job,
// each target) and the report takes the median of the rounds. A target
// that fails to mount is left out, with a note in the report.
//
// It writes results.json (every run, with fio's output), results.md (a
// table of the medians and of the ratios of vosfs to loopback and to the
// bare directory) and results.svg (a bar chart of the ratios to loopback).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

type config struct {
	rounds     int
	jobs       []job
	targets    []string
	dir        string
	out        string
	vosfs      string
	loopback   string
	fio        string
	jobDir     string
	poolSize   string
	timeout    time.Duration
	dropCaches bool
	keep       bool
}

const usage = `usage: vosfs-bench [flags]

Runs the fio jobs of testdata/fio on vosfs (commit=sync and commit=async),
on the loopback FUSE filesystem and on the bare directory, all on the disk
of the work directory, and writes results.json, results.md and results.svg.

Jobs, in the order each round runs them: %s.
Targets: %s.

Flags:
`

func parseFlags(args []string) (*config, error) {
	cfg := &config{}
	fl := flag.NewFlagSet("vosfs-bench", flag.ContinueOnError)
	fl.Usage = func() {
		var names []string
		for _, j := range allJobs {
			names = append(names, j.Name)
		}
		fmt.Fprintf(fl.Output(), usage, strings.Join(names, ", "), strings.Join(allTargets, ", "))
		fl.PrintDefaults()
	}
	fl.IntVar(&cfg.rounds, "rounds", 3, "rounds of every job on every target; the report takes the median")
	jobs := fl.String("jobs", "", "comma-separated `LIST` of jobs to run (default all)")
	targets := fl.String("targets", "", "comma-separated `LIST` of targets (default all)")
	fl.StringVar(&cfg.dir, "dir", "", "work `DIR` holding the pools, mount points and files (default a new directory under /var/tmp)")
	fl.StringVar(&cfg.out, "out", "", "`DIR` for results.json, results.md and results.svg (default the work directory)")
	fl.StringVar(&cfg.vosfs, "vosfs", "vosfs", "the vosfs binary")
	fl.StringVar(&cfg.loopback, "loopback", "loopback", "the loopback binary")
	fl.StringVar(&cfg.fio, "fio", "fio", "the fio binary")
	fl.StringVar(&cfg.jobDir, "jobdir", "", "`DIR` of the .fio job files (default testdata/fio of the module around the current directory)")
	fl.StringVar(&cfg.poolSize, "pool-size", "8GiB", "data `SIZE` of the vosfs pools")
	fl.DurationVar(&cfg.timeout, "timeout", 10*time.Minute, "longest a single fio run may take")
	fl.BoolVar(&cfg.dropCaches, "drop-caches", true, "sync and drop the page cache before each run (needs root)")
	fl.BoolVar(&cfg.keep, "keep", false, "keep the pools and files of the targets after the run")
	if err := fl.Parse(args); err != nil {
		return nil, err
	}
	if fl.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fl.Args())
	}
	if cfg.rounds < 1 {
		return nil, errors.New("--rounds must be at least 1")
	}
	sel, err := selection(*jobs, func(name string) bool { _, ok := lookupJob(name); return ok }, "job")
	if err != nil {
		return nil, err
	}
	for _, j := range allJobs {
		if sel == nil || sel[j.Name] {
			cfg.jobs = append(cfg.jobs, j)
		}
	}
	sel, err = selection(*targets, func(name string) bool { return contains(allTargets, name) }, "target")
	if err != nil {
		return nil, err
	}
	for _, t := range allTargets {
		if sel == nil || sel[t] {
			cfg.targets = append(cfg.targets, t)
		}
	}
	return cfg, nil
}

// selection parses a comma-separated list; nil means all.
func selection(list string, valid func(string) bool, what string) (map[string]bool, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	sel := map[string]bool{}
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if !valid(name) {
			return nil, fmt.Errorf("unknown %s %q", what, name)
		}
		sel[name] = true
	}
	if len(sel) == 0 {
		return nil, fmt.Errorf("no %s selected", what)
	}
	return sel, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// findJobDir looks for testdata/fio in the current directory and its
// parents.
func findJobDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		d := filepath.Join(dir, "testdata", "fio")
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			return d, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no testdata/fio here or above; give --jobdir")
		}
		dir = parent
	}
}

// resolveBinary makes a binary given as a path absolute, so that it does
// not depend on the directory it runs in; a bare name is left to PATH.
func resolveBinary(p string) string {
	if strings.ContainsRune(p, '/') {
		if abs, err := filepath.Abs(p); err == nil {
			return abs
		}
	}
	return p
}

func main() {
	os.Exit(mainErr())
}

func mainErr() int {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "vosfs-bench: %v\n", err)
		return 2
	}
	b, err := newBench(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vosfs-bench: %v\n", err)
		return 1
	}
	return b.run()
}

// bench is one run of the benchmark.
type bench struct {
	cfg     *config
	fio     *fioRunner
	targets []*target
	rep     *report
	work    string
}

func newBench(cfg *config) (*bench, error) {
	cfg.vosfs, cfg.loopback, cfg.fio = resolveBinary(cfg.vosfs), resolveBinary(cfg.loopback), resolveBinary(cfg.fio)
	if _, err := exec.LookPath(cfg.fio); err != nil {
		return nil, fmt.Errorf("no fio: %w", err)
	}
	if cfg.jobDir == "" {
		d, err := findJobDir()
		if err != nil {
			return nil, err
		}
		cfg.jobDir = d
	}
	for _, j := range cfg.jobs {
		if _, err := os.Stat(filepath.Join(cfg.jobDir, j.Name+".fio")); err != nil {
			return nil, fmt.Errorf("job file: %w", err)
		}
	}
	work, err := workDir(cfg.dir)
	if err != nil {
		return nil, err
	}
	if cfg.out == "" {
		cfg.out = work
	}
	fr := &fioRunner{path: cfg.fio, jobDir: cfg.jobDir, timeout: cfg.timeout}
	version, err := fr.version()
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	var uts syscall.Utsname
	kernel := ""
	if syscall.Uname(&uts) == nil {
		kernel = "Linux " + utsString(uts.Release[:])
	}
	rep := &report{
		Started:    time.Now(),
		Host:       host,
		Kernel:     kernel,
		Fio:        version,
		Dir:        work,
		Filesystem: filesystemOf(work),
		Rounds:     cfg.rounds,
		DropCaches: cfg.dropCaches,
	}
	for _, j := range cfg.jobs {
		rep.Jobs = append(rep.Jobs, j.Name)
	}
	b := &bench{cfg: cfg, fio: fr, rep: rep, work: work}
	for _, name := range cfg.targets {
		t := newTarget(name, work, cfg)
		b.targets = append(b.targets, t)
		rep.Targets = append(rep.Targets, targetInfo{Name: name, Description: t.describe()})
	}
	return b, nil
}

// workDir creates the work directory, or checks the one given: nothing
// may be mounted in it, since the targets' directories are emptied.
func workDir(dir string) (string, error) {
	if dir == "" {
		d, err := os.MkdirTemp("/var/tmp", "vosfs-bench-")
		if err != nil {
			return "", err
		}
		return filepath.EvalSymlinks(d)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if abs, err = filepath.EvalSymlinks(abs); err != nil {
		return "", err
	}
	if m := mountsUnder(abs); len(m) > 0 {
		return "", fmt.Errorf("%s is mounted: unmount it first", strings.Join(m, ", "))
	}
	for _, name := range allTargets {
		if err := os.RemoveAll(filepath.Join(abs, name)); err != nil {
			return "", err
		}
	}
	return abs, nil
}

func utsString(cs []int8) string {
	var b strings.Builder
	for _, c := range cs {
		if c == 0 {
			break
		}
		b.WriteByte(byte(c))
	}
	return b.String()
}

// run mounts the targets, runs the rounds, unmounts and writes the
// report. It returns the exit status.
func (b *bench) run() int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sig)
	go func() {
		n := 0
		for s := range sig {
			n++
			if n == 1 {
				fmt.Fprintf(os.Stderr, "\n%v: stopping, then unmounting the targets\n", s)
				cancel()
			} else {
				fmt.Fprintf(os.Stderr, "%v: still unmounting the targets; the bench ends when they are\n", s)
			}
		}
	}()

	status := 0
	func() {
		// Whatever happens, the targets are unmounted.
		defer b.teardown()
		b.setup(ctx)
		b.rounds(ctx)
	}()
	if ctx.Err() != nil {
		b.rep.Interrupted = true
		status = 130
	}
	b.rep.Finished = time.Now()
	b.rep.Summary = summarize(b.rep.Jobs, b.cfg.targets, b.rep.Runs)
	if err := b.rep.writeFiles(b.cfg.out); err != nil {
		fmt.Fprintf(os.Stderr, "vosfs-bench: %v\n", err)
		return 1
	}
	fmt.Println()
	b.rep.writeTable(os.Stdout)
	fmt.Println()
	for _, n := range b.rep.Notes {
		fmt.Fprintf(os.Stderr, "note: %s\n", n)
	}
	fmt.Fprintf(os.Stderr, "results in %s: results.md, results.json, results.svg\n", b.cfg.out)
	return status
}

// setup mounts the targets one by one; one that fails is skipped.
func (b *bench) setup(ctx context.Context) {
	fmt.Fprintf(os.Stderr, "work directory %s (%s)\n", b.work, b.rep.Filesystem)
	for _, t := range b.targets {
		if ctx.Err() != nil {
			t.skipped = "interrupted before it was mounted"
			b.rep.target(t.name).Skipped = t.skipped
			continue
		}
		fmt.Fprintf(os.Stderr, "setting up %s: %s\n", t.name, t.describe())
		if err := t.setup(ctx); err != nil {
			t.skipped = "mount failed: " + err.Error()
			b.rep.target(t.name).Skipped = t.skipped
			fmt.Fprintf(os.Stderr, "%s: skipped: %v\n", t.name, err)
		}
	}
}

// teardown unmounts every target and, unless asked to keep them, removes
// the files of those that went well.
func (b *bench) teardown() {
	for i := len(b.targets) - 1; i >= 0; i-- {
		t := b.targets[i]
		if t.mnt != "" && isMounted(t.mnt) {
			fmt.Fprintf(os.Stderr, "unmounting %s\n", t.mnt)
		}
		if err := t.teardown(); err != nil {
			b.note("%s: unmount: %v", t.name, err)
		}
		if m := mountsUnder(t.base); len(m) > 0 {
			b.note("%s: still mounted: %s", t.name, strings.Join(m, ", "))
			continue
		}
		if b.cfg.keep {
			continue
		}
		if t.skipped != "" {
			b.note("%s: its files are kept in %s", t.name, t.base)
			continue
		}
		if err := os.RemoveAll(t.base); err != nil {
			b.note("%s: remove: %v", t.name, err)
		}
	}
}

func (b *bench) note(format string, args ...any) {
	n := fmt.Sprintf(format, args...)
	b.rep.Notes = append(b.rep.Notes, n)
}

// rounds runs every job on every target, round after round.
func (b *bench) rounds(ctx context.Context) {
	for round := 1; round <= b.cfg.rounds; round++ {
		for _, j := range b.cfg.jobs {
			for _, t := range b.targets {
				if ctx.Err() != nil {
					return
				}
				if t.skipped != "" {
					continue
				}
				b.runOne(ctx, round, j, t)
			}
		}
	}
}

// runOne runs job j on target t, first preparing what j needs.
func (b *bench) runOne(ctx context.Context, round int, j job, t *target) {
	prefix := fmt.Sprintf("round %d/%d %s on %s", round, b.cfg.rounds, j.Name, t.name)
	fmt.Fprintf(os.Stderr, "%s: ", prefix)
	r := run{Round: round, Job: j.Name, Target: t.name}
	err := b.prepare(ctx, j, t)
	if err == nil {
		b.dropCaches()
		before, ok := t.usageNow(ctx)
		r.Start = time.Now()
		var res *fioResult
		res, r.Fio, err = b.fio.run(ctx, j, t.dir)
		r.Seconds = time.Since(r.Start).Seconds()
		r.Result = res
		if after, ok2 := t.usageNow(ctx); ok && ok2 && err == nil {
			u := after.since(before)
			r.Daemon = &u
		}
	}
	if ctx.Err() != nil {
		fmt.Fprintf(os.Stderr, "interrupted\n")
		return
	}
	if err != nil {
		r.Error = err.Error()
		fmt.Fprintf(os.Stderr, "failed: %v\n", err)
		b.note("round %d %s on %s failed: %v", round, j.Name, t.name, err)
		// A FUSE target whose mount went away is done for.
		if cerr := t.check(); cerr != nil {
			t.skipped = fmt.Sprintf("dropped after round %d %s: %v", round, j.Name, cerr)
			b.rep.target(t.name).Skipped = t.skipped
			fmt.Fprintf(os.Stderr, "%s: %s\n", t.name, t.skipped)
		}
	} else {
		line := formatRate(j.Unit, r.Result.value(j.Unit))
		if r.Result.hasLatency() {
			line += " (p99 " + formatLatency(r.Result.P99NS) + ")"
		}
		fmt.Fprintf(os.Stderr, "%s\n", line)
		if j.Makes != "" {
			t.made[j.Makes] = true
		}
		if j.Consumes {
			delete(t.made, j.Needs)
		}
	}
	b.rep.Runs = append(b.rep.Runs, r)
}

// prepare checks the target is still there, removes leftovers, and runs,
// unmeasured, the job that makes what j needs if no earlier run left it.
func (b *bench) prepare(ctx context.Context, j job, t *target) error {
	if err := t.check(); err != nil {
		return err
	}
	if j.Needs != "" && !t.made[j.Needs] {
		m, _ := maker(j)
		fmt.Fprintf(os.Stderr, "(first %s) ", m.Name)
		if m.Clean != "" {
			if err := t.clean(m.Clean); err != nil {
				return fmt.Errorf("removing %s: %w", m.Clean, err)
			}
		}
		if _, _, err := b.fio.run(ctx, m, t.dir); err != nil {
			return fmt.Errorf("preparing with %s: %w", m.Name, err)
		}
		t.made[j.Needs] = true
	}
	if j.Clean != "" {
		if err := t.clean(j.Clean); err != nil {
			return fmt.Errorf("removing %s: %w", j.Clean, err)
		}
	}
	return nil
}

// dropCaches writes back dirty pages and drops the page cache, dentries
// and inodes, so that every run starts cold; it turns itself off if it
// cannot.
func (b *bench) dropCaches() {
	if !b.cfg.dropCaches {
		return
	}
	syscall.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
		b.cfg.dropCaches = false
		b.rep.DropCaches = false
		b.note("the page cache is not dropped between runs: %v", err)
	}
}
