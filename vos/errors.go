package vos

import (
	"vosfs/alloc"
	"vosfs/pool"
	"vosfs/wal"
)

// The errors of the layers below that a user of the object store has to
// tell apart, under the store's own names. Each is the lower layer's
// sentinel itself, so errors.Is matches whichever name the caller uses and
// the filesystem above needs to import neither the allocator nor the log.
var (
	// ErrNoSpace: the data space or the metadata heap is full.
	ErrNoSpace = alloc.ErrNoSpace
	// ErrRecordTooLarge: one transaction's changes exceed the log record limit.
	ErrRecordTooLarge = wal.ErrRecordTooLarge
	// ErrClosed: the pool under the store was closed.
	ErrClosed = pool.ErrClosed
	// ErrFailed: the pool under the store stopped after a failed write or
	// sync of one of its blobs (or a shutdown); every later operation,
	// reads included, fails with it until the pool is opened again.
	ErrFailed = pool.ErrFailed
)

// Hint carries where a file's last extent was placed so that sequential
// writes land next to each other; the zero value has no preference.
type Hint = alloc.Hint
