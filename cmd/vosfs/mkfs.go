package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"vosfs/blob"
	"vosfs/pool"
	"vosfs/wal"
)

func newMkfsCmd() *cobra.Command {
	var mf mkfsFlags
	var force bool
	c := &cobra.Command{
		Use:   "mkfs [flags] POOLDIR",
		Short: "create a pool",
		Long: `Creates a pool in POOLDIR (created if missing): the log, the metadata blob
(held in memory while mounted) and the data blob. Sizes are binary: 8G is
8 GiB, 512M is 512 MiB, 4096 is 4096 bytes.

With --fill sparse (the default) the blobs are sized but take disk space only
as they fill: creation takes well under a second whatever the size. With
--fill zero the data and metadata blobs are written with zeros: the pool takes
its whole size on disk at once, and every later write overwrites in place,
which on ext4 doubles the rate of small synchronous writes into a fresh pool.
The log is written with zeros either way (64 MiB by default, a fraction of a
second), so that its syncs write no file metadata.

An existing pool is refused unless --force is given, which destroys it. A
half-made pool (a creation that was interrupted before it wrote the log's
header) is replaced without --force, and mkfs says so. An interrupted mkfs
removes what it made.`,
		Args:              exactArgs("POOLDIR"),
		ValidArgsFunction: completeDirs,
		RunE: func(c *cobra.Command, args []string) error {
			return runMkfs(c, &mf, force, args[0])
		},
	}
	c.Flags().SortFlags = false
	mf.register(c)
	c.Flags().BoolVar(&force, "force", false, "replace an existing pool, destroying its contents")
	return c
}

// mkfsFlags are the flags that shape a new pool, taken by mkfs and by
// mount --mkfs.
type mkfsFlags struct {
	size, walSize, metaSize, recordLimit sizeFlag
	fill                                 string
}

// register adds the flags to c.
func (m *mkfsFlags) register(c *cobra.Command) {
	m.size.n = pool.DefaultDataSize
	m.walSize.n = pool.DefaultWALSize
	fl := c.Flags()
	fl.Var(&m.size, "size", "size of the data blob")
	fl.Var(&m.walSize, "wal-size", "size of the log blob")
	fl.Var(&m.metaSize, "meta-size", "size of the metadata blob, held in memory while mounted (default "+
		humanize.IBytes(pool.DefaultMetaSize)+", or twice what the allocation bitmap needs for a data blob past 4 TiB)")
	fl.Var(&m.recordLimit, "record-limit", "largest log record, one transaction's changes (default 4 MiB, or an eighth of the log if less)")
	fl.StringVar(&m.fill, "fill", "sparse", "how the blobs get their space, `MODE`: sparse (on first use) or zero (written now)")
	c.RegisterFlagCompletionFunc("fill", cobra.FixedCompletions([]cobra.Completion{"sparse", "zero"}, cobra.ShellCompDirectiveNoFileComp))
}

// changed reports whether any of the flags was given.
func (m *mkfsFlags) changed(c *cobra.Command) string {
	for _, name := range []string{"size", "wal-size", "meta-size", "record-limit", "fill"} {
		if c.Flags().Changed(name) {
			return name
		}
	}
	return ""
}

// config returns the pool configuration the flags ask for, checked.
func (m *mkfsFlags) config(c *cobra.Command) (pool.Config, error) {
	metaSize := m.metaSize.n
	if !m.metaSize.set {
		// A data blob past a few TiB needs more heap for its allocation
		// bitmap than the default leaves: twice the least it needs.
		metaSize = min(max(pool.DefaultMetaSize, 2*pool.MinMetaSizeFor(m.size.n)), pool.MaxMetaSize)
	}
	cfg := pool.Config{DataSize: m.size.n, WALSize: m.walSize.n, MetaSize: metaSize}
	var err error
	if cfg.Fill, err = pool.ParseFill(m.fill); err != nil {
		return cfg, usagef(commandName(c), "--fill: %v", err)
	}
	if m.recordLimit.set {
		if m.recordLimit.n > math.MaxUint32 {
			return cfg, fmt.Errorf("record limit %s is above the maximum %s", exactBytes(m.recordLimit.n), exactBytes(wal.MaxRecordSize))
		}
		cfg.RecordLimit = uint32(m.recordLimit.n)
	}
	return cfg, checkConfig(cfg)
}

// poolFiles are the blob files of a pool; nothing else in its directory
// is the pool's data.
var poolFiles = []string{pool.WALFile, pool.MetaFile, pool.DataFile}

func runMkfs(c *cobra.Command, mf *mkfsFlags, force bool, arg string) error {
	dir, err := absDir(arg)
	if err != nil {
		return err
	}
	cfg, err := mf.config(c)
	if err != nil {
		return err
	}
	if poolExists(dir) {
		switch {
		case halfMadePool(dir):
			fmt.Fprintf(os.Stderr, "vosfs: %s holds a half-made pool (its creation was interrupted before the log was written); replacing it\n", dir)
		case !force:
			return fmt.Errorf("%s already holds a pool; use --force to replace it (its contents are lost)", dir)
		}
		if err := destroyPool(dir); err != nil {
			return err
		}
	}
	if err := createPool(dir, cfg); err != nil {
		return err
	}
	fmt.Fprintln(c.OutOrStdout(), poolSummary(dir))
	return nil
}

