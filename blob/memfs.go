package blob

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// MemFS is an in-memory FS that simulates power cuts and I/O errors, so
// that the engine's recovery can be tested at every point of a workload.
//
// Each file keeps its current contents and its durable contents (as of the
// last Sync) in BlockSize blocks, plus the set of blocks changed since. A
// power cut (Crash, CrashAfter, CrashAtSync) keeps the durable contents and,
// for each changed block independently, a seeded random choice of the new or
// the old block, which is how a device may lose, keep or tear a multi-block
// write.
//
// A failed Sync (an injected fault) drops the blocks changed since the last
// Sync, as Linux does when writeback fails: they read as their durable
// contents again, the size as the durable size, and no later Sync makes
// them durable — so an engine that retries a failed sync and takes its
// success for durability loses the data, as it would on a real disk.
//
// Simplifications: creating and removing a file are durable at once, so
// SyncDir does nothing; a size change not yet synced survives a power cut
// only as far as the kept blocks imply. Paths are cleaned and never checked
// against directories.
//
// MemFS is safe for concurrent use; one mutex serialises everything.
type MemFS struct {
	mu sync.Mutex

	rng    *rand.Rand          // crash choices and image seeds; guarded by mu
	files  map[string]*memData // by cleaned path; guarded by mu
	dirs   map[string]bool     // cleaned paths given to MkdirAll; guarded by mu
	locks  map[string]*memLock // holder per cleaned name; guarded by mu
	image  *MemFS              // power-cut image; non-nil once dead; guarded by mu
	faults []*memFault         // armed injections, oldest first; guarded by mu

	// Operations issued since NewMemFS, and the totals at which an armed
	// crash fires (0 when unarmed); guarded by mu.
	mutations, syncs             int
	perFile                      map[fileOp]int // operations by file and kind
	crashAtMutation, crashAtSync int
}

var _ FS = (*MemFS)(nil)

// Op is a kind of File operation, for Inject.
type Op int

// The operations Inject can make fail. OpWrite, OpSync, OpTruncate and
// OpPunch are also the mutations that CrashAfter counts.
const (
	OpRead Op = iota + 1
	OpWrite
	OpSync
	OpTruncate
	OpPunch
)

func (op Op) String() string {
	switch op {
	case OpRead:
		return "read"
	case OpWrite:
		return "write"
	case OpSync:
		return "sync"
	case OpTruncate:
		return "truncate"
	case OpPunch:
		return "punch"
	}
	return fmt.Sprintf("Op(%d)", int(op))
}

// fileOp counts the operations of one kind on one file.
type fileOp struct {
	file string
	op   Op
}

// memFault is an armed Inject.
type memFault struct {
	op   Op
	file string // cleaned name, or "" for any file
	left int    // matching operations until it fires, this one included
	err  error
}

// NewMemFS returns an empty MemFS whose crash choices derive from seed, so
// that the same seed and the same operations give the same crash image.
func NewMemFS(seed int64) *MemFS {
	return &MemFS{
		rng:     rand.New(rand.NewPCG(uint64(seed), 0)),
		files:   make(map[string]*memData),
		dirs:    make(map[string]bool),
		locks:   make(map[string]*memLock),
		perFile: make(map[fileOp]int),
	}
}

// Crash cuts the power: it returns a new MemFS holding what would survive,
// and kills m, so that every later operation on m or its files fails with
// ErrCrashed and the engine stays frozen at the crash point. Locks do not
// carry over. On a dead m, Crash returns the image taken when m died.
func (m *MemFS) Crash() *MemFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.image == nil {
		m.freeze()
	}
	return m.image
}

// CrashAfter arms a power cut at the n-th mutation (WriteAt, Sync, Truncate
// or Punch on any file) counted from now: that mutation does not happen,
// m dies as if Crash had been called just before it, and CrashImage returns
// the image. n < 1 disarms.
func (m *MemFS) CrashAfter(n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.crashAtMutation = 0
	if n > 0 {
		m.crashAtMutation = m.mutations + n
	}
}

