package blob

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"unsafe"

	"github.com/ncw/directio"
	"golang.org/x/sys/unix"
)

// ErrUnaligned is returned (wrapped) when a file opened with O_DIRECT is
// given an offset or write length that is not a multiple of BlockSize: the
// kernel would refuse it, and the engine promises never to ask for it.
var ErrUnaligned = errors.New("offset or length not a multiple of BlockSize")

// OSFS is the FS of real files.
type OSFS struct {
	// Direct opens files with O_DIRECT so that engine I/O bypasses the page
	// cache. Files on filesystems that refuse O_DIRECT are opened buffered.
	Direct bool
}

var _ FS = (*OSFS)(nil)

// NewOSFS returns an OSFS; direct asks for O_DIRECT.
func NewOSFS(direct bool) *OSFS { return &OSFS{Direct: direct} }

// openDirect opens with O_DIRECT; tests replace it to simulate a filesystem
// without O_DIRECT.
var openDirect = directio.OpenFile

// Create creates name with mode 0o600; it fails if name exists.
func (o *OSFS) Create(name string) (File, error) {
	return o.open("create", name, os.O_RDWR|os.O_CREATE|os.O_EXCL)
}

// Open opens the existing file name for reading and writing.
func (o *OSFS) Open(name string) (File, error) {
	return o.open("open", name, os.O_RDWR)
}

func (o *OSFS) open(op, name string, flag int) (File, error) {
	if o.Direct {
		f, err := openDirect(name, flag, 0o600)
		if err == nil {
			rf, err := os.Open(name)
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("blob: %s %s: %w", op, name, osErr(err))
			}
			return &osFile{f: f, name: name, direct: true, rf: rf}, nil
		}
		if !errors.Is(err, unix.EINVAL) {
			return nil, fmt.Errorf("blob: %s %s: %w", op, name, osErr(err))
		}
		// The filesystem has no O_DIRECT. Linux reports that only after
		// creating the file, so an exclusive create would now see our own
		// file: drop O_EXCL (the failed open already did the exclusive part).
		flag &^= os.O_EXCL
	}
	f, err := os.OpenFile(name, flag, 0o600)
	if err != nil {
		return nil, fmt.Errorf("blob: %s %s: %w", op, name, osErr(err))
	}
	return &osFile{f: f, name: name}, nil
}

// Stat returns the size of name; a missing file gives an error for which
// errors.Is(err, fs.ErrNotExist) holds.
func (o *OSFS) Stat(name string) (int64, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return 0, fmt.Errorf("blob: stat %s: %w", name, osErr(err))
	}
	return fi.Size(), nil
}

// MkdirAll creates dir and its parents with mode 0o700.
func (o *OSFS) MkdirAll(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("blob: mkdir %s: %w", dir, osErr(err))
	}
	return nil
}

// Remove removes name.
func (o *OSFS) Remove(name string) error {
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("blob: remove %s: %w", name, osErr(err))
	}
	return nil
}

// SyncDir fsyncs dir, which makes the creation and removal of its entries
// durable.
func (o *OSFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err == nil {
		err = d.Sync()
		if cerr := d.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("blob: sync dir %s: %w", dir, osErr(err))
	}
	return nil
}

// Lock creates name if needed and takes a non-blocking exclusive flock on
// it. flock belongs to the open file description, so a second Lock of the
// same file fails even from the same process.
func (o *OSFS) Lock(name string) (io.Closer, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("blob: lock %s: %w", name, osErr(err))
	}
	err = withFd(f, func(fd int) error { return unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) })
	if err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			err = ErrLocked
		}
		return nil, fmt.Errorf("blob: lock %s: %w", name, err)
	}
	return &osLock{f: f}, nil
}

// osLock is a held flock; Close releases it.
type osLock struct{ f *os.File }

func (l *osLock) Close() error {
	err := withFd(l.f, func(fd int) error { return unix.Flock(fd, unix.LOCK_UN) })
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("blob: unlock %s: %w", l.f.Name(), osErr(err))
	}
	return nil
}

// osFile is an open real file. Its fields are set at open and never change,
// so it is safe for concurrent use.
type osFile struct {
	f      *os.File
	name   string
	direct bool // opened with O_DIRECT
	// rf, for a direct file, is a second, buffered descriptor for reads
	// shorter than DirectReadMin: writes bypass the page cache, such reads
	// may use it (a direct write invalidates the cached pages it covers),
	// and they need no alignment.
	rf *os.File
}

// DirectReadMin is the shortest read of a direct file that bypasses the
// page cache too: a long read gains nothing from it and pays for filling
// it (with a cold cache, 1 MiB sequential reads through the filesystem
// spent 77% of the daemon's time in buffered pread).
const DirectReadMin = 128 << 10

var _ File = (*osFile)(nil)

// Direct reports whether the file was opened with O_DIRECT; it is false
// when O_DIRECT was not asked for or the filesystem refused it.
func (f *osFile) Direct() bool { return f.direct }

func (f *osFile) Name() string { return f.name }

// ReadAt reads len(p) bytes at off; a read that reaches the end of the file
// early returns the count read and an error wrapping io.EOF.
func (f *osFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.readAt(p, off)
	if err != nil {
		return n, fmt.Errorf("blob: read %s at %d: %w", f.name, off, osErr(err))
	}
	return n, nil
}

