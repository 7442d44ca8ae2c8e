package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"vosfs/fs"
)

// statsHeaderEvery is how many rows a terminal shows between two headers.
const statsHeaderEvery = 20

func newStatsCmd() *cobra.Command {
	var count int
	var interval time.Duration
	c := &cobra.Command{
		Use:   "stats [flags] MOUNTPOINT|POOLDIR",
		Short: "show a mounted pool's activity, refreshed every second",
		Long: `Shows what the daemon of a mounted pool does, one line per refresh (every
second by default), as rates over the last interval: operations and
errors, commits, log bytes written and syncs, records per log batch,
conflicts, the time writers waited for log space; and as levels: log fill,
checkpoint lag, data and metadata used, and whether the pool has stopped
after an I/O error. On a terminal the header comes back every 20 lines.
--count N stops after N lines (for scripts); otherwise it runs until
interrupted or the daemon goes. Sizes are binary (MiB, GiB).

For the totals since the mount, and a pool that is not mounted, see
'vosfs stat'.`,
		Args:              exactArgs("MOUNTPOINT or POOLDIR"),
		ValidArgsFunction: completeDirs,
		RunE: func(c *cobra.Command, args []string) error {
			if count < 0 {
				return usagef(commandName(c), "--count %d is negative", count)
			}
			if interval < 10*time.Millisecond {
				return usagef(commandName(c), "--interval %s is below 10ms", interval)
			}
			return runStats(c.OutOrStdout(), args[0], count, interval, isTerminal(os.Stdout))
		},
	}
	c.Flags().IntVar(&count, "count", 0, "stop after N refreshes (0: run until interrupted)")
	c.Flags().DurationVar(&interval, "interval", time.Second, "time between refreshes")
	return c
}

// statsColumns are the heads of the columns of vosfs stats.
var statsColumns = []string{"time", "ops/s", "err/s", "commit/s", "log/s", "sync/s", "rec/batch",
	"conflict/s", "throttle", "log-fill", "ckpt-lag", "data-used", "meta-used", "state"}

func runStats(out io.Writer, arg string, count int, interval time.Duration, tty bool) error {
	dir, _, err := resolveTarget(arg)
	if err != nil {
		return err
	}
	if livePID(dir) == 0 {
		return fmt.Errorf("pool %s is not mounted: 'vosfs stats' shows a daemon's activity ('vosfs stat' shows a pool that is not mounted)", dir)
	}
	prev, err := queryStats(dir)
	if err != nil {
		return fmt.Errorf("pool %s: the daemon does not answer: %w", dir, err)
	}
	prevAt := time.Now()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for row := 0; count == 0 || row < count; row++ {
		if row == 0 || (tty && row%statsHeaderEvery == 0) {
			fmt.Fprintln(out, statsLine(statsColumns))
		}
		<-tick.C
		cur, err := queryStats(dir)
		if err != nil {
			if livePID(dir) == 0 {
				return fmt.Errorf("pool %s: the daemon has gone (unmounted)", dir)
			}
			return fmt.Errorf("pool %s: the daemon does not answer: %w", dir, err)
		}
		now := time.Now()
		fmt.Fprintln(out, statsLine(statsRow(prev, cur, now.Sub(prevAt), now)))
		prev, prevAt = cur, now
	}
	return nil
}

// statsRow is one line of vosfs stats: the rates between two samples d
// apart, and the levels of the second.
func statsRow(a, b fs.Stats, d time.Duration, at time.Time) []string {
	secs := d.Seconds()
	if secs <= 0 {
		secs = 1
	}
	delta := func(x, y uint64) uint64 {
		if y < x {
			return 0 // counters of a new daemon
		}
		return y - x
	}
	rate := func(x, y uint64) string { return fmt.Sprintf("%.0f", float64(delta(x, y))/secs) }
	size := func(n uint64) string { return strings.ReplaceAll(humanize.IBytes(n), " ", "") }
	pa, pb := a.Pool, b.Pool
	perBatch := "-"
	if n := delta(pa.Log.Batches, pb.Log.Batches); n > 0 {
		perBatch = fmt.Sprintf("%.1f", float64(delta(pa.Log.Records, pb.Log.Records))/float64(n))
	}
	waited := time.Duration(delta(uint64(pa.Log.ThrottleWait), uint64(pb.Log.ThrottleWait)))
	u := usageOf(pb)
	state := "ok"
	if pb.Failure != nil {
		state = "FAILED"
	}
	return []string{
		at.Format("15:04:05"),
		rate(a.Ops, b.Ops),
		rate(a.Errors, b.Errors),
		rate(pa.Commits, pb.Commits),
		size(uint64(float64(delta(pa.Log.BytesWritten, pb.Log.BytesWritten))/secs)) + "/s",
		rate(pa.Log.Syncs, pb.Log.Syncs),
		perBatch,
		rate(a.Store.Conflicts, b.Store.Conflicts),
		fmtDuration(waited),
		fmt.Sprintf("%.1f%%", 100*u.LogFill),
		size(u.CheckpointLag),
		size(u.DataUsed),
		size(u.HeapUsed),
		state,
	}
}

// statsLine lays out the fields of a line in columns.
func statsLine(fields []string) string {
	widths := []int{8, 7, 6, 8, 11, 7, 9, 10, 9, 8, 9, 10, 10, 6}
	var sb strings.Builder
	for i, f := range fields {
		if i > 0 {
			sb.WriteByte(' ')
		}
		if i == 0 || i == len(fields)-1 {
			fmt.Fprintf(&sb, "%-*s", widths[i], f)
		} else {
			fmt.Fprintf(&sb, "%*s", widths[i], f)
		}
	}
	return strings.TrimRight(sb.String(), " ")
}