// CrashAtSync is CrashAfter counting only Sync calls: the n-th Sync from
// now finds the power already cut. n < 1 disarms.
func (m *MemFS) CrashAtSync(n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.crashAtSync = 0
	if n > 0 {
		m.crashAtSync = m.syncs + n
	}
}

// CrashImage returns the image left by the power cut, or nil while m is
// alive.
func (m *MemFS) CrashImage() *MemFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.image
}

// Ops returns how many mutations (WriteAt, Sync, Truncate, Punch) and how
// many Syncs were issued on m, failed ones included, so that a test can
// count the crash points of a workload and then replay it crashing at each.
func (m *MemFS) Ops() (mutations, syncs int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mutations, m.syncs
}

// FileOps returns how many operations of kind op were issued on the file
// name, failed ones included, so that a test can count the injection points
// of a workload and then fail each in turn.
func (m *MemFS) FileOps(name string, op Op) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.perFile[fileOp{filepath.Clean(name), op}]
}

// Inject makes the n-th operation of kind op from now, on any file, fail
// with err (wrapped with the file name and offset); then the injection is
// spent. The failed operation changes nothing, except that an injected
// ErrShortWrite writes the first half of the bytes, rounded down to a
// block, and returns that count with the error. n < 1 means the next one.
func (m *MemFS) Inject(op Op, n int, err error) { m.InjectFile("", op, n, err) }

// InjectFile is Inject counting only operations on the file name; an empty
// name means any file.
func (m *MemFS) InjectFile(name string, op Op, n int, err error) {
	if err == nil {
		panic("blob: MemFS.Inject with a nil error")
	}
	if name != "" {
		name = filepath.Clean(name)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.faults = append(m.faults, &memFault{op: op, file: name, left: max(n, 1), err: err})
}

// ClearInjections disarms every injection not yet spent.
func (m *MemFS) ClearInjections() {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.faults)
	m.faults = m.faults[:0]
}

// ReadFile returns the current contents of name. It works on a dead MemFS
// too, to show what the engine had written when the power went.
func (m *MemFS) ReadFile(name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.files[filepath.Clean(name)]
	if d == nil {
		return nil, fmt.Errorf("blob: read %s: %w", name, fs.ErrNotExist)
	}
	p := make([]byte, d.size)
	d.read(p, 0)
	return p, nil
}

// Files returns the cleaned names of all files, sorted. It works on a dead
// MemFS too.
func (m *MemFS) Files() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Sorted(maps.Keys(m.files))
}

// freeze kills m and stores its power-cut image. m.mu must be held.
func (m *MemFS) freeze() {
	img := NewMemFS(m.rng.Int64())
	maps.Copy(img.dirs, m.dirs)
	for _, name := range slices.Sorted(maps.Keys(m.files)) {
		img.files[name] = m.files[name].crash(m.rng)
	}
	m.image = img
}

// step accounts for one file operation on the file key and returns the
// error it must fail with: ErrCrashed when an armed crash fires now, or an
// injected fault. m.mu must be held.
func (m *MemFS) step(op Op, key string) error {
	m.perFile[fileOp{key, op}]++
	if op != OpRead {
		m.mutations++
		if op == OpSync {
			m.syncs++
		}
		if m.mutations == m.crashAtMutation || op == OpSync && m.syncs == m.crashAtSync {
			m.freeze()
			return ErrCrashed
		}
	}
	var err error
	m.faults, err = fireFaults(m.faults, op, key)
	return err
}

// fireFaults counts one operation op on the file key against the armed
// faults and returns those still armed and the error of the first that
// fires now (nil if none).
func fireFaults(faults []*memFault, op Op, key string) ([]*memFault, error) {
	var err error
	armed := faults[:0]
	for _, f := range faults {
		if f.op == op && (f.file == "" || f.file == key) {
			if f.left--; f.left == 0 {
				if err == nil {
					err = f.err
				}
				continue
			}
		}
		armed = append(armed, f)
	}
	clear(faults[len(armed):])
	return armed, err
}

