package fs

import (
	"log"
	"time"
)

// CommitMode says when a modifying operation replies.
type CommitMode int

const (
	// CommitSync replies after the operation's transaction is durable.
	CommitSync CommitMode = iota
	// CommitAsync replies once applied; fsync waits for durability.
	CommitAsync
)

func (c CommitMode) String() string {
	if c == CommitAsync {
		return "async"
	}
	return "sync"
}

// Options are the mount options.
type Options struct {
	Commit         CommitMode
	Threshold      int           // large-value threshold in bytes (0: the store's default, 16 KiB)
	EntryTimeout   time.Duration // kernel cache of names
	AttrTimeout    time.Duration // kernel cache of attributes
	WritebackCache bool          // kernel writeback cache
	MaxWrite       int           // largest FUSE write (default 1 MiB)
	AllowOther     bool
	ReadOnly       bool
	NoAtime        bool // reads leave access times alone (default: relatime)
	StrictAtime    bool // every read updates the access time (strictatime)
	Debug          bool
	Logger         *log.Logger
	// FsName is shown as the mount's source in /proc/mounts.
	FsName string
}

// DefaultOptions are the options of a plain mount.
func DefaultOptions() Options {
	return Options{EntryTimeout: time.Second, AttrTimeout: time.Second, MaxWrite: 1 << 20}
}
