package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"vosfs/alloc"
	"vosfs/blob"
	"vosfs/fs"
	"vosfs/pool"
)

func newStatCmd() *cobra.Command {
	var jsonOut bool
	c := &cobra.Command{
		Use:   "stat [flags] POOLDIR|MOUNTPOINT",
		Short: "show a pool's space and counters",
		Long: `Shows the space used and free in the data and metadata blobs, how full the
log is, and the counters of the pool, the store and the filesystem. A
mounted pool is asked through its daemon's control socket (its counters
run since the mount); a pool that is not mounted is opened and closed.`,
		Args:              exactArgs("POOLDIR or MOUNTPOINT"),
		ValidArgsFunction: completeDirs,
		RunE: func(c *cobra.Command, args []string) error {
			return runStat(c.OutOrStdout(), jsonOut, args[0])
		},
	}
	c.Flags().BoolVar(&jsonOut, "json", false, "print the figures as JSON")
	return c
}

// statReport is what stat prints, and with --json exactly this.
type statReport struct {
	Pool       string   `json:"pool"`
	Mounted    bool     `json:"mounted"`
	Mountpoint string   `json:"mountpoint,omitempty"`
	PID        int      `json:"pid,omitempty"`
	Usage      usage    `json:"usage"`
	Stats      fs.Stats `json:"stats"`
}

// usage is the space figures derived from the counters, in bytes.
type usage struct {
	DataSize      uint64  `json:"data_size"`
	DataUsed      uint64  `json:"data_used"`
	DataFree      uint64  `json:"data_free"`
	HeapSize      uint64  `json:"heap_size"`
	HeapUsed      uint64  `json:"heap_used"`
	HeapFree      uint64  `json:"heap_free"`
	HeapKept      uint64  `json:"heap_deletion_reserve"` // free, set aside for deletes
	LogSize       uint64  `json:"log_size"`
	LogFill       float64 `json:"log_fill"` // fraction of the ring in use
	CheckpointLag uint64  `json:"checkpoint_lag"`
}

func usageOf(s pool.Stats) usage {
	d := s.Data
	h := s.Heap
	sub := func(a uint64, bs ...uint64) uint64 {
		for _, b := range bs {
			if b > a {
				return 0
			}
			a -= b
		}
		return a
	}
	return usage{
		DataSize:      d.Blocks * alloc.BlockSize,
		DataUsed:      sub(d.Blocks, d.Free, d.Aging, d.Reserved) * alloc.BlockSize,
		DataFree:      (d.Free + d.Aging) * alloc.BlockSize,
		HeapSize:      h.Total,
		HeapUsed:      sub(h.Total, h.Free, h.Spare, h.Reserved),
		HeapFree:      h.Free,
		HeapKept:      h.Spare,
		LogSize:       s.Log.RingSize,
		LogFill:       s.Log.Fill(),
		CheckpointLag: sub(uint64(s.Log.Next), uint64(s.Log.Checkpoint)),
	}
}