// Create creates an empty file, durable at once.
func (m *MemFS) Create(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := filepath.Clean(name)
	switch {
	case m.image != nil:
		return nil, fmt.Errorf("blob: create %s: %w", name, ErrCrashed)
	case m.files[key] != nil:
		return nil, fmt.Errorf("blob: create %s: %w", name, fs.ErrExist)
	}
	d := newMemData()
	m.files[key] = d
	return &memFile{fs: m, name: name, key: key, d: d}, nil
}

// Open opens an existing file. Handles to one file share its contents.
func (m *MemFS) Open(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := filepath.Clean(name)
	switch {
	case m.image != nil:
		return nil, fmt.Errorf("blob: open %s: %w", name, ErrCrashed)
	case m.files[key] == nil:
		return nil, fmt.Errorf("blob: open %s: %w", name, fs.ErrNotExist)
	}
	return &memFile{fs: m, name: name, key: key, d: m.files[key]}, nil
}

// Stat returns the current size of a file, or 0 for a directory.
func (m *MemFS) Stat(name string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := filepath.Clean(name)
	switch {
	case m.image != nil:
		return 0, fmt.Errorf("blob: stat %s: %w", name, ErrCrashed)
	case m.files[key] != nil:
		return m.files[key].size, nil
	case m.dirs[key]:
		return 0, nil
	}
	return 0, fmt.Errorf("blob: stat %s: %w", name, fs.ErrNotExist)
}

// MkdirAll records dir; it exists only for Stat.
func (m *MemFS) MkdirAll(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.image != nil {
		return fmt.Errorf("blob: mkdir %s: %w", dir, ErrCrashed)
	}
	m.dirs[filepath.Clean(dir)] = true
	return nil
}

// Remove removes a file (durable at once) or a recorded directory. Open
// handles keep working on the removed contents.
func (m *MemFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := filepath.Clean(name)
	switch {
	case m.image != nil:
		return fmt.Errorf("blob: remove %s: %w", name, ErrCrashed)
	case m.files[key] != nil:
		delete(m.files, key)
	case m.dirs[key]:
		delete(m.dirs, key)
	default:
		return fmt.Errorf("blob: remove %s: %w", name, fs.ErrNotExist)
	}
	return nil
}

// SyncDir does nothing, since creations and removals are durable at once.
func (m *MemFS) SyncDir(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.image != nil {
		return fmt.Errorf("blob: sync dir %s: %w", dir, ErrCrashed)
	}
	return nil
}

// Lock takes the in-process exclusive lock name, creating the file name as
// OSFS does.
func (m *MemFS) Lock(name string) (io.Closer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := filepath.Clean(name)
	switch {
	case m.image != nil:
		return nil, fmt.Errorf("blob: lock %s: %w", name, ErrCrashed)
	case m.locks[key] != nil:
		return nil, fmt.Errorf("blob: lock %s: %w", name, ErrLocked)
	}
	if m.files[key] == nil {
		m.files[key] = newMemData()
	}
	l := &memLock{fs: m, name: name, key: key}
	m.locks[key] = l
	return l, nil
}

// memLock is a held MemFS lock.
type memLock struct {
	fs        *MemFS
	name, key string
}

func (l *memLock) Close() error {
	l.fs.mu.Lock()
	defer l.fs.mu.Unlock()
	switch {
	case l.fs.image != nil:
		return fmt.Errorf("blob: unlock %s: %w", l.name, ErrCrashed)
	case l.fs.locks[l.key] != l:
		return fmt.Errorf("blob: unlock %s: %w", l.name, os.ErrClosed)
	}
	delete(l.fs.locks, l.key)
	return nil
}

