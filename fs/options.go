package fs

import (
	"fmt"
	"log"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
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
	// FsName is shown as the mount's source (the pool directory).
	FsName string
}

// DefaultOptions are the options of a plain mount.
func DefaultOptions() Options {
	return Options{EntryTimeout: time.Second, AttrTimeout: time.Second, MaxWrite: 1 << 20}
}

// ParseOptions applies a comma-separated -o list to opts. Options that are
// not vosfs's own (rw, dev, suid, ...) are returned for the mount itself.
func ParseOptions(opts *Options, list string) (rest []string, err error) {
	for _, o := range strings.Split(list, ",") {
		if o == "" {
			continue
		}
		k, v, hasV := strings.Cut(o, "=")
		bad := func(e error) error { return fmt.Errorf("mount option %q: %w", o, e) }
		switch k {
		case "commit":
			switch v {
			case "sync":
				opts.Commit = CommitSync
			case "async":
				opts.Commit = CommitAsync
			default:
				return nil, fmt.Errorf("mount option %q: commit is sync or async", o)
			}
		case "threshold":
			n, err := humanize.ParseBytes(v)
			if err != nil || n < 512 || n > 1<<20 {
				return nil, fmt.Errorf("mount option %q: threshold is a size from 512 B to 1 MiB", o)
			}
			opts.Threshold = int(n)
		case "entry_timeout", "attr_timeout":
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 {
				return nil, bad(fmt.Errorf("want seconds"))
			}
			d := time.Duration(f * float64(time.Second))
			if k == "entry_timeout" {
				opts.EntryTimeout = d
			} else {
				opts.AttrTimeout = d
			}
		case "writeback_cache":
			opts.WritebackCache = !hasV || v == "1" || v == "on" || v == "true"
		case "nowriteback_cache":
			opts.WritebackCache = false
		case "max_write":
			n, err := humanize.ParseBytes(v)
			if err != nil || n < 4096 || n > 1<<20 {
				return nil, fmt.Errorf("mount option %q: max_write is a size from 4 KiB to 1 MiB", o)
			}
			opts.MaxWrite = int(n)
		case "allow_other":
			opts.AllowOther = true
		case "noallow_other":
			opts.AllowOther = false
		case "noatime":
			opts.NoAtime, opts.StrictAtime = true, false
		case "atime", "relatime":
			opts.NoAtime, opts.StrictAtime = false, false
		case "strictatime", "norelatime":
			opts.NoAtime, opts.StrictAtime = false, true
		case "ro":
			opts.ReadOnly = true
		case "rw":
			opts.ReadOnly = false
		case "debug":
			opts.Debug = true
		default:
			rest = append(rest, o)
		}
	}
	return rest, nil
}
