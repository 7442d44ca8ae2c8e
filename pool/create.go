package pool

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/ncw/directio"

	"vosfs/blob"
	"vosfs/wal"
)

// Default and limit sizes of a new pool.
const (
	DefaultDataSize    = 8 << 30
	DefaultMetaSize    = 256 << 20
	DefaultWALSize     = 64 << 20
	DefaultRecordLimit = 4 << 20
	MinDataSize        = 1 << 20
	MinMetaSize        = 1 << 20
	MaxMetaSize        = 64 << 30
)

// Config is the geometry of a new pool. Zero fields take the defaults.
type Config struct {
	DataSize    uint64 // data blob bytes (rounded down to 4 KiB)
	MetaSize    uint64 // metadata blob bytes, heap included
	WALSize     uint64 // log blob bytes, header slots included
	RecordLimit uint32 // largest log record
	// Fill says how the data and metadata blobs get their space.
	Fill Fill
	// Progress, if set, is told the bytes done of the slow steps: step is
	// "zero data", "zero metadata" (with FillZero) or "zero log".
	Progress func(step string, done, total uint64)
}

// Fill is how a new pool's data and metadata blobs get their space.
type Fill int

const (
	// FillSparse only sizes the blobs: the file system allocates their
	// space at the first write into it. Quick, takes no space up front, but
	// every first write into a block is an allocating write (on ext4, with
	// an fdatasync, half the rate of an overwrite for 4 KiB direct writes).
	FillSparse Fill = iota
	// FillZero writes zeros over the whole blobs at creation: the space is
	// taken (a disk too small fails mkfs, not a later write) and every
	// later write overwrites blocks in place.
	FillZero
)

// String is the name the command line uses.
func (f Fill) String() string {
	switch f {
	case FillSparse:
		return "sparse"
	case FillZero:
		return "zero"
	}
	return fmt.Sprintf("Fill(%d)", int(f))
}

// ParseFill reads a Fill by its name.
func ParseFill(s string) (Fill, error) {
	switch s {
	case "sparse":
		return FillSparse, nil
	case "zero":
		return FillZero, nil
	}
	return 0, fmt.Errorf("unknown fill %q (zero or sparse)", s)
}

// zeroChunk is the size of one write zeroing a blob.
const zeroChunk = 8 << 20

func (c *Config) withDefaults() {
	if c.DataSize == 0 {
		c.DataSize = DefaultDataSize
	}
	if c.MetaSize == 0 {
		c.MetaSize = DefaultMetaSize
	}
	if c.WALSize == 0 {
		c.WALSize = DefaultWALSize
	}
	if c.RecordLimit == 0 {
		c.RecordLimit = min(DefaultRecordLimit, uint32(c.WALSize/8)&^(BlockSize-1))
	}
}

func (c *Config) validate() error {
	switch {
	case c.DataSize < MinDataSize+DataOffset:
		return fmt.Errorf("data blob size %d is below the minimum %d", c.DataSize, MinDataSize+DataOffset)
	case c.MetaSize < MinMetaSize || c.MetaSize > MaxMetaSize:
		return fmt.Errorf("metadata blob size %d is outside [%d, %d]", c.MetaSize, MinMetaSize, uint64(MaxMetaSize))
	case c.MetaSize < MinMetaSizeFor(c.DataSize):
		return fmt.Errorf("metadata blob size %d cannot hold the allocation bitmap of a %d-byte data blob and an arena: it needs %d",
			c.MetaSize, c.DataSize, MinMetaSizeFor(c.DataSize))
	case c.WALSize < wal.RingOffset+wal.MinRingSize:
		return fmt.Errorf("log blob size %d is below the minimum %d", c.WALSize, wal.RingOffset+wal.MinRingSize)
	case c.RecordLimit < BlockSize || c.RecordLimit > wal.MaxRecordSize:
		return fmt.Errorf("record limit %d is outside [%d, %d]", c.RecordLimit, BlockSize, wal.MaxRecordSize)
	case uint64(c.RecordLimit)*4 > c.WALSize-wal.RingOffset:
		return fmt.Errorf("record limit %d is more than a quarter of the log ring", c.RecordLimit)
	}
	return nil
}

