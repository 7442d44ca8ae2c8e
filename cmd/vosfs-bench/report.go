package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
)

// run is one fio run of one job on one target.
type run struct {
	Round   int             `json:"round"`
	Job     string          `json:"job"`
	Target  string          `json:"target"`
	Start   time.Time       `json:"start"`
	Seconds float64         `json:"seconds"`
	Error   string          `json:"error,omitempty"`
	Result  *fioResult      `json:"result,omitempty"`
	Daemon  *daemonUsage    `json:"daemon,omitempty"` // what the target's daemon did meanwhile
	Fio     json.RawMessage `json:"fio,omitempty"`    // fio's whole JSON output
}

// targetInfo is a target as the report shows it.
type targetInfo struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Skipped says why the target has no (or not all) results: its mount
	// failed, or it died during the run.
	Skipped string `json:"skipped,omitempty"`
}

// summary is the median of the rounds of one job on one target.
type summary struct {
	Job     string  `json:"job"`
	Target  string  `json:"target"`
	Runs    int     `json:"runs"` // rounds attempted
	OK      int     `json:"ok"`   // rounds that gave a result
	BWBytes float64 `json:"bw_bytes"`
	IOPS    float64 `json:"iops"`
	P50NS   float64 `json:"clat_p50_ns,omitempty"`
	P99NS   float64 `json:"clat_p99_ns,omitempty"`
	// Per I/O fio counted, medians over the rounds with a daemon reading:
	// the daemon's CPU time, and (vosfs) log records and log syncs.
	CPUPerOpNS     float64 `json:"daemon_cpu_per_op_ns,omitempty"`
	RecordsPerOp   float64 `json:"log_records_per_op,omitempty"`
	SyncsPerOp     float64 `json:"log_syncs_per_op,omitempty"`
	DaemonMeasured int     `json:"daemon_measured,omitempty"` // rounds with a reading
}

// report is everything results.json holds; results.md and results.svg
// are drawn from it.
type report struct {
	Started     time.Time    `json:"started"`
	Finished    time.Time    `json:"finished"`
	Interrupted bool         `json:"interrupted,omitempty"`
	Host        string       `json:"host"`
	Kernel      string       `json:"kernel"`
	Fio         string       `json:"fio"`
	Dir         string       `json:"dir"`
	Filesystem  string       `json:"filesystem"`
	Rounds      int          `json:"rounds"`
	DropCaches  bool         `json:"drop_caches"`
	Jobs        []string     `json:"jobs"`
	Targets     []targetInfo `json:"targets"`
	Notes       []string     `json:"notes,omitempty"`
	Summary     []summary    `json:"summary"`
	Runs        []run        `json:"runs"`
}

// median returns the median of xs, the mean of the middle two for an even
// count; ok is false for none.
func median(xs []float64) (m float64, ok bool) {
	if len(xs) == 0 {
		return 0, false
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2], true
	}
	return (s[n/2-1] + s[n/2]) / 2, true
}

// summarize takes the median of each measure over the rounds of each job
// on each target. Latency medians are over the runs that report latency.
func summarize(jobs, targets []string, runs []run) []summary {
	var out []summary
	for _, j := range jobs {
		for _, t := range targets {
			s := summary{Job: j, Target: t}
			var bw, iops, p50, p99, cpu, recs, syncs []float64
			for _, r := range runs {
				if r.Job != j || r.Target != t {
					continue
				}
				s.Runs++
				if r.Result == nil {
					continue
				}
				s.OK++
				if r.Daemon != nil && r.Result.IOs > 0 {
					n := float64(r.Result.IOs)
					cpu = append(cpu, r.Daemon.CPUSeconds*1e9/n)
					recs = append(recs, float64(r.Daemon.LogRecords)/n)
					syncs = append(syncs, float64(r.Daemon.LogSyncs)/n)
				}
				bw = append(bw, r.Result.BWBytes)
				iops = append(iops, r.Result.IOPS)
				if r.Result.hasLatency() {
					p50 = append(p50, r.Result.P50NS)
					p99 = append(p99, r.Result.P99NS)
				}
			}
			s.BWBytes, _ = median(bw)
			s.IOPS, _ = median(iops)
			s.P50NS, _ = median(p50)
			s.P99NS, _ = median(p99)
			s.DaemonMeasured = len(cpu)
			s.CPUPerOpNS, _ = median(cpu)
			s.RecordsPerOp, _ = median(recs)
			s.SyncsPerOp, _ = median(syncs)
			out = append(out, s)
		}
	}
	return out
}

