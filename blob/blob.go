package blob

import (
	"errors"
	"io"
)

// BlockSize is the unit of every engine I/O and of torn-write simulation.
const BlockSize = 4096

// Errors returned by implementations, wrapped with the file name and offset.
var (
	// ErrLocked is returned by Lock when another holder has the lock.
	ErrLocked = errors.New("locked by another process")
	// ErrCrashed is returned by every operation on a MemFS after Crash.
	ErrCrashed = errors.New("simulated power cut")
	// ErrShortWrite is returned (wrapped) by an injected short write.
	ErrShortWrite = io.ErrShortWrite
)

// File is one open blob.
type File interface {
	// ReadAt reads len(p) bytes at off; reading past the end is an error.
	ReadAt(p []byte, off int64) (int, error)
	// WriteAt writes p at off. The bytes are durable only after Sync.
	WriteAt(p []byte, off int64) (int, error)
	// Sync makes every completed write durable (fdatasync).
	Sync() error
	// Size returns the current size in bytes.
	Size() (int64, error)
	// Truncate sets the size (sparse growth).
	Truncate(size int64) error
	// Punch deallocates [off, off+n) so that it reads as zeros (trim).
	Punch(off, n int64) error
	// Name returns the path the file was opened with, for error messages.
	Name() string
	Close() error
}

// FS creates, opens and locks blob files.
type FS interface {
	// Create creates a new file; it fails if the file exists.
	Create(name string) (File, error)
	// Open opens an existing file for reading and writing.
	Open(name string) (File, error)
	// Stat reports whether name exists and its size.
	Stat(name string) (size int64, err error)
	// MkdirAll creates a directory and its parents.
	MkdirAll(dir string) error
	// Remove removes a file.
	Remove(name string) error
	// SyncDir makes the creation of files in dir durable.
	SyncDir(dir string) error
	// Lock takes an exclusive lock named by name (a file); it fails with
	// ErrLocked while another holder has it. Close releases it.
	Lock(name string) (io.Closer, error)
}
