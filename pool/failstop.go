package pool

import (
	"errors"
	"fmt"
	"log"
	"path/filepath"
	"syscall"
	"time"

	"vosfs/blob"
)

// Failure is what stopped a pool: the first failed write or sync of one of
// its blobs (or a shutdown). Once it is set the pool is fail-stop: every
// later operation gets an error wrapping ErrFailed and the cause, and
// nothing more is written to any blob. A failed sync is never retried: the
// kernel may have dropped the pages it could not write, and a second sync
// that succeeds would say nothing about them.
type Failure struct {
	Blob  string        // base name of the blob ("wal.blob", ...); "" for a shutdown
	Op    string        // "write", "sync", "truncate", "punch", "checkpoint" or "shutdown"
	Off   int64         // byte offset of the failed write or punch, -1 if none
	Len   int64         // bytes of the failed write or punch
	Errno syscall.Errno // the host's errno, 0 if the cause carries none
	Cause string        // the cause's message (Err's, kept when Err is not at hand: a decoded copy)
	Err   error         `json:"-"` // the cause as the blob layer returned it
	Time  time.Time
}

// String describes the failure in one line, for the log and `vosfs stat`.
func (f *Failure) String() string {
	var where string
	switch {
	case f.Blob == "":
		where = f.Op
	case f.Off >= 0:
		where = fmt.Sprintf("%s of %s at offset %d (%d bytes)", f.Op, f.Blob, f.Off, f.Len)
	default:
		where = fmt.Sprintf("%s of %s", f.Op, f.Blob)
	}
	if f.Errno != 0 {
		return fmt.Sprintf("%s failed: errno %d (%s): %s", where, int(f.Errno), errnoName(f.Errno), f.Cause)
	}
	return fmt.Sprintf("%s: %s", where, f.Cause)
}

// errnoName is the symbolic name of the errnos a device or a full host
// filesystem returns; others print as their number only.
func errnoName(e syscall.Errno) string {
	switch e {
	case syscall.EIO:
		return "EIO"
	case syscall.ENOSPC:
		return "ENOSPC"
	case syscall.EDQUOT:
		return "EDQUOT"
	case syscall.EROFS:
		return "EROFS"
	case syscall.ENXIO:
		return "ENXIO"
	case syscall.ENODEV:
		return "ENODEV"
	}
	return e.Error()
}

// failedError is the error every operation of a failed pool returns: it
// is ErrFailed (errors.Is) and wraps the cause, so the host's errno stays
// visible to errors.Is as well.
type failedError struct {
	dir string
	f   *Failure
}

func (e *failedError) Error() string {
	if e.f.Op == "shutdown" {
		return fmt.Sprintf("pool %s is shut down: %v", e.dir, e.f.Err)
	}
	return fmt.Sprintf("pool %s stopped (fail-stop) after an I/O error: %s", e.dir, e.f)
}

func (e *failedError) Is(target error) bool { return target == ErrFailed }
func (e *failedError) Unwrap() error        { return e.f.Err }

// Failed returns the error that stopped the pool (wrapping ErrFailed and the
// cause), or nil while the pool runs. It takes no lock: callers may check it
// at the entry of every operation.
func (p *Pool) Failed() error {
	if e := p.failure.Load(); e != nil {
		return e
	}
	return nil
}

// Failure returns what stopped the pool, or nil while it runs.
func (p *Pool) Failure() *Failure {
	if e := p.failure.Load(); e != nil {
		f := *e.f
		return &f
	}
	return nil
}

// Err is Failed, under its older name.
func (p *Pool) Err() error { return p.Failed() }

// stop makes the pool fail-stop with f, unless it already is: the first
// failure is recorded, logged once and handed to the log, which then
// acknowledges nothing more. It returns the pool's failure (the first one).
func (p *Pool) stop(f *Failure) error {
	f.Time = time.Now()
	f.Cause = f.Err.Error()
	if f.Errno == 0 {
		var e syscall.Errno
		if errors.As(f.Err, &e) {
			f.Errno = e
		}
	}
	e := &failedError{dir: p.dir, f: f}
	// The gate's write lock waits for the blob mutations in flight (each
	// holds the read lock from its check to its end), so that once the
	// failure is set none is in flight and none can start.
	p.gate.Lock()
	first := p.failure.CompareAndSwap(nil, e)
	p.gate.Unlock()
	if !first {
		return p.failure.Load()
	}
	if f.Op == "shutdown" {
		p.logf("pool %s: shut down; it refuses every operation until it is opened again", p.dir)
	} else {
		p.logf("pool %s: FAIL-STOP: %s; the pool refuses every operation from now on and writes nothing more; what was acknowledged is durable and is recovered at the next mount", p.dir, f)
	}
	if p.log != nil {
		p.log.Fail(e)
	}
	return e
}

