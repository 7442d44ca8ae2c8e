package main

import (
	"fmt"
	"os"
	"time"

	"github.com/dustin/go-humanize"
)

var profileCommand = &command{
	name:    "profile",
	summary: "write a pprof profile of a mounted pool's daemon",
	usage: `usage: vosfs profile [--kind KIND] [--seconds N] [-o FILE] POOLDIR|MOUNTPOINT

Asks the daemon serving the pool for a Go pprof profile of itself and
writes it to FILE (default KIND.pprof), for 'go tool pprof'. KIND is cpu
(the default: where the daemon spends its time during the next N seconds),
mutex or block (where its goroutines waited on locks or blocked, during the
next N seconds), heap or goroutine (a snapshot after N seconds). Run the
workload while the profile is taken.
`,
	run: runProfile,
}

func runProfile(c *command, args []string) error {
	fl := newFlagSet(c)
	kind := fl.String("kind", "cpu", "profile `KIND`: cpu, mutex, block, heap or goroutine")
	secs := fl.Int("seconds", 10, "duration of the profile in seconds")
	out := fl.String("o", "", "output `FILE` (default KIND.pprof)")
	arg, err := parseOneArg(c, fl, args, "POOLDIR or MOUNTPOINT")
	if err != nil {
		return err
	}
	if *secs < 1 || *secs > maxProfileSeconds {
		return usagef(c.name, "--seconds %d is not 1..%d", *secs, maxProfileSeconds)
	}
	switch *kind {
	case "cpu", "mutex", "block", "heap", "goroutine":
	default:
		return usagef(c.name, "unknown --kind %q (cpu, mutex, block, heap, goroutine)", *kind)
	}
	if *out == "" {
		*out = *kind + ".pprof"
	}
	dir, _, err := resolveTarget(arg)
	if err != nil {
		return err
	}
	if livePID(dir) <= 0 {
		return fmt.Errorf("pool %s is not mounted: only a daemon can be profiled", dir)
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "vosfs: profiling %s (%s) for %d s\n", dir, *kind, *secs)
	n, err := queryProfile(dir, *kind, time.Duration(*secs)*time.Second, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(*out)
		return err
	}
	fmt.Fprintf(os.Stderr, "vosfs: wrote %s (%s)\n", *out, humanize.IBytes(uint64(n)))
	return nil
}