// memFile is an open MemFS file.
type memFile struct {
	fs     *MemFS
	name   string   // as opened, for messages
	key    string   // cleaned, for InjectFile
	d      *memData // guarded by fs.mu
	closed bool     // guarded by fs.mu
}

var _ File = (*memFile)(nil)

// begin does what every file operation does first, with f.fs.mu held:
// refuse a dead FS, a closed file or invalid arguments, then count the
// operation and fire armed crashes and faults.
func (f *memFile) begin(op Op, invalid bool) error {
	switch {
	case f.fs.image != nil:
		return ErrCrashed
	case f.closed:
		return os.ErrClosed
	case invalid:
		return fs.ErrInvalid
	}
	return f.fs.step(op, f.key)
}

func (f *memFile) Name() string { return f.name }

// ReadAt copies out current contents; a read past the end returns the
// bytes before it and an error wrapping io.EOF.
func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.begin(OpRead, off < 0); err != nil {
		return 0, fmt.Errorf("blob: read %s at %d: %w", f.name, off, err)
	}
	if n := f.d.read(p, off); n < len(p) {
		return n, fmt.Errorf("blob: read %s at %d: %w", f.name, off, io.EOF)
	}
	return len(p), nil
}

// WriteAt copies p in, growing the file if needed.
func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	err := f.begin(OpWrite, off < 0)
	n := len(p)
	if errors.Is(err, ErrShortWrite) {
		n = len(p) / 2 / BlockSize * BlockSize
	} else if err != nil {
		n = 0
	}
	f.d.write(p[:n], off)
	if err != nil {
		return n, fmt.Errorf("blob: write %s at %d: %w", f.name, off, err)
	}
	return n, nil
}

// Sync makes the current contents and size durable. An injected failure
// drops the changes instead (see MemFS).
func (f *memFile) Sync() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.begin(OpSync, false); err != nil {
		if f.fs.image == nil && !errors.Is(err, os.ErrClosed) {
			f.d.drop()
		}
		return fmt.Errorf("blob: sync %s: %w", f.name, err)
	}
	f.d.sync()
	return nil
}

func (f *memFile) Size() (int64, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	switch {
	case f.fs.image != nil:
		return 0, fmt.Errorf("blob: size %s: %w", f.name, ErrCrashed)
	case f.closed:
		return 0, fmt.Errorf("blob: size %s: %w", f.name, os.ErrClosed)
	}
	return f.d.size, nil
}

func (f *memFile) Truncate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.begin(OpTruncate, size < 0); err != nil {
		return fmt.Errorf("blob: truncate %s to %d: %w", f.name, size, err)
	}
	f.d.truncate(size)
	return nil
}

// Punch zeroes [off, off+n) within the current size.
func (f *memFile) Punch(off, n int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.begin(OpPunch, off < 0 || n < 0); err != nil {
		return fmt.Errorf("blob: punch %s at %d+%d: %w", f.name, off, n, err)
	}
	f.d.punch(off, n)
	return nil
}

func (f *memFile) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	switch {
	case f.fs.image != nil:
		return fmt.Errorf("blob: close %s: %w", f.name, ErrCrashed)
	case f.closed:
		return fmt.Errorf("blob: close %s: %w", f.name, os.ErrClosed)
	}
	f.closed = true
	return nil
}

// memBlock is one BlockSize block of a MemFS file.
type memBlock [BlockSize]byte

// memData is the contents of one MemFS file, guarded by the mutex of the
// MemFS that holds it. A block missing from a map reads as zeros, so sparse
// files cost nothing. Blocks in cur are updated in place; blocks in durable
// are never modified once stored (Sync stores copies), so crash images may
// share them. Bytes past size are zero in every block.
//
// Invariant: a block not in dirty reads the same in cur and in durable.
type memData struct {
	size, durableSize int64
	cur, durable      map[int64]*memBlock
	dirty             map[int64]bool
}

func newMemData() *memData {
	return &memData{
		cur:     make(map[int64]*memBlock),
		durable: make(map[int64]*memBlock),
		dirty:   make(map[int64]bool),
	}
}

