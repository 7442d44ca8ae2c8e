package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/dustin/go-humanize"
)

// The space check at the end of a run: once aggregation has caught up
// with the dead versions the kills left, the pool holds little more than
// the files. A pool that fills with versions nobody can see passes every
// state check until it is full and every operation fails; this check
// finds it while there is still space.
const (
	// spaceWait is how long the check waits for aggregation to bring the
	// pool within its bounds (a pass starts with each mount and repeats
	// every 5 s).
	spaceWait = 60 * time.Second
	// spaceFactor and dataSlack bound the data blob's use: aggregation
	// keeps an extent whole while any block of it is live, so a file
	// rewritten in places may hold up to a whole extent per live block.
	spaceFactor = 4
	dataSlack   = 256 << 20
	// heapSlack bounds the heap's use beyond the files' bytes (values
	// below the threshold live there): the tree, inodes, entries, xattrs.
	heapSlack = 48 << 20
)

// liveBytes is the files' bytes and xattrs of a scan, each inode once.
func liveBytes(s *Snapshot) uint64 {
	seen := map[uint64]bool{}
	var n uint64
	for _, e := range s.Entries {
		if seen[e.Ino] {
			continue
		}
		seen[e.Ino] = true
		if !e.Dir && e.Other == "" && e.Size > 0 {
			n += uint64(e.Size)
		}
		for k, v := range e.Xattr {
			n += uint64(len(k) + len(v))
		}
	}
	return n
}

// spaceUsed is the part of `vosfs stat --json` the check reads.
type spaceUsed struct {
	Usage struct {
		DataUsed uint64 `json:"data_used"`
		HeapUsed uint64 `json:"heap_used"`
	} `json:"usage"`
}

// spaceExcess says how the use exceeds the bounds for live bytes of
// files, or "" when it does not.
func spaceExcess(u spaceUsed, live uint64) string {
	var msg string
	if max := spaceFactor*live + dataSlack; u.Usage.DataUsed > max {
		msg = fmt.Sprintf("data blob %s used, bound %s", humanize.IBytes(u.Usage.DataUsed), humanize.IBytes(max))
	}
	if max := live + heapSlack; u.Usage.HeapUsed > max {
		if msg != "" {
			msg += "; "
		}
		msg += fmt.Sprintf("heap %s used, bound %s", humanize.IBytes(u.Usage.HeapUsed), humanize.IBytes(max))
	}
	return msg
}

// checkSpace waits up to spaceWait for the mounted pool's use to come
// within the bounds for the files of s, and reports a violation if it
// does not.
func (r *runner) checkSpace(cycle int, s *Snapshot) {
	live := liveBytes(s)
	start := time.Now()
	for {
		out, code := r.v.run(time.Minute, "stat", "--json", r.v.mnt)
		var u spaceUsed
		if code != 0 {
			r.violation(cycle, fmt.Sprintf("vosfs stat exited %d: %s", code, firstLine(out)))
			return
		}
		if err := json.Unmarshal([]byte(out), &u); err != nil {
			r.violation(cycle, fmt.Sprintf("vosfs stat --json: %v", err))
			return
		}
		excess := spaceExcess(u, live)
		if excess == "" {
			r.printf("space: data blob %s used, heap %s used, for %s of files (after %s)\n",
				humanize.IBytes(u.Usage.DataUsed), humanize.IBytes(u.Usage.HeapUsed), humanize.IBytes(live),
				time.Since(start).Round(time.Second))
			return
		}
		if time.Since(start) > spaceWait {
			r.violation(cycle, fmt.Sprintf("space not given back %s after the last cycle: %s, for %s of files",
				spaceWait, excess, humanize.IBytes(live)))
			return
		}
		time.Sleep(time.Second)
	}
}
