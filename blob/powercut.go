package blob

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// PowerCutFS is an FS of real files that keeps every write not yet synced
// in this process's memory, so that killing the process (SIGKILL) leaves
// the files as a power cut would: synced blocks survive, unsynced ones are
// lost, except a few that a background trickle wrote through early, and a
// Sync cut short leaves a random subset of its blocks.
//
// It is for out-of-process crash tests: the daemon serving a mount runs
// over a PowerCutFS, the test kills it at a random moment, and whatever the
// files then hold is what the next open recovers from.
//
// Each file has an overlay of BlockSize blocks written (or punched) since
// its last Sync; ReadAt sees the overlay over the file. Sync writes the
// overlay blocks to the file one by one in a seeded random order, then
// fdatasyncs, so a kill during Sync keeps a random subset of them (torn at
// block granularity). Truncate is staged too: the lowest size a file was
// cut to since its last Sync masks what the file holds beyond it, and Sync
// applies it before writing the blocks. A seeded fraction of written blocks
// is also handed to a trickle goroutine that writes them through (without
// sync) after a short random delay, so that a kill also keeps some unsynced
// blocks.
//
// A failed Sync (the host's error or an injected one, see Inject) drops
// the blocks it had taken from the overlay, as Linux writeback does: those
// it had already written through stay on the host unsynced, the others are
// lost, and no later Sync writes them.
//
// Files are opened buffered (no O_DIRECT: writes are staged anyway), and
// every handle of one path shares one overlay, which outlives the last
// Close while it holds unsynced blocks, as a page cache would. Creating,
// removing and locking files and directories go straight to the host, so
// they are durable at once.
//
// PowerCutFS is safe for concurrent use.
type PowerCutFS struct {
	host *OSFS

	mu      sync.Mutex
	rng     *rand.Rand         // guarded by mu
	files   map[string]*pcData // open (or still staged) files by cleaned path; guarded by mu
	trickle float64            // share of written blocks trickled early; guarded by mu
	faults  []*memFault        // armed injections, oldest first; guarded by mu

	queue    chan pcTrickle
	stop     chan struct{}
	stopOnce sync.Once
}

var _ FS = (*PowerCutFS)(nil)

// NewPowerCutFS returns a PowerCutFS whose choices (sync order, trickled
// blocks and their delays, the trickle fraction itself, from 5% to 30%)
// derive from seed. Close stops its trickle goroutine.
func NewPowerCutFS(seed int64) *PowerCutFS {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x706f776572637574))
	p := &PowerCutFS{
		host:    NewOSFS(false),
		rng:     rng,
		files:   make(map[string]*pcData),
		trickle: 0.05 + 0.25*rng.Float64(),
		queue:   make(chan pcTrickle, 4096),
		stop:    make(chan struct{}),
	}
	go p.trickler()
	return p
}

// SetTrickle sets the share (0 to 1) of written blocks that the trickle
// writes through before any Sync; 0 turns it off.
func (p *PowerCutFS) SetTrickle(fraction float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.trickle = min(max(fraction, 0), 1)
}

// Trickle returns the share of written blocks trickled early.
func (p *PowerCutFS) Trickle() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.trickle
}

// Inject makes the n-th operation of kind op from now, on any file, fail
// with err, as MemFS.Inject does (a failed Sync also drops what it had
// staged); InjectFile counts only operations on name.
func (p *PowerCutFS) Inject(op Op, n int, err error) { p.InjectFile("", op, n, err) }

// InjectFile is Inject counting only operations on the file name; an empty
// name means any file.
func (p *PowerCutFS) InjectFile(name string, op Op, n int, err error) {
	if err == nil {
		panic("blob: PowerCutFS.Inject with a nil error")
	}
	if name != "" {
		name = filepath.Clean(name)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = append(p.faults, &memFault{op: op, file: name, left: max(n, 1), err: err})
}

// fire counts one operation op on the file name against the armed faults
// and returns the injected error, if one fires now.
func (p *PowerCutFS) fire(op Op, name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.faults) == 0 {
		return nil
	}
	var err error
	p.faults, err = fireFaults(p.faults, op, filepath.Clean(name))
	return err
}

// Close stops the trickle; blocks it had not written yet stay staged. The
// files stay usable.
func (p *PowerCutFS) Close() error {
	p.stopOnce.Do(func() { close(p.stop) })
	return nil
}