func (r *report) summary(jobName, target string) *summary {
	for i := range r.Summary {
		if s := &r.Summary[i]; s.Job == jobName && s.Target == target {
			return s
		}
	}
	return nil
}

func (r *report) target(name string) *targetInfo {
	for i := range r.Targets {
		if r.Targets[i].Name == name {
			return &r.Targets[i]
		}
	}
	return nil
}

// value is the measure a job is judged by: bandwidth or IOPS.
func (s *summary) value(u unit) float64 {
	if u == unitBandwidth {
		return s.BWBytes
	}
	return s.IOPS
}

// ratio is one ratio column: num's median over den's.
type ratio struct{ num, den string }

func (q ratio) String() string { return q.num + "/" + q.den }

var allRatios = []ratio{
	{targetVosfsSync, targetLoopback},
	{targetVosfsAsync, targetLoopback},
	{targetVosfsSync, targetLoopbackFd},
	{targetVosfsAsync, targetLoopbackFd},
	{targetVosfsSync, targetBare},
	{targetVosfsAsync, targetBare},
}

// ratios are the ratio columns whose two targets are in the report.
func (r *report) ratios() []ratio {
	var qs []ratio
	for _, q := range allRatios {
		if r.target(q.num) != nil && r.target(q.den) != nil {
			qs = append(qs, q)
		}
	}
	return qs
}

// ratio returns num's median over den's for a job; ok is false when
// either has no result.
func (r *report) ratio(jobName string, q ratio) (float64, bool) {
	j, _ := lookupJob(jobName)
	n, d := r.summary(jobName, q.num), r.summary(jobName, q.den)
	if n == nil || d == nil || n.OK == 0 || d.OK == 0 || d.value(j.Unit) == 0 {
		return 0, false
	}
	return n.value(j.Unit) / d.value(j.Unit), true
}

// formatRate is a job's measure as people read it: "245 MiB/s" or
// "3.4k IOPS".
func formatRate(u unit, v float64) string {
	if u == unitBandwidth {
		return humanize.IBytes(uint64(math.Round(v))) + "/s"
	}
	return formatCount(v) + " IOPS"
}

// formatCount writes a count with an SI prefix: 532, 3.4k, 12.3k, 245k.
func formatCount(v float64) string {
	if v < 1 {
		return humanize.FtoaWithDigits(v, 2)
	}
	val, prefix := humanize.ComputeSI(v)
	return round(val) + prefix
}

// formatLatency writes nanoseconds with an SI prefix: 850µs, 1.2ms.
func formatLatency(ns float64) string {
	val, prefix := humanize.ComputeSI(ns / 1e9)
	return round(val) + prefix + "s"
}

// round writes v, from 1 to 1000, with two or three significant digits:
// 3.4, 12.3, 245.
func round(v float64) string {
	if v < 100 {
		v = math.Round(v*10) / 10
	} else {
		v = math.Round(v)
	}
	return humanize.Ftoa(v)
}

// cell is a target's column in a job's row.
func (r *report) cell(j job, target string) string {
	if ti := r.target(target); ti != nil && ti.Skipped != "" {
		if s := r.summary(j.Name, target); s == nil || s.OK == 0 {
			return "skipped"
		}
	}
	s := r.summary(j.Name, target)
	if s == nil || s.Runs == 0 {
		return "–"
	}
	if s.OK == 0 {
		return "failed"
	}
	c := formatRate(j.Unit, s.value(j.Unit))
	if s.P99NS > 0 {
		c += " (p99 " + formatLatency(s.P99NS) + ")"
	}
	if s.OK < s.Runs {
		c += fmt.Sprintf(" [%d/%d runs]", s.OK, s.Runs)
	}
	return c
}

