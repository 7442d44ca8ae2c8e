package main

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/dustin/go-humanize"

	"vosfs/blob"
	"vosfs/pool"
	"vosfs/wal"
)

var mkfsCommand = &command{
	name:    "mkfs",
	summary: "create a pool",
	usage: `usage: vosfs mkfs [--size SIZE] [--wal-size SIZE] [--meta-size SIZE]
                  [--record-limit SIZE] [--fill zero|sparse] [--force] POOLDIR

Creates a pool in POOLDIR (created if missing): the log, the metadata blob
(held in memory while mounted) and the data blob. Sizes are written like
8GiB, 512MiB or 4096.

With --fill zero (the default) the blobs are written with zeros: the pool
takes its whole size on disk at once, and every later write overwrites in
place, which on ext4 doubles the rate of small synchronous writes into a
fresh pool. With --fill sparse the blobs only take disk space as files
fill them; creation is instant.

An existing pool is refused unless --force is given, which destroys it.
`,
	run: runMkfs,
}

// poolFiles are the blob files of a pool; nothing else in its directory
// is the pool's data.
var poolFiles = []string{pool.WALFile, pool.MetaFile, pool.DataFile}

func runMkfs(c *command, args []string) error {
	fl := newFlagSet(c)
	size := &sizeFlag{n: pool.DefaultDataSize}
	walSize := &sizeFlag{n: pool.DefaultWALSize}
	metaSize := &sizeFlag{n: pool.DefaultMetaSize}
	recordLimit := &sizeFlag{}
	fl.Var(size, "size", "size of the data blob")
	fl.Var(walSize, "wal-size", "size of the log blob")
	fl.Var(metaSize, "meta-size", "size of the metadata blob (held in memory while mounted; default 256 MiB, more for a data blob past 4 TiB)")
	fl.Var(recordLimit, "record-limit", "largest log record, one transaction's changes (default 4 MiB, or an eighth of the log if less)")
	fill := fl.String("fill", "zero", "how the blobs get their space: zero (written now) or sparse (on first use)")
	force := fl.Bool("force", false, "replace an existing pool, destroying its contents")
	arg, err := parseOneArg(c, fl, args, "POOLDIR")
	if err != nil {
		return err
	}
	dir, err := absDir(arg)
	if err != nil {
		return err
	}
	if !metaSize.set {
		// A data blob past a few TiB needs more heap for its allocation
		// bitmap than the default leaves: twice the least it needs.
		metaSize.n = min(max(metaSize.n, 2*pool.MinMetaSizeFor(size.n)), pool.MaxMetaSize)
	}
	cfg := pool.Config{DataSize: size.n, WALSize: walSize.n, MetaSize: metaSize.n}
	if cfg.Fill, err = pool.ParseFill(*fill); err != nil {
		return usagef(c.name, "--fill: %v", err)
	}
	if recordLimit.set {
		if recordLimit.n > math.MaxUint32 {
			return fmt.Errorf("record limit %s is above the maximum %s", exactBytes(recordLimit.n), exactBytes(wal.MaxRecordSize))
		}
		cfg.RecordLimit = uint32(recordLimit.n)
	}
	if err := checkConfig(cfg); err != nil {
		return err
	}
	if poolExists(dir) {
		if !*force {
			return fmt.Errorf("%s already holds a pool; use --force to replace it (its contents are lost)", dir)
		}
		if err := destroyPool(dir); err != nil {
			return err
		}
	}
	if err := createPool(dir, cfg); err != nil {
		return err
	}
	fmt.Println(poolSummary(dir))
	return nil
}

