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

	// Generic FUSE options, with libfuse's meaning.

	// Subtype names the filesystem type, fuse.Subtype (default "vosfs").
	Subtype string
	// AllowRoot lets root in besides the mounter, and nobody else.
	AllowRoot bool
	// MaxRead is the largest read request (0: MaxWrite). It can only be
	// below MaxWrite, the size of the daemon's request buffers.
	MaxRead int
	// BlockSize is the st_blksize files report, the I/O size programs
	// take as best (0: 4 KiB).
	BlockSize int

	// Kernel mount flags (the VFS's). ReadOnly, NoAtime and StrictAtime
	// above are also kernel flags; vosfs applies those itself too.

	Suid       bool // set-user-ID bits take effect (default: nosuid)
	Dev        bool // device files open their devices (default: nodev)
	NoExec     bool // programs cannot be run from it
	Sync       bool // the kernel fsyncs every write (MS_SYNCHRONOUS)
	DirSync    bool // directory changes are durable on reply even under commit=async
	NoDiratime bool // listing a directory leaves its access time alone
	LazyTime   bool // the kernel's lazytime flag
}

// DefaultOptions are the options of a plain mount.
func DefaultOptions() Options {
	return Options{EntryTimeout: time.Second, AttrTimeout: time.Second, MaxWrite: 1 << 20, BlockSize: DefaultBlockSize}
}

// DefaultBlockSize is the st_blksize of files unless Options.BlockSize
// says otherwise.
const DefaultBlockSize = 4096