// stopOn makes the pool fail-stop on err, an error of a part of the pool
// that has no blob position of its own (the checkpointer), and returns the
// pool's failure. An error that already is the pool's failure changes
// nothing.
func (p *Pool) stopOn(op string, err error) error {
	if err := p.Failed(); err != nil {
		return err
	}
	return p.stop(&Failure{Op: op, Off: -1, Err: err})
}

func (p *Pool) logf(format string, args ...any) {
	if p.opts.Logf != nil {
		p.opts.Logf(format, args...)
		return
	}
	log.Printf(format, args...)
}

// guardedFile is a pool blob behind the fail-stop gate: once the pool has
// failed, no operation reaches the blob; a failed write, sync, truncate or
// punch stops the pool. A mutation holds the gate's read lock from its
// check of the failure to its end, and stop sets the failure under the
// write lock: no mutation reaches a blob once the pool has failed, not even
// one that checked just before. Reads that fail are counted and returned, and stop
// nothing: a read changes no state, and the reader gets the error.
type guardedFile struct {
	blob.File
	p    *Pool
	base string
}

func (p *Pool) guard(f blob.File) blob.File {
	return &guardedFile{File: f, p: p, base: filepath.Base(f.Name())}
}

func (g *guardedFile) ReadAt(b []byte, off int64) (int, error) {
	if err := g.p.Failed(); err != nil {
		return 0, err
	}
	n, err := g.File.ReadAt(b, off)
	if err != nil {
		g.p.count(func(s *Stats) { s.ReadErrors++ })
	}
	return n, err
}

func (g *guardedFile) WriteAt(b []byte, off int64) (int, error) {
	n, err := g.mutate(func() (int, error) { return g.File.WriteAt(b, off) })
	if err != nil {
		return n, g.failed("write", off, int64(len(b)), err)
	}
	return n, nil
}

func (g *guardedFile) Sync() error {
	if _, err := g.mutate(func() (int, error) { return 0, g.File.Sync() }); err != nil {
		return g.failed("sync", -1, 0, err)
	}
	return nil
}

func (g *guardedFile) Truncate(size int64) error {
	if _, err := g.mutate(func() (int, error) { return 0, g.File.Truncate(size) }); err != nil {
		return g.failed("truncate", size, 0, err)
	}
	return nil
}

func (g *guardedFile) Punch(off, n int64) error {
	if _, err := g.mutate(func() (int, error) { return 0, g.File.Punch(off, n) }); err != nil {
		return g.failed("punch", off, n, err)
	}
	return nil
}

// mutate runs op on the blob under the gate's read lock unless the pool has
// failed; then it returns the failure, marked refused.
func (g *guardedFile) mutate(op func() (int, error)) (int, error) {
	g.p.gate.RLock()
	defer g.p.gate.RUnlock()
	if err := g.p.Failed(); err != nil {
		return 0, refused{err}
	}
	return op()
}

// refused is a mutation the gate did not let through: the pool's failure,
// not a new one.
type refused struct{ error }

func (r refused) Unwrap() error { return r.error }

func (g *guardedFile) Size() (int64, error) {
	if err := g.p.Failed(); err != nil {
		return 0, err
	}
	return g.File.Size()
}

// failed counts the failed operation and stops the pool; a refused one is
// the pool's failure already.
func (g *guardedFile) failed(op string, off, n int64, err error) error {
	if r, ok := err.(refused); ok {
		return r.error
	}
	g.p.count(func(s *Stats) { s.WriteErrors++ })
	return g.p.stop(&Failure{Blob: g.base, Op: op, Off: off, Len: n, Err: err})
}