// read copies the current bytes at off into p and returns how many there
// were before the end.
func (d *memData) read(p []byte, off int64) int {
	end := min(off+int64(len(p)), d.size)
	for pos := off; pos < end; {
		b, o := pos/BlockSize, pos%BlockSize
		dst := p[pos-off : min(end, (b+1)*BlockSize)-off]
		if blk := d.cur[b]; blk != nil {
			copy(dst, blk[o:])
		} else {
			clear(dst)
		}
		pos += int64(len(dst))
	}
	return int(max(end-off, 0))
}

func (d *memData) write(p []byte, off int64) {
	if len(p) == 0 {
		return
	}
	d.size = max(d.size, off+int64(len(p)))
	for len(p) > 0 {
		b, o := off/BlockSize, off%BlockSize
		blk := d.cur[b]
		if blk == nil {
			blk = new(memBlock)
			d.cur[b] = blk
		}
		n := copy(blk[o:], p)
		d.dirty[b] = true
		p, off = p[n:], off+int64(n)
	}
}

func (d *memData) sync() {
	for b := range d.dirty {
		if blk := d.cur[b]; blk != nil {
			c := *blk
			d.durable[b] = &c
		} else {
			delete(d.durable, b)
		}
	}
	clear(d.dirty)
	d.durableSize = d.size
}

// drop forgets every change since the last sync, as a failed writeback
// does: changed blocks read as their durable contents and the size is the
// durable size.
func (d *memData) drop() {
	for b := range d.dirty {
		if blk := d.durable[b]; blk != nil {
			c := *blk
			d.cur[b] = &c
		} else {
			delete(d.cur, b)
		}
	}
	clear(d.dirty)
	d.size = d.durableSize
}

// truncate sets the size. Growing changes no block; shrinking drops or
// zero-fills the blocks past the new end.
func (d *memData) truncate(size int64) {
	if size < d.size {
		d.punch(size, d.size-size)
	}
	d.size = size
}

// punch zeroes [off, off+n) within the size, dropping whole blocks.
func (d *memData) punch(off, n int64) {
	end := min(off+n, d.size)
	if off >= end {
		return
	}
	zero := func(b int64) {
		blk := d.cur[b]
		if blk == nil {
			return // zeros already, and durable too unless dirty
		}
		lo, hi := max(off-b*BlockSize, 0), min(end-b*BlockSize, BlockSize)
		if lo == 0 && hi == BlockSize {
			delete(d.cur, b)
		} else {
			clear(blk[lo:hi])
		}
		d.dirty[b] = true
	}
	first, last := off/BlockSize, (end-1)/BlockSize
	if last-first < int64(len(d.cur)) {
		for b := first; b <= last; b++ {
			zero(b)
		}
		return
	}
	// A range wider than the allocated blocks: visit those instead.
	for b := range d.cur {
		if b >= first && b <= last {
			zero(b)
		}
	}
}

// crash returns what a power cut leaves of d: the durable blocks, with each
// dirty block replaced by its current version on a coin toss (in block
// order, so the outcome depends only on rng). The size is the durable size,
// grown to cover the kept blocks.
func (d *memData) crash(rng *rand.Rand) *memData {
	img := newMemData()
	maps.Copy(img.durable, d.durable)
	size := d.durableSize
	for _, b := range slices.Sorted(maps.Keys(d.dirty)) {
		if rng.IntN(2) == 0 {
			continue // the old block survived
		}
		if blk := d.cur[b]; blk != nil {
			c := *blk
			img.durable[b] = &c
		} else {
			delete(img.durable, b)
		}
		if b*BlockSize < d.size {
			size = max(size, min(d.size, (b+1)*BlockSize))
		}
	}
	img.size, img.durableSize = size, size
	for b, blk := range img.durable {
		c := *blk
		img.cur[b] = &c
	}
	return img
}