// Create creates name on the host; it fails if name exists.
func (p *PowerCutFS) Create(name string) (File, error) {
	f, err := p.host.Create(name)
	if err != nil {
		return nil, err
	}
	d := newPCData(f, 0)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.files[filepath.Clean(name)] = d
	return &pcFile{fs: p, d: d, name: name}, nil
}

// Open opens an existing file, sharing the overlay of its other handles.
func (p *PowerCutFS) Open(name string) (File, error) {
	key := filepath.Clean(name)
	p.mu.Lock()
	if d := p.files[key]; d != nil {
		d.mu.Lock()
		d.refs++
		d.mu.Unlock()
		p.mu.Unlock()
		return &pcFile{fs: p, d: d, name: name}, nil
	}
	p.mu.Unlock()

	f, err := p.host.Open(name)
	if err != nil {
		return nil, err
	}
	size, err := f.Size()
	if err != nil {
		f.Close()
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if d := p.files[key]; d != nil { // opened meanwhile
		f.Close()
		d.mu.Lock()
		d.refs++
		d.mu.Unlock()
		return &pcFile{fs: p, d: d, name: name}, nil
	}
	d := newPCData(f, size)
	p.files[key] = d
	return &pcFile{fs: p, d: d, name: name}, nil
}

// Stat returns the size of name as its handles see it.
func (p *PowerCutFS) Stat(name string) (int64, error) {
	p.mu.Lock()
	d := p.files[filepath.Clean(name)]
	p.mu.Unlock()
	if d != nil {
		d.mu.RLock()
		defer d.mu.RUnlock()
		return d.size, nil
	}
	return p.host.Stat(name)
}

// MkdirAll creates dir on the host.
func (p *PowerCutFS) MkdirAll(dir string) error { return p.host.MkdirAll(dir) }

// Remove removes name on the host; open handles keep working on the
// removed file and its overlay.
func (p *PowerCutFS) Remove(name string) error {
	if err := p.host.Remove(name); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.files, filepath.Clean(name))
	return nil
}

// SyncDir fsyncs dir on the host.
func (p *PowerCutFS) SyncDir(dir string) error { return p.host.SyncDir(dir) }

// Lock takes a host flock, as OSFS does.
func (p *PowerCutFS) Lock(name string) (io.Closer, error) { return p.host.Lock(name) }

// chance reports a seeded coin toss that comes up with the trickle
// fraction's probability.
func (p *PowerCutFS) chance() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.trickle > 0 && p.rng.Float64() < p.trickle
}

// shuffle puts s in a seeded random order.
func (p *PowerCutFS) shuffle(s []pcStaged) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rng.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
}

// delay returns a seeded random trickle delay, up to 2 ms.
func (p *PowerCutFS) delay() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return time.Duration(p.rng.Int64N(int64(2 * time.Millisecond)))
}

// forget drops d from the open files once its last handle is closed and
// nothing is staged, closing its host file.
func (p *PowerCutFS) forget(d *pcData, key string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.refs > 0 || len(d.blocks) > 0 || d.cut >= 0 || d.closed {
		return nil
	}
	if p.files[key] == d {
		delete(p.files, key)
	}
	d.closed = true
	return d.f.Close()
}

// pcTrickle is one block queued for early write-through.
type pcTrickle struct {
	d *pcData
	b int64
}

// trickler writes queued blocks through, without sync, until Close.
func (p *PowerCutFS) trickler() {
	for {
		select {
		case <-p.stop:
			return
		case t := <-p.queue:
			select {
			case <-p.stop:
				return
			case <-time.After(p.delay()):
			}
			// An error here is the host's; the next Sync meets it too.
			_ = t.d.writeThrough(t.b)
		}
	}
}

// pcBlock is one staged block. A frozen block is being written to the host
// and is never changed in place again: writers replace it with a copy.
type pcBlock struct {
	data   *[BlockSize]byte // nil: zeros (punched)
	frozen bool
}

// pcStaged is a staged block taken by a write-out.
type pcStaged struct {
	b   int64
	blk *pcBlock
}