// checkConfig refuses sizes out of the pool's bounds with messages in
// units people read; the pool checks again.
func checkConfig(cfg pool.Config) error {
	const block = pool.BlockSize
	minData := uint64(pool.MinDataSize + pool.DataOffset)
	minWAL := uint64(wal.RingOffset + wal.MinRingSize)
	switch {
	case cfg.DataSize&^(block-1) < minData:
		return fmt.Errorf("data size %s is below the minimum %s", exactBytes(cfg.DataSize), exactBytes(minData))
	case cfg.MetaSize < pool.MinMetaSize:
		return fmt.Errorf("metadata size %s is below the minimum %s", exactBytes(cfg.MetaSize), exactBytes(pool.MinMetaSize))
	case cfg.MetaSize > pool.MaxMetaSize:
		return fmt.Errorf("metadata size %s is above the maximum %s", exactBytes(cfg.MetaSize), exactBytes(pool.MaxMetaSize))
	case cfg.MetaSize < pool.MinMetaSizeFor(cfg.DataSize):
		return fmt.Errorf("metadata size %s is too small for a data blob of %s: the heap holds its allocation bitmap; give --meta-size %s or more",
			humanize.IBytes(cfg.MetaSize), humanize.IBytes(cfg.DataSize), humanize.IBytes(pool.MinMetaSizeFor(cfg.DataSize)))
	case cfg.WALSize&^(block-1) < minWAL:
		return fmt.Errorf("log size %s is below the minimum %s", exactBytes(cfg.WALSize), exactBytes(minWAL))
	}
	if rl := uint64(cfg.RecordLimit); rl != 0 {
		ring := cfg.WALSize&^(block-1) - wal.RingOffset
		switch {
		case rl < block:
			return fmt.Errorf("record limit %s is below the minimum %s", exactBytes(rl), exactBytes(block))
		case rl > wal.MaxRecordSize:
			return fmt.Errorf("record limit %s is above the maximum %s", exactBytes(rl), exactBytes(wal.MaxRecordSize))
		case rl*4 > ring:
			return fmt.Errorf("record limit %s is more than a quarter of the log ring (%s)", exactBytes(rl), exactBytes(ring))
		}
	}
	return nil
}

// poolExists reports whether dir holds any blob file of a pool.
func poolExists(dir string) bool {
	for _, name := range poolFiles {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil || !errors.Is(err, fs.ErrNotExist) {
			return true
		}
	}
	return false
}

// destroyPool removes the blob files of the pool in dir, and only them,
// after making sure no process has the pool open.
func destroyPool(dir string) error {
	lock, err := blob.NewOSFS(false).Lock(filepath.Join(dir, pool.LockFile))
	if err != nil {
		if errors.Is(err, blob.ErrLocked) {
			return errPoolBusy(dir)
		}
		return err
	}
	defer lock.Close()
	for _, name := range poolFiles {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// errPoolBusy says why a locked pool cannot be used.
func errPoolBusy(dir string) error {
	if h := poolHolder(dir); h != "" {
		return fmt.Errorf("pool %s is mounted (%s); unmount it first", dir, h)
	}
	return fmt.Errorf("pool %s is mounted or in use by another process; unmount it first", dir)
}

// createPool creates a pool, showing on stderr the progress of a slow
// creation.
func createPool(dir string, cfg pool.Config) error {
	pr := newProgress(os.Stderr)
	start, last := time.Now(), ""
	cfg.Progress = func(step string, done, total uint64) {
		if step != last {
			start, last = time.Now(), step
		}
		msg := step + ": " + bytesOf(done, total)
		if el := time.Since(start).Seconds(); el > 0.5 {
			msg += ", " + humanize.IBytes(uint64(float64(done)/el)) + "/s"
		}
		pr.show(msg, done == total)
	}
	err := pool.Create(blob.NewOSFS(true), dir, cfg)
	pr.done()
	if errors.Is(err, blob.ErrLocked) {
		return errPoolBusy(dir)
	}
	return err
}

// poolSummary is the line mkfs prints: the sizes of the blobs as created.
func poolSummary(dir string) string {
	size := func(name string) string {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			return "?"
		}
		return humanize.IBytes(uint64(fi.Size()))
	}
	return fmt.Sprintf("created pool %s: data %s, metadata %s, log %s",
		dir, size(pool.DataFile), size(pool.MetaFile), size(pool.WALFile))
}
