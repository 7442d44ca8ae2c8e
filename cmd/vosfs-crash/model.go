package main

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
)

// Model is the expected namespace of one thread: its directory tN and its
// entries sN_* of the shared directory (seen as the whole of "shared").
// Paths are relative to the mount. Apply changes it as an operation would
// and says what the operation returns, so that the workload knows what to
// expect and the checker can replay a log.
//
// The model remembers which paths an operation may have changed (Dirty),
// so that the checker can compare it with the found state after every
// operation at little cost.
type Model struct {
	inodes map[int]*mInode
	names  map[string]int          // path -> inode
	links  map[int]map[string]bool // inode -> its paths
	next   int
	dirty  map[string]bool
}

type mInode struct {
	dir    bool
	data   []byte
	xattr  map[string][]byte
	hash   uint64 // of data, when hashOK
	hashOK bool
}

// Entry is what the checker compares per path. Two states are equal when
// every path has equal Entries.
type Entry struct {
	Exists bool
	Dir    bool
	Size   int64
	Nlink  int
	Group  string // files: the least path naming the same inode
	Hash   uint64 // files: of the contents
	Xattr  string // canonical list of user xattrs and their hashes
}

func (e Entry) String() string {
	switch {
	case !e.Exists:
		return "absent"
	case e.Dir:
		return fmt.Sprintf("directory nlink=%d xattrs=[%s]", e.Nlink, e.Xattr)
	}
	s := fmt.Sprintf("file size=%d nlink=%d", e.Size, e.Nlink)
	if e.Nlink > 1 {
		s += " links-with=" + e.Group
	}
	return s + fmt.Sprintf(" xattrs=[%s]", e.Xattr)
}

// xattrKey is the canonical form of a set of xattrs.
func xattrKey(x map[string][]byte) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(x)) {
		parts = append(parts, fmt.Sprintf("%s:%d:%x", k, len(x[k]), hashBytes(x[k])&0xffffffff))
	}
	return strings.Join(parts, " ")
}

// threadDir and sharedDir name the directories of the workload.
func threadDir(t int) string { return fmt.Sprintf("t%d", t) }

const sharedDir = "shared"

// sharedPrefix starts the names of thread t in the shared directory.
func sharedPrefix(t int) string { return fmt.Sprintf("s%d_", t) }

// inView reports whether path belongs to thread t's namespace.
func inView(p string, t int) bool {
	td := threadDir(t)
	return p == td || strings.HasPrefix(p, td+"/") || p == sharedDir ||
		strings.HasPrefix(p, sharedDir+"/"+sharedPrefix(t))
}

// newModel returns the model of an empty namespace for thread t: its
// directory and the shared one.
func newModel(t int) *Model {
	m := &Model{
		inodes: make(map[int]*mInode),
		names:  make(map[string]int),
		links:  make(map[int]map[string]bool),
		dirty:  make(map[string]bool),
	}
	m.addName(threadDir(t), m.newInode(true))
	m.addName(sharedDir, m.newInode(true))
	return m
}

// modelOf builds the model of thread t from the entries of a snapshot in
// its view (a thread's state at the start of a cycle).
func modelOf(s *Snapshot, t int) *Model {
	m := &Model{
		inodes: make(map[int]*mInode),
		names:  make(map[string]int),
		links:  make(map[int]map[string]bool),
		dirty:  make(map[string]bool),
	}
	byIno := make(map[uint64]int)
	for _, p := range slices.Sorted(maps.Keys(s.Entries)) {
		if !inView(p, t) {
			continue
		}
		e := s.Entries[p]
		id, ok := byIno[e.Ino]
		if !ok || e.Dir {
			id = m.newInode(e.Dir)
			in := m.inodes[id]
			in.data = e.Data
			for k, v := range e.Xattr {
				in.xattr[k] = v
			}
			byIno[e.Ino] = id
		}
		m.addName(p, id)
	}
	for _, p := range []string{threadDir(t), sharedDir} {
		if _, ok := m.names[p]; !ok {
			m.addName(p, m.newInode(true))
		}
	}
	clear(m.dirty)
	return m
}

func (m *Model) newInode(dir bool) int {
	m.next++
	m.inodes[m.next] = &mInode{dir: dir, xattr: make(map[string][]byte)}
	return m.next
}

// Paths returns every path of the model, sorted.
func (m *Model) Paths() []string { return slices.Sorted(maps.Keys(m.names)) }