// pcData is the state of one file shared by its handles.
//
// Invariants: bytes past size read as zeros, in staged blocks and (through
// cut) in the host file; with no cut pending the host file is no longer
// than size.
type pcData struct {
	// out serialises write-outs to the host file (Sync and the trickle), so
	// that a stale trickled block cannot land after a Sync that superseded
	// it.
	out sync.Mutex

	mu     sync.RWMutex
	f      File               // the host file; guarded by mu (closed)
	blocks map[int64]*pcBlock // staged blocks; guarded by mu
	size   int64              // the size handles see; guarded by mu
	cut    int64              // lowest size truncated to since the last Sync, or -1; guarded by mu
	cuts   uint64             // Truncate calls that cut, for Sync to see new ones; guarded by mu
	refs   int                // open handles; guarded by mu
	closed bool               // host file closed; guarded by mu
}

func newPCData(f File, size int64) *pcData {
	return &pcData{f: f, blocks: make(map[int64]*pcBlock), size: size, cut: -1, refs: 1}
}

// readHost reads [off, off+len(p)) of the host file into p, as the handles
// see it where nothing is staged: zeros past the end of the host file, past
// a pending cut and past size. d.mu must be held (for reading at least).
func (d *pcData) readHost(p []byte, off int64) error {
	n, err := d.f.ReadAt(p, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	clear(p[n:])
	limit := d.size
	if d.cut >= 0 {
		limit = min(limit, d.cut)
	}
	if end := off + int64(len(p)); end > limit {
		clear(p[max(limit-off, 0):])
	}
	return nil
}

// staged returns block b for changing, creating it from the host contents
// (when whole is false: the caller overwrites only part of it) or replacing
// a frozen or punched one. d.mu must be held.
func (d *pcData) staged(b int64, whole bool) (*pcBlock, error) {
	blk := d.blocks[b]
	switch {
	case blk == nil:
		blk = &pcBlock{data: new([BlockSize]byte)}
		if !whole {
			if err := d.readHost(blk.data[:], b*BlockSize); err != nil {
				return nil, err
			}
		}
		d.blocks[b] = blk
	case blk.data == nil:
		blk = &pcBlock{data: new([BlockSize]byte)}
		d.blocks[b] = blk
	case blk.frozen:
		c := *blk.data
		blk = &pcBlock{data: &c}
		d.blocks[b] = blk
	}
	return blk, nil
}

// writeThrough writes staged block b to the host file, without sync,
// keeping it staged.
func (d *pcData) writeThrough(b int64) error {
	d.out.Lock()
	defer d.out.Unlock()
	d.mu.Lock()
	blk := d.blocks[b]
	if blk == nil || d.closed {
		d.mu.Unlock()
		return nil
	}
	blk.frozen = true
	size := d.size
	d.mu.Unlock()
	return d.put(pcStaged{b, blk}, size)
}

// put writes one staged block to the host file, clipped to size. d.out
// must be held, and blk frozen.
func (d *pcData) put(s pcStaged, size int64) error {
	off := s.b * BlockSize
	if off >= size {
		return nil
	}
	n := min(size-off, BlockSize)
	var zeros [BlockSize]byte
	data := zeros[:n]
	if s.blk.data != nil {
		data = s.blk.data[:n]
	}
	_, err := d.f.WriteAt(data, off)
	return err
}

// pcFile is a handle of a PowerCutFS file.
type pcFile struct {
	fs   *PowerCutFS
	d    *pcData
	name string

	mu     sync.Mutex
	closed bool // guarded by mu
}

var _ File = (*pcFile)(nil)

func (f *pcFile) Name() string { return f.name }

func (f *pcFile) isClosed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}

// ReadAt reads the staged blocks over the host file; a read past the end
// returns the bytes before it and an error wrapping io.EOF.
func (f *pcFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.readAt(p, off)
	if err != nil {
		return n, fmt.Errorf("blob: read %s at %d: %w", f.name, off, err)
	}
	return n, nil
}

