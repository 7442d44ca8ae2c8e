package pool

import (
	"errors"
	"fmt"

	"vosfs/alloc"
	"vosfs/wal"
)

// ErrDataRange is returned for a data access outside the data blob.
var ErrDataRange = errors.New("data access outside the data blob")

// DataWrite is an in-flight write of one extent of the data blob.
type DataWrite struct {
	off  uint64 // byte offset in the data blob
	n    uint64
	done chan struct{}
	crc  uint32 // CRC32C of the bytes, set before done is closed
	err  error  // set before done is closed
}

// checksum returns the CRC32C of the bytes written, waiting for the write.
func (w *DataWrite) checksum() uint32 {
	<-w.done
	return w.crc
}

// Wait blocks until the write has completed.
func (w *DataWrite) Wait() error {
	<-w.done
	return w.err
}

// WriteData starts the direct write of data into the extent ext (data must
// fill it exactly) and returns at once. The write is awaited by the commit
// of the transaction it is added to (Tx.AddData).
func (p *Pool) WriteData(ext alloc.Extent, data []byte) (*DataWrite, error) {
	if uint64(len(data)) != ext.Count*BlockSize {
		return nil, fmt.Errorf("pool: data of %d bytes for an extent of %d blocks", len(data), ext.Count)
	}
	if ext.Count == 0 || ext.Block+ext.Count > p.layout.DataBlocks {
		return nil, fmt.Errorf("%w: extent %+v of %d blocks", ErrDataRange, ext, p.layout.DataBlocks)
	}
	if err := p.Failed(); err != nil {
		return nil, err
	}
	w := &DataWrite{off: DataOffset + ext.Block*BlockSize, n: uint64(len(data)), done: make(chan struct{})}
	p.dataSem <- struct{}{}
	go func() {
		defer func() { <-p.dataSem }()
		// An error is the pool's failure: the guard stopped the pool.
		_, w.err = p.dataf.WriteAt(data, int64(w.off))
		// After the write, off the caller's path: the checksum is only
		// logged, by a commit that waits for this write anyway.
		w.crc = wal.Checksum(data)
		close(w.done)
	}()
	return w, nil
}

// ReadData reads len(buf) bytes at byte offset off within extent ext.
func (p *Pool) ReadData(ext alloc.Extent, off uint64, buf []byte) error {
	if ext.Block+ext.Count > p.layout.DataBlocks || off+uint64(len(buf)) > ext.Count*BlockSize {
		return fmt.Errorf("%w: read [%d, +%d) of extent %+v", ErrDataRange, off, len(buf), ext)
	}
	abs := DataOffset + ext.Block*BlockSize + off
	start, end := abs&^(BlockSize-1), alignUp(abs+uint64(len(buf)), BlockSize)
	dst := buf
	if start != abs || end != abs+uint64(len(buf)) {
		// Direct I/O reads whole blocks.
		dst = make([]byte, end-start)
	}
	if _, err := p.dataf.ReadAt(dst, int64(start)); err != nil {
		if f := p.Failed(); f != nil {
			return f
		}
		return fmt.Errorf("pool %s: %w", p.dir, err)
	}
	if len(dst) != len(buf) {
		copy(buf, dst[abs-start:])
	}
	return nil
}
