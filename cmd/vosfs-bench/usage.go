package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of the CPU times in /proc/PID/stat (USER_HZ, 100
// on every Linux architecture the kernel exports it as).
const clockTick = 10 * time.Millisecond

// daemonUsage is what a target's daemon did during one run: the CPU time it
// spent and, for vosfs, the log work the run caused. With the run's I/O
// count it says, per operation, how much of the time went into the daemon
// and how many log syncs it took; a loopback daemon whose files pass
// through to the kernel shows next to no time at all.
type daemonUsage struct {
	CPUSeconds float64 `json:"cpu_seconds"`           // user + system
	LogRecords uint64  `json:"log_records,omitempty"` // vosfs: transactions logged
	LogSyncs   uint64  `json:"log_syncs,omitempty"`   // vosfs: log fdatasyncs
}

// pid is the target's daemon: 0 for the bare directory.
func (t *target) pid() int {
	switch {
	case t.vosfs != "":
		return t.daemon
	case t.proc != nil && t.proc.Process != nil:
		return t.proc.Process.Pid
	}
	return 0
}

// usageNow reads the daemon's counters; ok is false for a target without
// a daemon, or one whose counters cannot be read (then none are shown).
func (t *target) usageNow(ctx context.Context) (u daemonUsage, ok bool) {
	pid := t.pid()
	if pid <= 0 {
		return u, false
	}
	cpu, err := processCPU(pid)
	if err != nil {
		return u, false
	}
	u.CPUSeconds = cpu.Seconds()
	if t.vosfs != "" {
		out, err := command(ctx, 30*time.Second, t.vosfs, "stat", "--json", t.mnt)
		if err != nil {
			return u, false
		}
		if u.LogRecords, u.LogSyncs, err = parseLogCounters([]byte(out)); err != nil {
			return u, false
		}
	}
	return u, true
}

// since is u minus an earlier reading.
func (u daemonUsage) since(before daemonUsage) daemonUsage {
	return daemonUsage{
		CPUSeconds: u.CPUSeconds - before.CPUSeconds,
		LogRecords: u.LogRecords - before.LogRecords,
		LogSyncs:   u.LogSyncs - before.LogSyncs,
	}
}

// processCPU is the user and system time pid has used, from
// /proc/PID/stat (fields 14 and 15, after the command name in
// parentheses, which may itself hold spaces and parentheses).
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseProcStatCPU(b)
}

func parseProcStatCPU(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc stat without a command name: %q", b)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat of %d fields", len(f)+2)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}

// parseLogCounters reads the log's records and syncs from the output of
// vosfs stat --json.
func parseLogCounters(out []byte) (records, syncs uint64, err error) {
	var st struct {
		Stats struct {
			Pool struct {
				Log struct {
					Records uint64
					Syncs   uint64
				}
			}
		} `json:"stats"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return 0, 0, fmt.Errorf("vosfs stat --json: %w", err)
	}
	return st.Stats.Pool.Log.Records, st.Stats.Pool.Log.Syncs, nil
}
