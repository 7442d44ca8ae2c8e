// Command vosfs-crash is the out-of-process crash test of vosfs: it mounts
// a pool, runs a multi-threaded workload in the mount, kills the daemon
// with SIGKILL at a random moment, recovers the pool with vosfs fsck,
// remounts it and checks the state found against a model replayed from the
// log of the operations, cycle after cycle on the same filesystem.
//
//	vosfs-crash [--cycles N] [--seed S] [--commit sync|async] [--threads T]
//	            [--powercut | --shutdown [--shutdown-flag F]] [--writeback-cache]
//	            [--vosfs PATH] [--dir DIR] [--duration-per-cycle 2s]
//
// With --powercut the daemon runs over blob.PowerCutFS (mount option
// powercut=SEED), so the kill also loses or tears the pool's unsynced
// writes as a power cut would. With --shutdown a cycle ends not with the
// kill but with the filesystem shutdown ioctl (XFS_IOC_GOINGDOWN) with
// flag F (0: sync first, 1: flush the log, 2: stop at once; default drawn
// per cycle): later operations must get EIO, the mount is unmounted (the
// daemon exits), and the state found must hold every operation that
// returned with flags 0 and 1, and with flag 2 what the commit mode made
// durable. With --writeback-cache the mount lets the
// kernel cache writes; the workload's writes open, write and close the
// file, and the close writes the pages back, so the guarantees checked are
// the same. It must run as root with /dev/fuse.
//
// After the last cycle it waits up to a minute for aggregation to bring the
// pool's data blob and heap within bounds of the files' bytes (a pool
// filling with versions nobody can see is a violation before it is full),
// unmounts and runs a final fsck.
//
// It ends with the line "N cycles, M violations" and exits 1 if M > 0.
// Each violation names the cycle, the seed and what differed; the same
// --seed repeats the same decisions (operations, kill times, power-cut
// seeds), though thread interleavings vary.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

func main() {
	cfg := config{Out: os.Stdout}
	flag.IntVar(&cfg.Cycles, "cycles", 10, "crash cycles")
	flag.Int64Var(&cfg.Seed, "seed", 0, "seed of every decision (default: from the clock)")
	flag.StringVar(&cfg.Commit, "commit", "sync", "commit mode of the mount: sync or async")
	flag.IntVar(&cfg.Threads, "threads", 4, "workload threads")
	flag.BoolVar(&cfg.PowerCut, "powercut", false, "mount in power-cut test mode (-o powercut=SEED)")
	flag.BoolVar(&cfg.Writeback, "writeback-cache", false, "mount with the kernel writeback cache (-o writeback_cache)")
	flag.BoolVar(&cfg.Shutdown, "shutdown", false, "end each cycle with the shutdown ioctl, not a kill, then unmount")
	flag.IntVar(&cfg.ShutdownFlag, "shutdown-flag", -1, "the shutdown's flag: 0 sync, 1 flush the log, 2 stop at once (default: drawn per cycle)")
	flag.StringVar(&cfg.Vosfs, "vosfs", "", "the vosfs executable (default: build vosfs/cmd/vosfs)")
	flag.StringVar(&cfg.Dir, "dir", "", "directory for the pool, the mount point and the logs (default: a new one in /var/tmp)")
	flag.DurationVar(&cfg.Duration, "duration-per-cycle", 2*time.Second, "mean time the workload runs before the kill")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "vosfs-crash: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	if cfg.Commit != "sync" && cfg.Commit != "async" {
		fmt.Fprintln(os.Stderr, "vosfs-crash: --commit is sync or async")
		os.Exit(2)
	}
	if cfg.ShutdownFlag < -1 || cfg.ShutdownFlag > 2 {
		fmt.Fprintln(os.Stderr, "vosfs-crash: --shutdown-flag is 0, 1 or 2")
		os.Exit(2)
	}
	if cfg.Shutdown && cfg.PowerCut {
		fmt.Fprintln(os.Stderr, "vosfs-crash: --shutdown and --powercut are two ways to crash; give one")
		os.Exit(2)
	}
	if cfg.Cycles < 1 || cfg.Threads < 1 || cfg.Threads > 64 || cfg.Duration <= 0 {
		fmt.Fprintln(os.Stderr, "vosfs-crash: --cycles, --threads (up to 64) and --duration-per-cycle must be positive")
		os.Exit(2)
	}
	if cfg.Seed == 0 {
		cfg.Seed = time.Now().UnixNano()
	}
	os.Exit(realMain(cfg))
}

func realMain(cfg config) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "vosfs-crash: must run as root (it mounts, kills and unmounts)")
		return 2
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		fmt.Fprintln(os.Stderr, "vosfs-crash: no /dev/fuse")
		return 2
	}
	temp := cfg.Dir == ""
	if temp {
		d, err := os.MkdirTemp("/var/tmp", "vosfs-crash-")
		if err != nil {
			fmt.Fprintf(os.Stderr, "vosfs-crash: %v\n", err)
			return 1
		}
		cfg.Dir = d
	}
	abs, err := filepath.Abs(cfg.Dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vosfs-crash: %v\n", err)
		return 1
	}
	cfg.Dir = abs
	if cfg.Vosfs == "" {
		if cfg.Vosfs, err = buildVosfs(cfg.Dir); err != nil {
			fmt.Fprintf(os.Stderr, "vosfs-crash: %v (give --vosfs PATH)\n", err)
			return 1
		}
	}
	pc := ""
	if cfg.PowerCut {
		pc = ", power cut"
	}
	if cfg.Writeback {
		pc += ", writeback cache"
	}
	if cfg.Shutdown {
		pc += ", shutdown ioctl"
		if cfg.ShutdownFlag >= 0 {
			pc += fmt.Sprintf(" flag %d", cfg.ShutdownFlag)
		}
	}
	fmt.Printf("vosfs-crash: seed %d, commit=%s%s, %d threads, %d cycles of ~%v, in %s\n",
		cfg.Seed, cfg.Commit, pc, cfg.Threads, cfg.Cycles, cfg.Duration, cfg.Dir)
	cycles, violations, err := run(cfg)
	if err != nil {
		fmt.Printf("vosfs-crash: stopped: %v\n", err)
	}
	fmt.Printf("%d cycles, %d violations\n", cycles, violations)
	switch {
	case err != nil || violations > 0:
		fmt.Printf("logs and pool kept in %s; rerun with --seed %d\n", cfg.Dir, cfg.Seed)
		return 1
	case temp:
		os.RemoveAll(cfg.Dir)
	}
	return 0
}