func (f *pcFile) readAt(p []byte, off int64) (int, error) {
	switch {
	case f.isClosed():
		return 0, os.ErrClosed
	case off < 0:
		return 0, fs.ErrInvalid
	}
	if err := f.fs.fire(OpRead, f.name); err != nil {
		return 0, err
	}
	d := f.d
	d.mu.RLock()
	defer d.mu.RUnlock()
	end := min(off+int64(len(p)), d.size)
	pos := off
	for pos < end {
		b := pos / BlockSize
		if blk := d.blocks[b]; blk != nil {
			dst := p[pos-off : min(end, (b+1)*BlockSize)-off]
			if blk.data != nil {
				copy(dst, blk.data[pos-b*BlockSize:])
			} else {
				clear(dst)
			}
			pos += int64(len(dst))
			continue
		}
		// A run of unstaged blocks: one host read.
		runEnd := (b + 1) * BlockSize
		for runEnd < end && d.blocks[runEnd/BlockSize] == nil {
			runEnd += BlockSize
		}
		runEnd = min(runEnd, end)
		if err := d.readHost(p[pos-off:runEnd-off], pos); err != nil {
			return int(pos - off), err
		}
		pos = runEnd
	}
	n := int(max(end-off, 0))
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// WriteAt stages p at off, growing the file if needed.
func (f *pcFile) WriteAt(p []byte, off int64) (int, error) {
	if f.isClosed() {
		return 0, fmt.Errorf("blob: write %s at %d: %w", f.name, off, os.ErrClosed)
	}
	n := len(p)
	fault := f.fs.fire(OpWrite, f.name)
	if errors.Is(fault, ErrShortWrite) {
		n = len(p) / 2 / BlockSize * BlockSize
	} else if fault != nil {
		n = 0
	}
	if err := f.writeAt(p[:n], off); err != nil {
		return 0, fmt.Errorf("blob: write %s at %d: %w", f.name, off, err)
	}
	if fault != nil {
		return n, fmt.Errorf("blob: write %s at %d: %w", f.name, off, fault)
	}
	return n, nil
}

func (f *pcFile) writeAt(p []byte, off int64) error {
	switch {
	case f.isClosed():
		return os.ErrClosed
	case off < 0:
		return fs.ErrInvalid
	case len(p) == 0:
		return nil
	}
	d := f.d
	var written []int64
	d.mu.Lock()
	for pos, rest := off, p; len(rest) > 0; {
		b, o := pos/BlockSize, pos%BlockSize
		n := min(int64(len(rest)), BlockSize-o)
		blk, err := d.staged(b, o == 0 && n == BlockSize)
		if err != nil {
			d.mu.Unlock()
			return err
		}
		copy(blk.data[o:], rest[:n])
		written = append(written, b)
		pos, rest = pos+n, rest[n:]
	}
	d.size = max(d.size, off+int64(len(p)))
	d.mu.Unlock()

	for _, b := range written {
		if f.fs.chance() {
			select {
			case f.fs.queue <- pcTrickle{d, b}:
			default: // the trickle is behind: skip this one
			}
		}
	}
	return nil
}

// Sync writes the staged blocks to the host file in a seeded random order
// after applying a pending cut, sets the host size, and fdatasyncs. Blocks
// changed while it runs stay staged for the next Sync.
func (f *pcFile) Sync() error {
	if err := f.sync(); err != nil {
		return fmt.Errorf("blob: sync %s: %w", f.name, err)
	}
	return nil
}

func (f *pcFile) sync() error {
	if f.isClosed() {
		return os.ErrClosed
	}
	d := f.d
	d.out.Lock()
	defer d.out.Unlock()
	if err := f.fs.fire(OpSync, f.name); err != nil {
		d.mu.Lock()
		staged := make([]pcStaged, 0, len(d.blocks))
		for b, blk := range d.blocks {
			staged = append(staged, pcStaged{b, blk})
		}
		d.dropLocked(staged)
		d.mu.Unlock()
		return err
	}

	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return os.ErrClosed
	}
	staged := make([]pcStaged, 0, len(d.blocks))
	for b, blk := range d.blocks {
		blk.frozen = true
		staged = append(staged, pcStaged{b, blk})
	}
	size, cut, cuts := d.size, d.cut, d.cuts
	d.mu.Unlock()

	// Map order is random but not seeded: sort, then shuffle with the seed.
	slices.SortFunc(staged, func(a, b pcStaged) int { return int(a.b - b.b) })
	f.fs.shuffle(staged)

	err := d.writeOut(staged, size, cut)
	d.mu.Lock()
	defer d.mu.Unlock()
	// Done or failed, the blocks taken leave the overlay: written and
	// synced, or dropped as a failed writeback drops them.
	d.dropLocked(staged)
	if err == nil && d.cuts == cuts {
		d.cut = -1
	}
	return err
}

