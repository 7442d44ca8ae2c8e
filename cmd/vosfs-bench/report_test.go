package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, string(want), string(got), "%s differs (go test -update rewrites it)", path)
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		xs   []float64
		want float64
	}{
		{[]float64{7}, 7},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{5, 5, 1, 9, 100}, 5},
		{[]float64{-1, 1}, 0},
	} {
		got, ok := median(c.xs)
		assert.True(t, ok)
		assert.Equal(t, c.want, got, "median of %v", c.xs)
	}
	_, ok := median(nil)
	assert.False(t, ok)

	xs := []float64{3, 1, 2}
	median(xs)
	assert.Equal(t, []float64{3, 1, 2}, xs, "median leaves its argument alone")
}

func res(bw, iops, p99 float64) *fioResult {
	return &fioResult{BWBytes: bw, IOPS: iops, P50NS: p99 / 4, P99NS: p99, IOs: 1, Jobs: 1}
}

func TestSummarize(t *testing.T) {
	runs := []run{
		{Round: 1, Job: "randwrite", Target: "bare", Result: res(1, 300, 1000)},
		{Round: 2, Job: "randwrite", Target: "bare", Result: res(3, 100, 3000)},
		{Round: 3, Job: "randwrite", Target: "bare", Result: res(2, 200, 2000)},
		{Round: 1, Job: "randwrite", Target: "loopback", Error: "boom"},
		{Round: 2, Job: "randwrite", Target: "loopback", Result: res(10, 10, 0)},
		{Round: 1, Job: "seqwrite", Target: "bare", Result: res(5, 5, 5)},
	}
	s := summarize([]string{"randwrite"}, []string{"bare", "loopback", "vosfs-sync"}, runs)
	require.Len(t, s, 3)
	assert.Equal(t, summary{Job: "randwrite", Target: "bare", Runs: 3, OK: 3, BWBytes: 2, IOPS: 200, P50NS: 500, P99NS: 2000}, s[0])
	assert.Equal(t, summary{Job: "randwrite", Target: "loopback", Runs: 2, OK: 1, BWBytes: 10, IOPS: 10}, s[1])
	assert.Equal(t, summary{Job: "randwrite", Target: "vosfs-sync"}, s[2])
}

func TestFormat(t *testing.T) {
	assert.Equal(t, "245 MiB/s", formatRate(unitBandwidth, 245<<20))
	assert.Equal(t, "1.5 GiB/s", formatRate(unitBandwidth, 1.5*(1<<30)))
	assert.Equal(t, "3.4k IOPS", formatRate(unitIOPS, 3412))
	assert.Equal(t, "12.3k IOPS", formatRate(unitIOPS, 12345))
	assert.Equal(t, "245k IOPS", formatRate(unitIOPS, 245123))
	assert.Equal(t, "532", formatCount(532.4))
	assert.Equal(t, "7.5", formatCount(7.5))
	assert.Equal(t, "0.25", formatCount(0.25))
	assert.Equal(t, "1.2ms", formatLatency(1234567))
	assert.Equal(t, "850µs", formatLatency(850000))
	assert.Equal(t, "3.4µs", formatLatency(3376))
	assert.Equal(t, "2s", formatLatency(2e9))
}

// testReport is a run of every job, with vosfs-async failing to mount and
// one failed round.
func testReport() *report {
	r := &report{
		Started:    time.Date(2026, 11, 22, 21, 0, 0, 0, time.UTC),
		Finished:   time.Date(2026, 11, 22, 21, 42, 7, 0, time.UTC),
		Host:       "bench-host",
		Kernel:     "Linux 6.1.0",
		Fio:        "fio-3.33",
		Dir:        "/var/tmp/vosfs-bench-1",
		Filesystem: "ext4 on /dev/vda",
		Rounds:     3,
		DropCaches: true,
		Targets: []targetInfo{
			{Name: "vosfs-sync", Description: "vosfs, -o commit=sync"},
			{Name: "vosfs-async", Description: "vosfs, -o commit=async", Skipped: "mount failed: vosfs mount: exit status 1:\nno such option"},
			{Name: "loopback", Description: "loopback"},
			{Name: "bare", Description: "the directory"},
		},
		Notes: []string{"round 2 randread on loopback failed: exit status 1: fio: io_u error"},
	}
	scale := map[string]float64{"vosfs-sync": 0.5, "loopback": 0.8, "bare": 1}
	speedup := []float64{0.9, 1.1, 1.3, 0.95, 2.1, 1.8, 1.02, 0.7, 1.4}
	for i, j := range allJobs {
		r.Jobs = append(r.Jobs, j.Name)
		for _, target := range []string{"vosfs-sync", "loopback", "bare"} {
			for round := 1; round <= 3; round++ {
				base := float64(i+1) * 1000 * scale[target] * (1 + 0.1*float64(round-2))
				if target == "vosfs-sync" {
					base *= speedup[i]
				}
				rn := run{Round: round, Job: j.Name, Target: target,
					Result: res(base*(1<<20)/1000*100, base, 1e9/base*50)}
				if j.Name == "filestat" {
					rn.Result.P50NS, rn.Result.P99NS = 0, 0
				}
				switch target {
				case "vosfs-sync":
					rn.Daemon = &daemonUsage{CPUSeconds: 20e-6 * float64(i+round), LogRecords: 1, LogSyncs: uint64(round % 2)}
				case "loopback":
					rn.Daemon = &daemonUsage{CPUSeconds: 1e-6 * float64(round)}
				}
				if j.Name == "randread" && target == "loopback" && round == 2 {
					rn.Result, rn.Error, rn.Daemon = nil, "fio: io_u error", nil
				}
				r.Runs = append(r.Runs, rn)
			}
		}
	}
	var names []string
	for _, t := range r.Targets {
		names = append(names, t.Name)
	}
	r.Summary = summarize(r.Jobs, names, r.Runs)
	return r
}

