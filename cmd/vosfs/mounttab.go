package main

// The table of live mounts. The kernel's mount table names a mount's
// source (fsname: the pool directory, or the name -o fsname= gave) and
// type (fuse.vosfs, or fuse.SUBTYPE), not the pool behind it; so each
// daemon records its mount in a file of its own in the run directory,
// from the mount until the unmount:
//
//	RUNDIR/PID.json  {"pool": ..., "mountpoint": ..., "fsname": ..., "pid": PID}
//
// RUNDIR is /run/vosfs for root, $XDG_RUNTIME_DIR/vosfs (or
// TMPDIR/vosfs-UID) for other users; VOSFS_RUN_DIR overrides it. A record
// counts only while its daemon runs and the kernel's table shows its
// mount point with its source: a daemon killed leaves a stale file that
// lookups ignore and remove.

import (
	"encoding/json"
	"errors"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// mountRecord is one daemon's mount.
type mountRecord struct {
	Pool       string `json:"pool"`
	Mountpoint string `json:"mountpoint"`
	FsName     string `json:"fsname"`
	PID        int    `json:"pid"`
}

// runDir is the directory of the mount records of this user.
func runDir() string {
	if d := os.Getenv("VOSFS_RUN_DIR"); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/run/vosfs"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "vosfs")
	}
	return filepath.Join(os.TempDir(), "vosfs-"+strconv.Itoa(os.Geteuid()))
}

func recordPath(pid int) string {
	return filepath.Join(runDir(), strconv.Itoa(pid)+".json")
}

// writeMountRecord records this daemon's mount; removeMountRecord takes
// it back at the unmount.
func writeMountRecord(r mountRecord) error {
	if err := os.MkdirAll(runDir(), 0o755); err != nil {
		return err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	path := recordPath(r.PID)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

func removeMountRecord(pid int) { os.Remove(recordPath(pid)) }

// liveMounts returns the records of the mounts that are live: daemon
// running, mount point mounted with the recorded source. Stale records
// are removed.
func liveMounts(mounts []mountEntry) []mountRecord {
	entries, err := os.ReadDir(runDir())
	if err != nil {
		return nil
	}
	var out []mountRecord
	for _, e := range entries {
		name := e.Name()
		pid, err := strconv.Atoi(strings.TrimSuffix(name, ".json"))
		if err != nil || !strings.HasSuffix(name, ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(runDir(), name))
		if errors.Is(err, iofs.ErrNotExist) {
			continue
		}
		var r mountRecord
		if err != nil || json.Unmarshal(b, &r) != nil || r.PID != pid {
			continue
		}
		if !processAlive(pid) || !isVosfsProcess(pid) {
			removeMountRecord(pid)
			continue
		}
		if m, ok := mountAt(mounts, r.Mountpoint); ok && m.source == r.FsName && strings.HasPrefix(m.fstype, "fuse.") {
			out = append(out, r)
		}
	}
	return out
}

// recordAt returns the live mount at mountpoint.
func recordAt(mounts []mountEntry, mountpoint string) (mountRecord, bool) {
	for _, r := range liveMounts(mounts) {
		if r.Mountpoint == mountpoint {
			return r, true
		}
	}
	return mountRecord{}, false
}

// recordOfPool returns the live mount of the pool in dir.
func recordOfPool(mounts []mountEntry, dir string) (mountRecord, bool) {
	for _, r := range liveMounts(mounts) {
		if r.Pool == dir {
			return r, true
		}
	}
	return mountRecord{}, false
}

// findMount finds the vosfs mount arg names: its mount point, its source
// (the fsname, as umount(8) and findmnt take it), or its pool directory.
func findMount(arg string) (mountRecord, bool, error) {
	mounts, err := readMountinfo()
	if err != nil {
		return mountRecord{}, false, err
	}
	live := liveMounts(mounts)
	var paths []string
	if abs, err := absDir(arg); err == nil {
		paths = append(paths, abs)
		if real, err := filepath.EvalSymlinks(abs); err == nil && real != abs {
			paths = append(paths, real)
		}
	}
	for _, p := range paths {
		for _, r := range live {
			if r.Mountpoint == p {
				return r, true, nil
			}
		}
	}
	for _, r := range live {
		if r.FsName == arg {
			return r, true, nil
		}
	}
	for _, p := range paths {
		for _, r := range live {
			if r.Pool == p {
				return r, true, nil
			}
		}
	}
	// A mount whose daemon left no record (an older vosfs): its source
	// is its pool directory.
	for _, p := range paths {
		if m, ok := mountAt(mounts, p); ok && m.fstype == vosfsType {
			return mountRecord{Pool: m.source, Mountpoint: p, FsName: m.source}, true, nil
		}
	}
	return mountRecord{}, false, nil
}