// belowMin is the refusal of a size below its minimum. When the two read
// the same humanized (1.0 MiB below 1.0 MiB), both get their exact count.
func belowMin(what string, got, least uint64) error {
	g, l := exactBytes(got), exactBytes(least)
	if humanize.IBytes(got) == humanize.IBytes(least) {
		g = humanize.IBytes(got) + " (" + humanize.Comma(int64(got)) + " bytes)"
		l = humanize.IBytes(least) + " (" + humanize.Comma(int64(least)) + " bytes)"
	}
	return fmt.Errorf("%s %s is below the minimum %s", what, g, l)
}

// checkConfig refuses sizes out of the pool's bounds with messages in
// units people read; the pool checks again.
func checkConfig(cfg pool.Config) error {
	const block = pool.BlockSize
	minData := uint64(pool.MinDataSize + pool.DataOffset)
	minWAL := uint64(wal.RingOffset + wal.MinRingSize)
	switch {
	case cfg.DataSize&^(block-1) < minData:
		return belowMin("data size", cfg.DataSize, minData)
	case cfg.MetaSize < pool.MinMetaSize:
		return belowMin("metadata size", cfg.MetaSize, pool.MinMetaSize)
	case cfg.MetaSize > pool.MaxMetaSize:
		return fmt.Errorf("metadata size %s is above the maximum %s", exactBytes(cfg.MetaSize), exactBytes(pool.MaxMetaSize))
	case cfg.MetaSize < pool.MinMetaSizeFor(cfg.DataSize):
		return fmt.Errorf("metadata size %s is too small for a data blob of %s: the heap holds its allocation bitmap; give --meta-size %s or more",
			humanize.IBytes(cfg.MetaSize), humanize.IBytes(cfg.DataSize), humanize.IBytes(pool.MinMetaSizeFor(cfg.DataSize)))
	case cfg.WALSize&^(block-1) < minWAL:
		return belowMin("log size", cfg.WALSize, minWAL)
	}
	if rl := uint64(cfg.RecordLimit); rl != 0 {
		ring := cfg.WALSize&^(block-1) - wal.RingOffset
		switch {
		case rl < block:
			return belowMin("record limit", rl, block)
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
	if err := waitClosing(dir, closeWait); err != nil {
		return err
	}
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

// halfMadePool reports whether the pool files in dir are those of a
// creation that never finished: the log, whose header is written last, is
// missing, or its header slots were never written (all zeros). A pool that
// was ever complete has a header there, valid or damaged, and is not
// half-made.
func halfMadePool(dir string) bool {
	f, err := os.Open(filepath.Join(dir, pool.WALFile))
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, wal.RingOffset)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return false
	}
	for _, b := range head[:n] {
		if b != 0 {
			return false
		}
	}
	return true
}

// createPool creates a pool, showing on stderr (on a terminal) the
// progress of a slow creation. SIGINT, SIGTERM or SIGHUP during the
// creation remove what it made and end the program.
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
	made := make([]string, 0, len(poolFiles))
	for _, name := range poolFiles {
		if _, err := os.Lstat(filepath.Join(dir, name)); errors.Is(err, fs.ErrNotExist) {
			made = append(made, filepath.Join(dir, name))
		}
	}
	stop := onInterrupt(func(sig os.Signal) {
		pr.done()
		for _, name := range made {
			os.Remove(name)
		}
		fmt.Fprintf(os.Stderr, "vosfs: %v: creation of the pool in %s interrupted; removed what it made\n", sig, dir)
	})
	err := pool.Create(blob.NewOSFS(true), dir, cfg)
	stop()
	pr.done()
	if errors.Is(err, blob.ErrLocked) {
		return errPoolBusy(dir)
	}
	return err
}

// onInterrupt runs undo and ends the program if SIGINT, SIGTERM or SIGHUP
// arrives before the returned stop is called. A signal that arrives while
// stop runs, too late to undo, is delivered again with its default action.
func onInterrupt(undo func(os.Signal)) (stop func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	var mu sync.Mutex
	finished := false
	quit := make(chan struct{})
	redeliver := func(sig os.Signal) {
		signal.Reset(sig)
		syscall.Kill(os.Getpid(), sig.(syscall.Signal))
	}
	go func() {
		select {
		case sig := <-sigs:
			mu.Lock()
			if finished {
				mu.Unlock()
				redeliver(sig)
				return
			}
			undo(sig)
			os.Exit(128 + int(sig.(syscall.Signal)))
		case <-quit:
			select {
			case sig := <-sigs:
				redeliver(sig)
			default:
			}
		}
	}()
	return func() {
		mu.Lock()
		finished = true
		mu.Unlock()
		signal.Stop(sigs)
		close(quit)
	}
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