func runStat(out io.Writer, jsonOut bool, arg string) error {
	dir, mp, err := resolveTarget(arg)
	if err != nil {
		return err
	}
	rep := statReport{Pool: dir, Mountpoint: mp}
	rep.Stats, rep.Mounted, err = poolStats(dir)
	if err != nil {
		return err
	}
	if rep.Mounted {
		rep.PID = livePID(dir)
	}
	rep.Usage = usageOf(rep.Stats.Pool)
	if jsonOut {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printStats(out, rep)
	return nil
}

// poolStats gets the counters of the pool in dir: from its daemon if it is
// mounted, otherwise by opening it.
func poolStats(dir string) (st fs.Stats, mounted bool, err error) {
	if err := waitClosing(dir, closeWait); err != nil {
		return st, false, err
	}
	pid := livePID(dir)
	if _, serr := os.Stat(filepath.Join(dir, sockName)); serr == nil || pid > 0 {
		st, err = queryStats(dir)
		if err == nil {
			return st, true, nil
		}
		if pid > 0 {
			return st, false, fmt.Errorf("pool %s is mounted (pid %d) but its daemon does not answer: %w", dir, pid, err)
		}
	}
	p, err := pool.Open(blob.NewOSFS(true), dir, pool.Options{})
	if err != nil {
		if errors.Is(err, blob.ErrLocked) {
			return st, false, fmt.Errorf("pool %s is in use by another process that has no control socket to ask", dir)
		}
		return st, false, err
	}
	if rec := p.Recovery(); !rec.Clean {
		fmt.Fprintf(os.Stderr, "vosfs: %s\n", describeRecovery(dir, rec))
	}
	st.Pool = p.Stats()
	if err := p.Close(); err != nil {
		return st, false, err
	}
	return st, false, nil
}

// printStats prints a report for people.
func printStats(w io.Writer, r statReport) {
	s := r.Stats
	p := s.Pool
	u := r.Usage
	b := humanize.IBytes
	n := func(v uint64) string { return humanize.Comma(int64(v)) }
	dur := fmtDuration
	where := "not mounted"
	if r.Mounted {
		where = "mounted"
		if r.Mountpoint != "" {
			where += " on " + r.Mountpoint
		}
		if r.PID > 0 {
			where += ", pid " + strconv.Itoa(r.PID)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(label, format string, args ...any) {
		fmt.Fprintf(tw, "%s\t%s\n", label, fmt.Sprintf(format, args...))
	}
	row("pool", "%s (%s)", r.Pool, where)
	if f := p.Failure; f != nil {
		row("state", "STOPPED at %s (fail-stop, every operation gets EIO): %s", f.Time.Format(time.RFC3339), f)
	} else {
		row("state", "running")
	}
	row("blob errors", "%s failed writes or syncs, %s failed reads", n(p.WriteErrors), n(p.ReadErrors))
	row("data", "%s: %s used, %s free (%s aging), %s reserved",
		b(u.DataSize), b(u.DataUsed), b(u.DataFree), b(p.Data.Aging*alloc.BlockSize), b(p.Data.Reserved*alloc.BlockSize))
	row("metadata", "%s heap: %s used, %s free (and %s kept for deletes), %s reserved, %s dirty",
		b(u.HeapSize), b(u.HeapUsed), b(u.HeapFree), b(u.HeapKept), b(p.Heap.Reserved), b(p.DirtyBytes))
	row("log", "%s: %.1f%% full, checkpoint lag %s", b(u.LogSize), 100*u.LogFill, b(u.CheckpointLag))
	row("log writes", "%s records in %s batches, %s written, %s syncs",
		n(p.Log.Records), n(p.Log.Batches), b(p.Log.BytesWritten), n(p.Log.Syncs))
	row("throttle", "%s events, %s waited", n(p.Log.ThrottleEvents), dur(p.Log.ThrottleWait))
	row("commits", "%s (%s aborted)", n(p.Commits), n(p.Aborts))
	row("checkpoints", "%s, %s written, last took %s, %s in all",
		n(p.Checkpoint.Checkpoints), b(p.Checkpoint.BytesWritten), dur(p.Checkpoint.LastDuration), dur(p.Checkpoint.TotalTime))
	row("store", "%s commits, %s conflicts, %s replays, %s aborts, %s retries, %s predicate failures",
		n(s.Store.Commits), n(s.Store.Conflicts), n(s.Store.Replays), n(s.Store.Aborts), n(s.Store.Retries), n(s.Store.PredicateFailures))
	row("aggregation", "%s runs, %s chains folded on read, %s versions dropped, %s moved from the heap to the data blob", n(s.Store.Aggregations), n(s.Store.ChainsFolded), n(s.Store.VersionsDropped), humanize.IBytes(s.Store.MigratedBytes))
	row("fs", "%s operations, %s errors", n(s.Ops), n(s.Errors))
	row("checksums", "%s reads refused: stored bytes failed their checksum", n(s.Store.ChecksumErrors))
	tw.Flush()
}

// resolveTarget finds the pool directory named by arg, a vosfs mount
// point, a mount's source (its fsname) or a pool directory, and where it
// is mounted ("" if it is not).
func resolveTarget(arg string) (dir, mountpoint string, err error) {
	r, ok, err := findMount(arg)
	if err != nil {
		return "", "", err
	}
	if ok {
		return r.Pool, r.Mountpoint, nil
	}
	abs, err := absDir(arg)
	if err != nil {
		return "", "", err
	}
	if poolExists(abs) {
		return abs, "", nil
	}
	mounts, err := readMountinfo()
	if err != nil {
		return "", "", err
	}
	if m, ok := mountAt(mounts, abs); ok {
		return "", "", fmt.Errorf("%s is a %s mount, not a vosfs one", abs, m.fstype)
	}
	return "", "", fmt.Errorf("%s is neither a pool directory nor a vosfs mount point or source", abs)
}

// vosfsType is the filesystem type of a vosfs mount.
const vosfsType = "fuse.vosfs"

// mountEntry is one mount of /proc/self/mountinfo.
type mountEntry struct {
	mountpoint string
	fstype     string
	source     string
}

func readMountinfo() ([]mountEntry, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	return parseMountinfo(string(b)), nil
}

// parseMountinfo parses the lines "ID PARENT MAJ:MIN ROOT MOUNTPOINT
// OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS".
func parseMountinfo(text string) []mountEntry {
	var out []mountEntry
	for _, line := range strings.Split(text, "\n") {
		f := strings.Split(line, " ")
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 5 || sep < 0 || sep+2 >= len(f) {
			continue
		}
		out = append(out, mountEntry{
			mountpoint: unescapeMountinfo(f[4]),
			fstype:     unescapeMountinfo(f[sep+1]),
			source:     unescapeMountinfo(f[sep+2]),
		})
	}
	return out
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of
// mountinfo fields.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				sb.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		sb.WriteByte(s[i])
	}
	return sb.String()
}

// mountAt returns the topmost mount at mountpoint.
func mountAt(mounts []mountEntry, mountpoint string) (mountEntry, bool) {
	for i := len(mounts) - 1; i >= 0; i-- {
		if mounts[i].mountpoint == mountpoint {
			return mounts[i], true
		}
	}
	return mountEntry{}, false
}

// mountpointOf returns where the pool in dir is mounted, or "".
func mountpointOf(dir string) string {
	mounts, err := readMountinfo()
	if err != nil {
		return ""
	}
	if r, ok := recordOfPool(mounts, dir); ok {
		return r.Mountpoint
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		if m := mounts[i]; m.fstype == vosfsType && m.source == dir {
			return m.mountpoint
		}
	}
	return ""
}