func TestRatio(t *testing.T) {
	r := testReport()
	v, ok := r.ratio("seqwrite", ratio{"vosfs-sync", "loopback"})
	assert.True(t, ok)
	assert.InDelta(t, 0.625*0.9, v, 1e-9)
	v, ok = r.ratio("randwrite", ratio{"vosfs-sync", "bare"})
	assert.True(t, ok)
	assert.InDelta(t, 0.5*1.3, v, 1e-9)
	_, ok = r.ratio("seqwrite", ratio{"vosfs-async", "loopback"})
	assert.False(t, ok, "no ratio for a skipped target")
	// Only the ratios whose two targets are in the report: it has no
	// loopback-nopass.
	assert.Equal(t, []ratio{{"vosfs-sync", "loopback"}, {"vosfs-async", "loopback"}, {"vosfs-sync", "bare"}, {"vosfs-async", "bare"}}, r.ratios())
}

func TestMarkdownTable(t *testing.T) {
	var b bytes.Buffer
	testReport().writeTable(&b)
	golden(t, "table.md", b.Bytes())
}

func TestMarkdown(t *testing.T) {
	var b bytes.Buffer
	testReport().writeMarkdown(&b)
	golden(t, "results.md", b.Bytes())
}

// Without the vosfs targets, there are no ratio columns.
func TestMarkdownTableBaselinesOnly(t *testing.T) {
	r := testReport()
	r.Targets = r.Targets[2:]
	assert.Empty(t, r.ratios())
	var b bytes.Buffer
	r.writeTable(&b)
	assert.Contains(t, b.String(), "| job | loopback | bare |\n|---|--:|--:|\n")
}

func TestWriteFiles(t *testing.T) {
	dir := t.TempDir()
	r := testReport()
	r.Runs[0].Fio = json.RawMessage(`{"fio version":"fio-3.33"}`)
	require.NoError(t, r.writeFiles(dir))
	for _, name := range []string{"results.json", "results.md", "results.svg"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		require.NoError(t, err)
		assert.NotZero(t, fi.Size())
	}
	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	require.NoError(t, err)
	var back report
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Len(t, back.Runs, len(r.Runs))
	assert.Equal(t, r.Summary, back.Summary)
	assert.JSONEq(t, `{"fio version":"fio-3.33"}`, string(back.Runs[0].Fio))
	assert.False(t, math.IsNaN(back.Summary[0].IOPS))
}

func TestParseProcStatCPU(t *testing.T) {
	// utime 250 and stime 75 ticks; a command name with a space and a
	// parenthesis of its own.
	stat := "4242 (vosfs (x) d) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 12 0 100 1000 200 18446744073709551615\n"
	d, err := parseProcStatCPU([]byte(stat))
	require.NoError(t, err)
	assert.Equal(t, 3250*time.Millisecond, d)
	_, err = parseProcStatCPU([]byte("4242 vosfs S 1"))
	assert.ErrorContains(t, err, "without a command name")
	_, err = parseProcStatCPU([]byte("4242 (vosfs) S 1 2 3"))
	assert.ErrorContains(t, err, "/proc stat of 6 fields")
	// This process has used some time.
	self, err := processCPU(os.Getpid())
	require.NoError(t, err)
	assert.GreaterOrEqual(t, self, time.Duration(0))
}

func TestParseLogCounters(t *testing.T) {
	out := []byte(`{"pool": "/p", "stats": {"Ops": 3, "Pool": {"Commits": 9, "Log": {"Records": 12, "Syncs": 5, "Batches": 5}}}}`)
	recs, syncs, err := parseLogCounters(out)
	require.NoError(t, err)
	assert.Equal(t, uint64(12), recs)
	assert.Equal(t, uint64(5), syncs)
	_, _, err = parseLogCounters([]byte("vosfs: not mounted"))
	assert.ErrorContains(t, err, "vosfs stat --json")
}

func TestSummarizeDaemonPerOp(t *testing.T) {
	runs := []run{
		{Round: 1, Job: "randwrite", Target: "vosfs-sync", Result: &fioResult{IOs: 1000}, Daemon: &daemonUsage{CPUSeconds: 0.05, LogRecords: 1000, LogSyncs: 900}},
		{Round: 2, Job: "randwrite", Target: "vosfs-sync", Result: &fioResult{IOs: 2000}, Daemon: &daemonUsage{CPUSeconds: 0.06, LogRecords: 2000, LogSyncs: 1000}},
		{Round: 3, Job: "randwrite", Target: "vosfs-sync", Result: &fioResult{IOs: 1000}},
	}
	s := summarize([]string{"randwrite"}, []string{"vosfs-sync"}, runs)
	require.Len(t, s, 1)
	assert.Equal(t, 2, s[0].DaemonMeasured)
	assert.InDelta(t, 40e3, s[0].CPUPerOpNS, 1e-6) // median of 50 µs and 30 µs
	assert.InDelta(t, 1.0, s[0].RecordsPerOp, 1e-9)
	assert.InDelta(t, 0.7, s[0].SyncsPerOp, 1e-9) // median of 0.9 and 0.5
}