// writeTable writes the markdown table: a row per job, the median of each
// target, then the ratios.
func (r *report) writeTable(w io.Writer) {
	qs := r.ratios()
	head := []string{"job"}
	align := []string{"---"}
	for _, t := range r.Targets {
		head = append(head, t.Name)
		align = append(align, "--:")
	}
	for _, q := range qs {
		head = append(head, q.String())
		align = append(align, "--:")
	}
	fmt.Fprintf(w, "| %s |\n", strings.Join(head, " | "))
	fmt.Fprintf(w, "|%s|\n", strings.Join(align, "|"))
	for _, name := range r.Jobs {
		j, _ := lookupJob(name)
		row := []string{name}
		for _, t := range r.Targets {
			row = append(row, r.cell(j, t.Name))
		}
		for _, q := range qs {
			if v, ok := r.ratio(name, q); ok {
				row = append(row, fmt.Sprintf("%.2f", v))
			} else {
				row = append(row, "–")
			}
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
	}
}

// writeDaemonTable writes, for the targets with a daemon, its CPU time per
// I/O and, for vosfs, the log records and syncs per I/O (medians over the
// rounds): where the time of a FUSE target goes.
func (r *report) writeDaemonTable(w io.Writer) {
	var cols []string
	for _, t := range r.Targets {
		for _, j := range r.Jobs {
			if s := r.summary(j, t.Name); s != nil && s.DaemonMeasured > 0 {
				cols = append(cols, t.Name)
				break
			}
		}
	}
	if len(cols) == 0 {
		return
	}
	fmt.Fprintf(w, "\nPer I/O fio counted (medians of the rounds): the daemon's CPU time (user and system), "+
		"and for vosfs the log records (transactions) and log syncs. A daemon that does not see the "+
		"I/O (the kernel passing it through to the backing file) shows next to no time.\n\n")
	head := []string{"job"}
	align := []string{"---"}
	for _, c := range cols {
		head = append(head, c+" CPU")
		align = append(align, "--:")
		if strings.HasPrefix(c, "vosfs") {
			head = append(head, c+" records", c+" syncs")
			align = append(align, "--:", "--:")
		}
	}
	fmt.Fprintf(w, "| %s |\n", strings.Join(head, " | "))
	fmt.Fprintf(w, "|%s|\n", strings.Join(align, "|"))
	for _, j := range r.Jobs {
		row := []string{j}
		for _, c := range cols {
			s := r.summary(j, c)
			if s == nil || s.DaemonMeasured == 0 {
				row = append(row, "–")
				if strings.HasPrefix(c, "vosfs") {
					row = append(row, "–", "–")
				}
				continue
			}
			row = append(row, formatLatency(s.CPUPerOpNS))
			if strings.HasPrefix(c, "vosfs") {
				row = append(row, fmt.Sprintf("%.2f", s.RecordsPerOp), fmt.Sprintf("%.2f", s.SyncsPerOp))
			}
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
	}
}

// writeMarkdown writes results.md.
func (r *report) writeMarkdown(w io.Writer) {
	fmt.Fprintf(w, "# vosfs benchmark\n\n")
	status := ""
	if r.Interrupted {
		status = " **Interrupted**: the medians are over the rounds that ran."
	}
	rounds := "rounds"
	if r.Rounds == 1 {
		rounds = "round"
	}
	fmt.Fprintf(w, "%s, %d %s on %s (%s), %s, taking %v.%s\n\n",
		r.Started.UTC().Format("2006-01-02 15:04 MST"), r.Rounds, rounds, r.Host, r.Kernel, r.Fio,
		r.Finished.Sub(r.Started).Round(time.Second), status)
	fmt.Fprintf(w, "Median of the rounds of each job on each target: bandwidth for the sequential jobs, "+
		"IOPS for the others, with the p99 completion latency in parentheses. "+
		"A ratio divides two medians; above 1, vosfs is faster.\n\n")
	r.writeTable(w)
	r.writeDaemonTable(w)
	fmt.Fprintf(w, "\nAll targets are under %s (%s); jobs run interleaved: for each round, each job, each target.", r.Dir, r.Filesystem)
	if r.DropCaches {
		fmt.Fprintf(w, " The page cache is dropped before each run.")
	}
	fmt.Fprintf(w, "\n\n")
	for _, t := range r.Targets {
		fmt.Fprintf(w, "- **%s**: %s", t.Name, t.Description)
		if t.Skipped != "" {
			fmt.Fprintf(w, " — **skipped**: %s", oneLine(t.Skipped))
		}
		fmt.Fprintf(w, "\n")
	}
	if len(r.Notes) > 0 {
		fmt.Fprintf(w, "\nNotes:\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(w, "- %s\n", oneLine(n))
		}
	}
}

// oneLine keeps a message on one markdown line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// writeJSON writes results.json.
func (r *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// writeFiles writes results.json, results.md and results.svg into dir.
func (r *report) writeFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	write := func(name string, fn func(io.Writer) error) error {
		f, err := os.Create(dir + "/" + name)
		if err != nil {
			return err
		}
		if err := fn(f); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	if err := write("results.json", r.writeJSON); err != nil {
		return err
	}
	if err := write("results.md", func(w io.Writer) error { r.writeMarkdown(w); return nil }); err != nil {
		return err
	}
	return write("results.svg", func(w io.Writer) error { return r.writeSVG(w) })
}
