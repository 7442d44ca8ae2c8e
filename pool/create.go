package pool

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

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
	// Progress, if set, is told the bytes done of the slowest step (zeroing
	// the log ring).
	Progress func(done, total uint64)
}

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
func Create(fsys blob.FS, dir string, cfg Config) error {
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

	// The data and metadata blobs first; the log header last, so a pool
	// whose mkfs was interrupted has no valid log and is refused at open.
	if err := createBlob(fsys, filepath.Join(dir, DataFile), blobHeader{magic: dataMagic, uuid: uuid, size: cfg.DataSize, units: blocks}, nil); err != nil {
		return err
	}
	super := make([]byte, BlockSize)
	copy(super, layout.encodeSuper())
	if err := createBlob(fsys, filepath.Join(dir, MetaFile), blobHeader{magic: metaMagic, uuid: uuid, size: cfg.MetaSize, units: heapSize}, super); err != nil {
		return err
	}
	f, err := fsys.Create(filepath.Join(dir, WALFile))
	if err != nil {
		return err
	}
	err = wal.Create(f, uuid, cfg.WALSize-wal.RingOffset, cfg.RecordLimit, cfg.Progress)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", filepath.Join(dir, WALFile), err)
	}
	return fsys.SyncDir(dir)
}

// createBlob writes a blob's header (and first block after it), sizes it
// sparse and syncs it.
func createBlob(fsys blob.FS, name string, h blobHeader, first []byte) error {
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
		if first != nil {
			if _, err := f.WriteAt(first, BlockSize); err != nil {
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
