package main

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Snapshot is the state found in a mount: every path (relative to the
// mount) with what the checker compares.
type Snapshot struct {
	Entries map[string]*SnapEntry
}

// SnapEntry is one path of a Snapshot.
type SnapEntry struct {
	Dir   bool
	Other string // neither file nor directory: its type
	Ino   uint64
	Nlink int
	Size  int64
	Data  []byte // files
	Xattr map[string][]byte
}

// hiddenRoot are the entries of the mount's root that the workload does
// not own.
var hiddenRoot = map[string]bool{".snapshots": true}

// scan reads the whole tree under mnt.
func scan(mnt string) (*Snapshot, error) {
	s := &Snapshot{Entries: make(map[string]*SnapEntry)}
	var walk func(rel string) error
	walk = func(rel string) error {
		names, err := readDirNames(filepath.Join(mnt, rel))
		if err != nil {
			return err
		}
		for _, name := range names {
			if rel == "" && hiddenRoot[name] {
				continue
			}
			p := name
			if rel != "" {
				p = rel + "/" + name
			}
			e, err := scanEntry(filepath.Join(mnt, p))
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			s.Entries[p] = e
			if e.Dir {
				if err := walk(p); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(""); err != nil {
		return nil, err
	}
	return s, nil
}

func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}

func scanEntry(p string) (*SnapEntry, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return nil, err
	}
	e := &SnapEntry{Ino: st.Ino, Nlink: int(st.Nlink), Size: st.Size}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		e.Dir = true
	case unix.S_IFREG:
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		e.Data = b
	default:
		e.Other = fmt.Sprintf("mode %#o", st.Mode&unix.S_IFMT)
		return e, nil
	}
	x, err := readXattrs(p)
	if err != nil {
		return nil, err
	}
	e.Xattr = x
	return e, nil
}

// readXattrs returns the user.* xattrs of p.
func readXattrs(p string) (map[string][]byte, error) {
	x := make(map[string][]byte)
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return x, nil
		}
		return nil, fmt.Errorf("listxattr: %w", err)
	}
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if !strings.HasPrefix(name, "user.") {
			continue
		}
		vbuf := make([]byte, 64<<10)
		m, err := unix.Lgetxattr(p, name, vbuf)
		if err != nil {
			return nil, fmt.Errorf("getxattr %s: %w", name, err)
		}
		x[name] = bytes.Clone(vbuf[:m])
	}
	return x, nil
}

// view returns the part of s that thread t owns, with the Entries the
// checker compares.
func (s *Snapshot) view(t int) map[string]Entry {
	groups := make(map[uint64]string)
	for p, e := range s.Entries {
		if inView(p, t) && !e.Dir {
			if g, ok := groups[e.Ino]; !ok || p < g {
				groups[e.Ino] = p
			}
		}
	}
	out := make(map[string]Entry)
	for p, e := range s.Entries {
		if inView(p, t) {
			out[p] = e.entry(groups)
		}
	}
	return out
}

func (e *SnapEntry) entry(groups map[uint64]string) Entry {
	x := Entry{Exists: true, Dir: e.Dir, Nlink: e.Nlink, Xattr: xattrKey(e.Xattr)}
	switch {
	case e.Other != "":
		x.Xattr = "not a file or directory: " + e.Other
	case !e.Dir:
		x.Size, x.Hash, x.Group = e.Size, hashBytes(e.Data), groups[e.Ino]
	}
	return x
}

// strays returns the paths of s that no thread of n owns, sorted.
func (s *Snapshot) strays(threads int) []string {
	var out []string
	for _, p := range slices.Sorted(maps.Keys(s.Entries)) {
		owned := false
		for t := range threads {
			if inView(p, t) {
				owned = true
				break
			}
		}
		if !owned {
			out = append(out, p)
		}
	}
	return out
}
