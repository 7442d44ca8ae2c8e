package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"
)

func newProfileCmd() *cobra.Command {
	var kind, out string
	var secs int
	c := &cobra.Command{
		Use:   "profile [flags] POOLDIR|MOUNTPOINT",
		Short: "write a pprof profile of a mounted pool's daemon",
		Long: `Asks the daemon serving the pool for a Go pprof profile of itself and
writes it to FILE (default KIND.pprof), for 'go tool pprof'. KIND is cpu
(where the daemon spends its time during the next N seconds), mutex or
block (where its goroutines waited on locks or blocked, during the next N
seconds), heap or goroutine (a snapshot after N seconds). Run the workload
while the profile is taken.`,
		Args:              exactArgs("POOLDIR or MOUNTPOINT"),
		ValidArgsFunction: completeDirs,
		RunE: func(c *cobra.Command, args []string) error {
			return runProfile(commandName(c), kind, secs, out, args[0])
		},
	}
	fl := c.Flags()
	fl.StringVar(&kind, "kind", "cpu", "profile `KIND`: cpu, mutex, block, heap or goroutine")
	fl.IntVar(&secs, "seconds", 10, "duration of the profile in seconds (1.."+strconv.Itoa(maxProfileSeconds)+")")
	fl.StringVarP(&out, "output", "o", "", "output `FILE` (default KIND.pprof)")
	c.RegisterFlagCompletionFunc("kind", cobra.FixedCompletions([]cobra.Completion{"cpu", "mutex", "block", "heap", "goroutine"}, cobra.ShellCompDirectiveNoFileComp))
	return c
}

func runProfile(name, kind string, secs int, out, arg string) error {
	if secs < 1 || secs > maxProfileSeconds {
		return usagef(name, "--seconds %d is not 1..%d", secs, maxProfileSeconds)
	}
	switch kind {
	case "cpu", "mutex", "block", "heap", "goroutine":
	default:
		return usagef(name, "unknown --kind %q (cpu, mutex, block, heap, goroutine)", kind)
	}
	if out == "" {
		out = kind + ".pprof"
	}
	dir, _, err := resolveTarget(arg)
	if err != nil {
		return err
	}
	if livePID(dir) <= 0 {
		return fmt.Errorf("pool %s is not mounted: only a daemon can be profiled", dir)
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "vosfs: profiling %s (%s) for %d s\n", dir, kind, secs)
	n, err := queryProfile(dir, kind, time.Duration(secs)*time.Second, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(out)
		return err
	}
	fmt.Fprintf(os.Stderr, "vosfs: wrote %s (%s)\n", out, humanize.IBytes(uint64(n)))
	return nil
}
