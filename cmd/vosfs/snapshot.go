package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

var snapshotCommand = &command{
	name:    "snapshot",
	summary: "create, list or delete snapshots of a mounted filesystem",
	usage: `usage: vosfs snapshot create MOUNTPOINT NAME
       vosfs snapshot list MOUNTPOINT
       vosfs snapshot delete MOUNTPOINT NAME

A snapshot is a read-only image of the whole filesystem as it was when the
snapshot was created. Snapshots are seen in MOUNTPOINT/.snapshots/NAME,
where mkdir and rmdir also create and delete them.
`,
	run: runSnapshot,
}

// snapshotsDir is the directory at the root of a mount holding snapshots.
const snapshotsDir = ".snapshots"

func runSnapshot(c *command, args []string) error {
	fl := newFlagSet(c)
	pos, err := parseArgs(c, fl, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef(c.name, "missing operation: create, list or delete")
	}
	op, rest := pos[0], pos[1:]
	switch op {
	case "create", "delete":
		if len(rest) != 2 {
			return usagef(c.name, "%s wants MOUNTPOINT NAME", op)
		}
		if err := checkSnapshotName(rest[1]); err != nil {
			return usagef(c.name, "%v", err)
		}
	case "list":
		if len(rest) != 1 {
			return usagef(c.name, "list wants MOUNTPOINT")
		}
	default:
		return usagef(c.name, "unknown operation %q: create, list or delete", op)
	}
	mp, err := vosfsMountpoint(rest[0])
	if err != nil {
		return err
	}
	snaps := filepath.Join(mp, snapshotsDir)
	switch op {
	case "create":
		name := rest[1]
		if err := os.Mkdir(filepath.Join(snaps, name), 0o755); err != nil {
			return snapshotError(mp, name, err)
		}
		fmt.Printf("created snapshot %s (%s)\n", name, filepath.Join(snaps, name))
	case "delete":
		name := rest[1]
		if err := os.Remove(filepath.Join(snaps, name)); err != nil {
			return snapshotError(mp, name, err)
		}
		fmt.Printf("deleted snapshot %s\n", name)
	case "list":
		entries, err := os.ReadDir(snaps)
		if err != nil {
			return snapshotError(mp, "", err)
		}
		for _, e := range entries {
			fmt.Println(e.Name())
		}
	}
	return nil
}

func checkSnapshotName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("invalid snapshot name %q", name)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("invalid snapshot name %q: it may not contain '/'", name)
	}
	return nil
}

// vosfsMountpoint returns the absolute path of arg after checking that a
// vosfs filesystem is mounted there.
func vosfsMountpoint(arg string) (string, error) {
	abs, err := absDir(arg)
	if err != nil {
		return "", err
	}
	mounts, err := readMountinfo()
	if err != nil {
		return "", err
	}
	candidates := []string{abs}
	if real, err := filepath.EvalSymlinks(abs); err == nil && real != abs {
		candidates = append(candidates, real)
	}
	for _, c := range candidates {
		if m, ok := mountAt(mounts, c); ok && m.fstype == vosfsType {
			return c, nil
		}
	}
	return "", fmt.Errorf("%s is not a vosfs mount point", abs)
}

// snapshotError explains a failed snapshot operation.
func snapshotError(mp, name string, err error) error {
	switch {
	case errors.Is(err, syscall.EEXIST):
		return fmt.Errorf("snapshot %s exists", name)
	case errors.Is(err, syscall.ENOENT) && name != "":
		return fmt.Errorf("no snapshot %s on %s", name, mp)
	case errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("%s has no %s directory (not a vosfs mount?)", mp, snapshotsDir)
	case errors.Is(err, syscall.ENAMETOOLONG):
		return fmt.Errorf("snapshot name %q is too long", name)
	case errors.Is(err, syscall.EROFS):
		return fmt.Errorf("%s is mounted read-only", mp)
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("no space left for snapshot %s", name)
	}
	return err
}