// Dirty returns the paths that may have changed since the last call, and
// forgets them.
func (m *Model) Dirty() []string {
	d := slices.Sorted(maps.Keys(m.dirty))
	clear(m.dirty)
	return d
}

func (m *Model) touchInode(id int) {
	for p := range m.links[id] {
		m.dirty[p] = true
	}
}

func (m *Model) addName(p string, id int) {
	m.names[p] = id
	if m.links[id] == nil {
		m.links[id] = make(map[string]bool)
	}
	m.links[id][p] = true
	m.touchInode(id)
	m.dirty[path.Dir(p)] = true
}

func (m *Model) removeName(p string) {
	id := m.names[p]
	delete(m.names, p)
	delete(m.links[id], p)
	m.dirty[p] = true
	m.dirty[path.Dir(p)] = true
	m.touchInode(id)
	if len(m.links[id]) == 0 {
		delete(m.links, id)
		delete(m.inodes, id)
	}
}

// lookup returns the inode at p, or nil.
func (m *Model) lookup(p string) *mInode {
	if id, ok := m.names[p]; ok {
		return m.inodes[id]
	}
	return nil
}

// Exists, IsDir and Size answer the workload's questions.
func (m *Model) Exists(p string) bool { return m.lookup(p) != nil }
func (m *Model) IsDir(p string) bool  { in := m.lookup(p); return in != nil && in.dir }
func (m *Model) Size(p string) int64 {
	if in := m.lookup(p); in != nil && !in.dir {
		return int64(len(in.data))
	}
	return 0
}

// Data returns the contents of the file at p (not to be changed).
func (m *Model) Data(p string) []byte {
	if in := m.lookup(p); in != nil {
		return in.data
	}
	return nil
}

// Children returns the names directly in directory p, sorted.
func (m *Model) Children(p string) []string {
	var c []string
	for q := range m.names {
		if path.Dir(q) == p && q != p {
			c = append(c, q)
		}
	}
	slices.Sort(c)
	return c
}

// Files and Dirs return the paths of files and of directories, sorted.
func (m *Model) Files() []string { return m.filter(false) }
func (m *Model) Dirs() []string  { return m.filter(true) }