// Create makes a new pool in dir. It refuses to touch a directory that
// already holds any pool file.
func Create(fsys blob.FS, dir string, cfg Config) (err error) {
	cfg.withDefaults()
	cfg.DataSize &^= BlockSize - 1
	cfg.MetaSize &^= BlockSize - 1
	cfg.WALSize &^= BlockSize - 1
	if err := cfg.validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrBadPool, err)
	}
	if err := fsys.MkdirAll(dir); err != nil {
		return err
	}
	for _, name := range []string{WALFile, MetaFile, DataFile} {
		if _, err := fsys.Stat(filepath.Join(dir, name)); err == nil {
			return fmt.Errorf("%w: %s already exists", fs.ErrExist, filepath.Join(dir, name))
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	lock, err := fsys.Lock(filepath.Join(dir, LockFile))
	if err != nil {
		return fmt.Errorf("pool %s: %w", dir, err)
	}
	defer lock.Close()

	var uuid [16]byte
	if _, err := rand.Read(uuid[:]); err != nil {
		return err
	}
	heapSize := cfg.MetaSize - HeapOffset
	blocks := (cfg.DataSize - DataOffset) / BlockSize
	layout, err := computeLayout(heapSize, blocks)
	if err != nil {
		return err
	}

	// A creation that fails (a disk too small for the zeros, say) removes
	// the files it made: there was no pool before.
	created := 0
	defer func() {
		if err != nil {
			for _, name := range []string{DataFile, MetaFile, WALFile}[:created] {
				_ = fsys.Remove(filepath.Join(dir, name))
			}
		}
	}()
	// The data and metadata blobs first; the log header last, so a pool
	// whose mkfs was interrupted has no valid log and is refused at open.
	progress := func(step string) func(done, total uint64) {
		if cfg.Progress == nil {
			return nil
		}
		return func(done, total uint64) { cfg.Progress(step, done, total) }
	}
	created = 1
	if err = createBlob(fsys, filepath.Join(dir, DataFile), blobHeader{magic: dataMagic, uuid: uuid, size: cfg.DataSize, units: blocks}, nil, cfg.Fill, progress("zero data")); err != nil {
		return err
	}
	super := make([]byte, BlockSize)
	copy(super, layout.encodeSuper())
	created = 2
	if err = createBlob(fsys, filepath.Join(dir, MetaFile), blobHeader{magic: metaMagic, uuid: uuid, size: cfg.MetaSize, units: heapSize}, super, cfg.Fill, progress("zero metadata")); err != nil {
		return err
	}
	created = 3
	f, err := fsys.Create(filepath.Join(dir, WALFile))
	if err != nil {
		return err
	}
	err = wal.Create(f, uuid, cfg.WALSize-wal.RingOffset, cfg.RecordLimit, progress("zero log"))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", filepath.Join(dir, WALFile), err)
	}
	err = fsys.SyncDir(dir)
	return err
}

// createBlob writes a blob's header (and first block after it), sizes it,
// fills the rest as fill says and syncs it.
func createBlob(fsys blob.FS, name string, h blobHeader, first []byte, fill Fill, progress func(done, total uint64)) error {
	f, err := fsys.Create(name)
	if err != nil {
		return err
	}
	err = func() error {
		if err := f.Truncate(int64(h.size)); err != nil {
			return err
		}
		if _, err := f.WriteAt(h.encode(), 0); err != nil {
			return err
		}
		rest := uint64(BlockSize)
		if first != nil {
			if _, err := f.WriteAt(first, BlockSize); err != nil {
				return err
			}
			rest += uint64(len(first))
		}
		if fill == FillZero {
			if err := zeroFill(f, rest, h.size, progress); err != nil {
				return err
			}
		}
		return f.Sync()
	}()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	return nil
}

// zeroFill writes zeros over [from, to) of f, both block-aligned.
func zeroFill(f blob.File, from, to uint64, progress func(done, total uint64)) error {
	zeros := directio.AlignedBlock(zeroChunk)
	for off := from; off < to; {
		n := min(uint64(len(zeros)), to-off)
		if _, err := f.WriteAt(zeros[:n], int64(off)); err != nil {
			return err
		}
		off += n
		if progress != nil {
			progress(off-from, to-from)
		}
	}
	return nil
}