// writeOut applies a pending cut, writes the staged blocks and the size to
// the host file and fdatasyncs it. d.out must be held.
func (d *pcData) writeOut(staged []pcStaged, size, cut int64) error {
	if cut >= 0 {
		if err := d.f.Truncate(cut); err != nil {
			return err
		}
	}
	for _, s := range staged {
		if err := d.put(s, size); err != nil {
			return err
		}
	}
	hostSize, err := d.f.Size()
	if err != nil {
		return err
	}
	if hostSize != size {
		if err := d.f.Truncate(size); err != nil {
			return err
		}
	}
	return d.f.Sync()
}

// dropLocked removes the staged blocks of staged from the overlay, unless
// a write replaced them since. d.mu must be held.
func (d *pcData) dropLocked(staged []pcStaged) {
	for _, s := range staged {
		if d.blocks[s.b] == s.blk {
			delete(d.blocks, s.b)
		}
	}
}

// Size returns the size handles see.
func (f *pcFile) Size() (int64, error) {
	if f.isClosed() {
		return 0, fmt.Errorf("blob: size %s: %w", f.name, os.ErrClosed)
	}
	f.d.mu.RLock()
	defer f.d.mu.RUnlock()
	return f.d.size, nil
}

// Truncate stages a size change; Sync applies it.
func (f *pcFile) Truncate(size int64) error {
	switch {
	case f.isClosed():
		return fmt.Errorf("blob: truncate %s to %d: %w", f.name, size, os.ErrClosed)
	case size < 0:
		return fmt.Errorf("blob: truncate %s to %d: %w", f.name, size, fs.ErrInvalid)
	}
	if err := f.fs.fire(OpTruncate, f.name); err != nil {
		return fmt.Errorf("blob: truncate %s to %d: %w", f.name, size, err)
	}
	d := f.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if size < d.size {
		for b, blk := range d.blocks {
			switch {
			case b*BlockSize >= size:
				delete(d.blocks, b)
			case (b+1)*BlockSize > size && blk.data != nil:
				nb, err := d.staged(b, false)
				if err != nil {
					return fmt.Errorf("blob: truncate %s to %d: %w", f.name, size, err)
				}
				clear(nb.data[size-b*BlockSize:])
			}
		}
		if d.cut < 0 || size < d.cut {
			d.cut = size
		}
		d.cuts++
	}
	d.size = size
	return nil
}

// Punch stages zeros over [off, off+n) within the size.
func (f *pcFile) Punch(off, n int64) error {
	switch {
	case f.isClosed():
		return fmt.Errorf("blob: punch %s at %d+%d: %w", f.name, off, n, os.ErrClosed)
	case off < 0 || n < 0:
		return fmt.Errorf("blob: punch %s at %d+%d: %w", f.name, off, n, fs.ErrInvalid)
	}
	if err := f.fs.fire(OpPunch, f.name); err != nil {
		return fmt.Errorf("blob: punch %s at %d+%d: %w", f.name, off, n, err)
	}
	d := f.d
	d.mu.Lock()
	defer d.mu.Unlock()
	end := min(off+n, d.size)
	for pos := off; pos < end; {
		b, o := pos/BlockSize, pos%BlockSize
		m := min(end-pos, BlockSize-o)
		if m == BlockSize {
			d.blocks[b] = &pcBlock{}
		} else {
			blk, err := d.staged(b, false)
			if err != nil {
				return fmt.Errorf("blob: punch %s at %d+%d: %w", f.name, off, n, err)
			}
			clear(blk.data[o : o+m])
		}
		pos += m
	}
	return nil
}

// Close closes the handle. The overlay stays until synced, so a later Open
// of the same path sees it.
func (f *pcFile) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return fmt.Errorf("blob: close %s: %w", f.name, os.ErrClosed)
	}
	f.closed = true
	f.mu.Unlock()
	f.d.mu.Lock()
	f.d.refs--
	f.d.mu.Unlock()
	if err := f.fs.forget(f.d, filepath.Clean(f.name)); err != nil {
		return fmt.Errorf("blob: close %s: %w", f.name, err)
	}
	return nil
}