func (f *osFile) readAt(p []byte, off int64) (int, error) {
	if f.rf != nil && (len(p) < DirectReadMin || off%BlockSize != 0) {
		return f.rf.ReadAt(p, off)
	}
	if !f.direct || len(p) == 0 {
		return f.f.ReadAt(p, off)
	}
	if off%BlockSize != 0 {
		return 0, ErrUnaligned
	}
	if isAligned(p) && len(p)%BlockSize == 0 {
		return f.f.ReadAt(p, off)
	}
	// Read whole blocks into an aligned buffer; reading past len(p) is
	// harmless, and a short read there is not an error.
	buf, bp := getAligned((len(p) + BlockSize - 1) / BlockSize * BlockSize)
	defer putAligned(bp)
	n, err := f.f.ReadAt(buf, off)
	copy(p, buf[:n])
	if n >= len(p) {
		return len(p), nil
	}
	return n, err
}

// WriteAt writes p at off. With O_DIRECT, off and len(p) must be multiples
// of BlockSize; p itself may have any alignment.
func (f *osFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.writeAt(p, off)
	if err != nil {
		return n, fmt.Errorf("blob: write %s at %d: %w", f.name, off, osErr(err))
	}
	return n, nil
}

func (f *osFile) writeAt(p []byte, off int64) (int, error) {
	if !f.direct || len(p) == 0 {
		return f.f.WriteAt(p, off)
	}
	if off%BlockSize != 0 || len(p)%BlockSize != 0 {
		return 0, ErrUnaligned
	}
	if isAligned(p) {
		return f.f.WriteAt(p, off)
	}
	buf, bp := getAligned(len(p))
	defer putAligned(bp)
	copy(buf, p)
	return f.f.WriteAt(buf, off)
}

// Sync makes completed writes durable with fdatasync: the engine needs the
// data and the size, not the timestamps.
func (f *osFile) Sync() error {
	if err := withFd(f.f, unix.Fdatasync); err != nil {
		return fmt.Errorf("blob: sync %s: %w", f.name, osErr(err))
	}
	return nil
}

func (f *osFile) Size() (int64, error) {
	fi, err := f.f.Stat()
	if err != nil {
		return 0, fmt.Errorf("blob: size %s: %w", f.name, osErr(err))
	}
	return fi.Size(), nil
}

func (f *osFile) Truncate(size int64) error {
	if err := f.f.Truncate(size); err != nil {
		return fmt.Errorf("blob: truncate %s to %d: %w", f.name, size, osErr(err))
	}
	return nil
}

// Punch deallocates [off, off+n) without changing the size. Filesystems
// that cannot punch holes get zeros written instead, which reads the same.
func (f *osFile) Punch(off, n int64) error {
	err := withFd(f.f, func(fd int) error {
		return unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	})
	if errors.Is(err, unix.EOPNOTSUPP) {
		err = f.writeZeros(off, n)
	}
	if err != nil {
		return fmt.Errorf("blob: punch %s at %d+%d: %w", f.name, off, n, osErr(err))
	}
	return nil
}

// writeZeros zeroes [off, off+n), clipped to the current size as a punch
// with KEEP_SIZE would be.
func (f *osFile) writeZeros(off, n int64) error {
	fi, err := f.f.Stat()
	if err != nil {
		return err
	}
	end := min(off+n, fi.Size())
	zeros, bp := getAligned(alignedPoolSize)
	defer putAligned(bp)
	clear(zeros)
	for off < end {
		chunk := zeros[:min(int64(len(zeros)), end-off)]
		if _, err := f.writeAt(chunk, off); err != nil {
			return err
		}
		off += int64(len(chunk))
	}
	return nil
}

func (f *osFile) Close() error {
	if f.rf != nil {
		f.rf.Close()
	}
	if err := f.f.Close(); err != nil {
		return fmt.Errorf("blob: close %s: %w", f.name, osErr(err))
	}
	return nil
}

// alignedPoolSize is the size of the pooled aligned buffers; bigger I/O
// allocates its own buffer, since it is rare and would pin memory.
const alignedPoolSize = 1 << 20

// alignedPool holds *[]byte of alignedPoolSize bytes aligned for O_DIRECT.
var alignedPool = sync.Pool{New: func() any {
	b := directio.AlignedBlock(alignedPoolSize)
	return &b
}}

// getAligned returns an aligned buffer of n bytes and, when it came from
// alignedPool, the pool entry to hand back with putAligned.
func getAligned(n int) ([]byte, *[]byte) {
	if n > alignedPoolSize {
		return directio.AlignedBlock(n), nil
	}
	bp := alignedPool.Get().(*[]byte)
	return (*bp)[:n], bp
}

func putAligned(bp *[]byte) {
	if bp != nil {
		alignedPool.Put(bp)
	}
}

// isAligned reports whether p starts on an O_DIRECT memory boundary.
func isAligned(p []byte) bool {
	return uintptr(unsafe.Pointer(unsafe.SliceData(p)))&(directio.AlignSize-1) == 0
}

// withFd runs fn on f's descriptor, which stays open meanwhile even if
// another goroutine closes f.
func withFd(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// osErr drops the *fs.PathError that package os adds: our messages already
// name the file, and errors.Is still sees the errno.
func osErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// AlignedBuffer returns a zeroed buffer of n bytes aligned for O_DIRECT,
// so that a write of it needs no bounce copy.
func AlignedBuffer(n int) []byte { return directio.AlignedBlock(n) }
