package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// unit is what a job is measured in.
type unit int

const (
	unitBandwidth unit = iota // bytes per second
	unitIOPS                  // operations per second
)

func (u unit) String() string {
	if u == unitBandwidth {
		return "bandwidth"
	}
	return "IOPS"
}

// job is one fio job file of the benchmark.
type job struct {
	Name string // the file is Name + ".fio" in the job directory
	Unit unit
	// Needs names what must already be in the target directory (made by
	// the job whose Makes it is); the bench runs that job first, unmeasured,
	// when the selected jobs did not leave it there.
	Needs string
	Makes string
	// Consumes: the job removes what it Needs.
	Consumes bool
	// Clean is a glob of leftovers removed, unmeasured, before the job.
	Clean string
}

// allJobs are the jobs in the order they run in each round: a job reading
// files runs after the job writing them.
var allJobs = []job{
	{Name: "seqwrite", Unit: unitBandwidth, Makes: "seq.dat"},
	{Name: "seqread", Unit: unitBandwidth, Needs: "seq.dat"},
	{Name: "randwrite", Unit: unitIOPS, Makes: "rand.dat"},
	{Name: "randread", Unit: unitIOPS, Needs: "rand.dat"},
	{Name: "randwrite-fsync-1", Unit: unitIOPS},
	{Name: "randwrite-fsync-4", Unit: unitIOPS},
	{Name: "filecreate", Unit: unitIOPS, Makes: "fileops.*", Clean: "fileops.*"},
	{Name: "filestat", Unit: unitIOPS, Needs: "fileops.*"},
	{Name: "filedelete", Unit: unitIOPS, Needs: "fileops.*", Consumes: true},
}

func lookupJob(name string) (job, bool) {
	for _, j := range allJobs {
		if j.Name == name {
			return j, true
		}
	}
	return job{}, false
}

// maker returns the job that makes what j needs.
func maker(j job) (job, bool) {
	for _, m := range allJobs {
		if j.Needs != "" && m.Makes == j.Needs {
			return m, true
		}
	}
	return job{}, false
}

// fioResult is what the bench keeps of one fio run: rates summed over the
// jobs fio reports (one with group_reporting, numjobs without) and both
// directions, and completion latency percentiles of the slowest of them.
type fioResult struct {
	BWBytes float64 `json:"bw_bytes"` // bytes per second
	IOPS    float64 `json:"iops"`
	IOBytes int64   `json:"io_bytes"`
	IOs     int64   `json:"ios"`
	// Completion latency percentiles in nanoseconds; 0 when fio reports none.
	P50NS float64 `json:"clat_p50_ns,omitempty"`
	P99NS float64 `json:"clat_p99_ns,omitempty"`
	// The p99 latency of fsync calls, for the jobs that make them.
	SyncP99NS float64 `json:"sync_p99_ns,omitempty"`
	Jobs      int     `json:"jobs"`
}

// value is the measure a job is judged by: bandwidth or IOPS.
func (r *fioResult) value(u unit) float64 {
	if u == unitBandwidth {
		return r.BWBytes
	}
	return r.IOPS
}

// hasLatency reports whether fio gave completion latency percentiles.
func (r *fioResult) hasLatency() bool { return r.P99NS > 0 }

// fioOutput is the part of fio's JSON output the bench reads.
type fioOutput struct {
	Version string `json:"fio version"`
	Jobs    []struct {
		Name  string       `json:"jobname"`
		Error int          `json:"error"`
		Read  fioDirection `json:"read"`
		Write fioDirection `json:"write"`
		Sync  struct {
			Lat fioLatency `json:"lat_ns"`
		} `json:"sync"`
	} `json:"jobs"`
}

type fioDirection struct {
	IOBytes  int64      `json:"io_bytes"`
	BWBytes  float64    `json:"bw_bytes"`
	IOPS     float64    `json:"iops"`
	TotalIOs int64      `json:"total_ios"`
	Clat     fioLatency `json:"clat_ns"`
}

type fioLatency struct {
	N          int64              `json:"N"`
	Percentile map[string]float64 `json:"percentile"`
}

// jsonStart finds fio's JSON document in its standard output, which may
// begin with notes fio prints before it.
func jsonStart(out []byte) ([]byte, error) {
	if i := bytes.IndexByte(out, '{'); i == 0 {
		return out, nil
	}
	if i := bytes.Index(out, []byte("\n{")); i >= 0 {
		return out[i+1:], nil
	}
	return nil, errors.New("no JSON in fio's output")
}

// parseFio reads fio's --output-format=json output.
func parseFio(out []byte) (*fioResult, string, error) {
	doc, err := jsonStart(out)
	if err != nil {
		return nil, "", err
	}
	var o fioOutput
	if err := json.Unmarshal(doc, &o); err != nil {
		return nil, "", fmt.Errorf("fio's JSON: %w", err)
	}
	if len(o.Jobs) == 0 {
		return nil, o.Version, errors.New("fio reported no jobs")
	}
	r := &fioResult{Jobs: len(o.Jobs)}
	for _, j := range o.Jobs {
		if j.Error != 0 {
			return nil, o.Version, fmt.Errorf("fio job %s failed: %s", j.Name, syscall.Errno(j.Error))
		}
		for _, d := range []fioDirection{j.Read, j.Write} {
			if d.TotalIOs == 0 && d.IOBytes == 0 {
				continue
			}
			r.BWBytes += d.BWBytes
			r.IOPS += d.IOPS
			r.IOBytes += d.IOBytes
			r.IOs += d.TotalIOs
			r.P50NS = math.Max(r.P50NS, d.Clat.Percentile["50.000000"])
			r.P99NS = math.Max(r.P99NS, d.Clat.Percentile["99.000000"])
		}
		r.SyncP99NS = math.Max(r.SyncP99NS, j.Sync.Lat.Percentile["99.000000"])
	}
	if r.IOs == 0 {
		return nil, o.Version, errors.New("fio did no I/O")
	}
	return r, o.Version, nil
}

// fioRunner runs fio job files.
type fioRunner struct {
	path    string // the fio binary
	jobDir  string // where the .fio files are
	timeout time.Duration
}

// run runs one job with dir as its directory and returns the parsed
// result and fio's JSON output, compacted. It stops fio with SIGINT when
// ctx is done or the run takes longer than the timeout.
func (f *fioRunner) run(ctx context.Context, j job, dir string) (*fioResult, json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	jobFile := filepath.Join(f.jobDir, j.Name+".fio")
	cmd := exec.CommandContext(ctx, f.path, "--output-format=json", "--directory="+dir, jobFile)
	// fio gets its own process group: a terminal's ^C reaches the bench,
	// which stops fio itself, then unmounts.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 20 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, nil, fmt.Errorf("fio stopped after the %v timeout", f.timeout)
		}
		return nil, nil, errors.New("interrupted")
	}
	res, _, parseErr := parseFio(stdout.Bytes())
	if runErr != nil || parseErr != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" && parseErr != nil {
			msg = parseErr.Error()
		}
		if runErr == nil {
			runErr = parseErr
		}
		return nil, nil, fmt.Errorf("%v: %s", runErr, lastLines(msg, 5))
	}
	var raw bytes.Buffer
	doc, _ := jsonStart(stdout.Bytes())
	if err := json.Compact(&raw, doc); err != nil {
		return nil, nil, err
	}
	return res, raw.Bytes(), nil
}

// version returns what fio --version prints.
func (f *fioRunner) version() (string, error) {
	out, err := exec.Command(f.path, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", f.path, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// lastLines returns the last n lines of s, joined with " | ".
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