func (m *Model) filter(dir bool) []string {
	var out []string
	for p, id := range m.names {
		if m.inodes[id].dir == dir {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// Entry returns what the checker compares at p.
func (m *Model) Entry(p string) Entry {
	id, ok := m.names[p]
	if !ok {
		return Entry{}
	}
	in := m.inodes[id]
	e := Entry{Exists: true, Dir: in.dir, Xattr: xattrKey(in.xattr)}
	if in.dir {
		e.Nlink = 2
		for _, c := range m.Children(p) {
			if m.inodes[m.names[c]].dir {
				e.Nlink++
			}
		}
		return e
	}
	if !in.hashOK {
		in.hash, in.hashOK = hashBytes(in.data), true
	}
	e.Size, e.Nlink, e.Hash = int64(len(in.data)), len(m.links[id]), in.hash
	e.Group = slices.Min(slices.Collect(maps.Keys(m.links[id])))
	return e
}

// Names returns the paths naming the same inode as p (p included).
func (m *Model) Names(p string) []string {
	id, ok := m.names[p]
	if !ok {
		return nil
	}
	return slices.Sorted(maps.Keys(m.links[id]))
}

// setData replaces the contents of the inode at p.
func (m *Model) setData(p string, data []byte) {
	id := m.names[p]
	in := m.inodes[id]
	in.data, in.hashOK = data, false
	m.touchInode(id)
}

// parentErr is the error of creating p: "" if its parent is a directory.
func (m *Model) parentErr(p string) string {
	in := m.lookup(path.Dir(p))
	switch {
	case in == nil:
		return "ENOENT"
	case !in.dir:
		return "ENOTDIR"
	}
	return ""
}

// writeAt returns data with p written at off (a new slice: states share
// nothing).
func writeAt(data, p []byte, off int64) []byte {
	end := max(int64(len(data)), off+int64(len(p)))
	out := make([]byte, end)
	copy(out, data)
	copy(out[off:], p)
	return out
}

// Apply applies op to the model as the filesystem would and returns what
// the operation returns: "ok" or an errno name. It changes the model only
// when that is "ok". gen gives the bytes an operation writes.
func (m *Model) Apply(op *Op, gen func(n int) []byte) string {
	in := m.lookup(op.Path)
	// Operations on an existing file or directory.
	switch op.Kind {
	case kWrite, kDWrite, kMWrite, kTruncate, kFalloc, kSetxattr, kFsync, kFdatasync, kUnlink, kRmdir:
		if in == nil {
			if e := m.parentErr(op.Path); e != "" {
				return e
			}
			return "ENOENT"
		}
	}
	switch op.Kind {
	case kCreate, kMkdir:
		if e := m.parentErr(op.Path); e != "" {
			return e
		}
		if in != nil {
			return "EEXIST"
		}
		m.addName(op.Path, m.newInode(op.Kind == kMkdir))
	case kWrite, kDWrite:
		if in.dir {
			return "EISDIR"
		}
		m.setData(op.Path, writeAt(in.data, gen(int(op.Len)), op.Off))
	case kMWrite:
		if in.dir {
			return "EISDIR"
		}
		// A store past the end of the file is lost (within its last page).
		p := gen(int(op.Len))
		if n := int64(len(in.data)) - op.Off; n < int64(len(p)) {
			p = p[:max(n, 0)]
		}
		m.setData(op.Path, writeAt(in.data, p, op.Off))
	case kTruncate:
		if in.dir {
			return "EISDIR"
		}
		d := make([]byte, op.Len)
		copy(d, in.data)
		m.setData(op.Path, d)
	case kFalloc:
		if in.dir {
			return "EISDIR"
		}
		switch op.Flags {
		case 0:
			if end := op.Off + op.Len; end > int64(len(in.data)) {
				m.setData(op.Path, writeAt(in.data, nil, end))
			}
		case fallocPunch:
			end := min(op.Off+op.Len, int64(len(in.data)))
			if op.Off < end {
				m.setData(op.Path, writeAt(in.data, make([]byte, end-op.Off), op.Off))
			}
		default:
			return "EOPNOTSUPP"
		}
	case kSetxattr:
		in.xattr[op.Name] = gen(int(op.Len))
		m.touchInode(m.names[op.Path])
	case kFsync, kFdatasync, kSyncfs:
	case kUnlink:
		if in.dir {
			return "EISDIR"
		}
		m.removeName(op.Path)
	case kRmdir:
		switch {
		case !in.dir:
			return "ENOTDIR"
		case len(m.Children(op.Path)) > 0:
			return "ENOTEMPTY"
		}
		m.removeName(op.Path)
	case kLink:
		switch {
		case in == nil:
			return "ENOENT"
		case in.dir:
			return "EPERM"
		}
		if e := m.parentErr(op.Path2); e != "" {
			return e
		}
		if m.lookup(op.Path2) != nil {
			return "EEXIST"
		}
		m.addName(op.Path2, m.names[op.Path])
	case kRename:
		return m.rename(op)
	default:
		return "EINVAL"
	}
	return resOK
}

// renameNoReplace is RENAME_NOREPLACE of renameat2.
const renameNoReplace = 1

// fallocPunch is FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE.
const fallocPunch = 0x3

func (m *Model) rename(op *Op) string {
	src, dst := op.Path, op.Path2
	in := m.lookup(src)
	if in == nil {
		return "ENOENT"
	}
	if e := m.parentErr(dst); e != "" {
		return e
	}
	out := m.lookup(dst)
	if op.Flags&renameNoReplace != 0 && out != nil {
		return "EEXIST"
	}
	if strings.HasPrefix(dst, src+"/") {
		return "EINVAL"
	}
	if out != nil {
		switch {
		case m.names[src] == m.names[dst]:
			return resOK // two links of one file: nothing happens
		case in.dir && !out.dir:
			return "ENOTDIR"
		case !in.dir && out.dir:
			return "EISDIR"
		case strings.HasPrefix(src, dst+"/"):
			return "ENOTEMPTY"
		case out.dir && len(m.Children(dst)) > 0:
			return "ENOTEMPTY"
		}
		m.removeName(dst)
	}
	var moved []string
	for p := range m.names {
		if p == src || strings.HasPrefix(p, src+"/") {
			moved = append(moved, p)
		}
	}
	slices.Sort(moved)
	for _, p := range moved {
		id := m.names[p]
		m.removeNameKeep(p)
		m.addName(dst+strings.TrimPrefix(p, src), id)
	}
	return resOK
}

// removeNameKeep removes a name without freeing its inode (rename).
func (m *Model) removeNameKeep(p string) {
	id := m.names[p]
	delete(m.names, p)
	delete(m.links[id], p)
	m.dirty[p] = true
	m.dirty[path.Dir(p)] = true
	m.touchInode(id)
}
