package umem

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"sync"
	"sync/atomic"

	"vosfs/wal"
)

const (
	// ChunkSize is the unit of dirty tracking and of checkpoint writes.
	ChunkSize = 4096
	// ChunksPerPage is the number of chunks in one page (one dirty word).
	ChunksPerPage = 64
	// PageSize is the unit that carries pending and committed IDs.
	PageSize = ChunksPerPage * ChunkSize
)

// ErrOutOfBounds is wrapped when a change or a read falls outside the heap;
// found in a record during replay it means the log is damaged.
var ErrOutOfBounds = errors.New("umem: range outside the heap")

type page struct {
	dirty     atomic.Uint64 // chunk bitmap: set under the write lock, taken by the checkpointer under the read lock
	pending   wal.ID        // guarded by Heap.mu: newest record that touched the page
	mark      uint64        // guarded by Heap.mu (write): the Tx that last listed the page as touched
	committed atomic.Uint64 // newest durable record that touched the page
}

// Heap is the in-memory image of the metadata blob.
type Heap struct {
	mu    sync.RWMutex // write: one Tx at a time; read: readers and the checkpointer
	mem   []byte       // guarded by mu
	pages []page
	txSeq uint64 // guarded by mu (write)
}

// New returns a zeroed heap of size bytes (a multiple of ChunkSize).
func New(size uint64) *Heap {
	if size == 0 || size%ChunkSize != 0 {
		panic(fmt.Sprintf("umem: heap size %d is not a positive multiple of %d", size, ChunkSize))
	}
	return &Heap{mem: make([]byte, size), pages: make([]page, (size+PageSize-1)/PageSize)}
}

// Size is the heap size in bytes.
func (h *Heap) Size() uint64 { return uint64(len(h.mem)) }

// Load fills the heap from r at offset off, reporting progress in bytes. It
// must be called before the heap is shared.
func (h *Heap) Load(r io.ReaderAt, off int64, progress func(done, total uint64)) error {
	const step = 8 << 20
	for done := 0; done < len(h.mem); done += step {
		n := min(step, len(h.mem)-done)
		if _, err := r.ReadAt(h.mem[done:done+n], off+int64(done)); err != nil {
			return fmt.Errorf("umem: load heap: %w", err)
		}
		if progress != nil {
			progress(uint64(done+n), uint64(len(h.mem)))
		}
	}
	return nil
}

// span checks [off, off+n) and returns it as a slice of mem.
func span(mem []byte, off, n uint64) ([]byte, error) {
	if n > uint64(len(mem)) || off > uint64(len(mem))-n {
		return nil, fmt.Errorf("%w: [%d, +%d) of %d", ErrOutOfBounds, off, n, len(mem))
	}
	return mem[off : off+n : off+n], nil
}

// markDirtyLocked marks the chunks of [off, off+n) dirty. Write lock held.
func (h *Heap) markDirtyLocked(off, n uint64) {
	if n == 0 {
		return
	}
	first, last := off/ChunkSize, (off+n-1)/ChunkSize
	for c := first; c <= last; c++ {
		h.pages[c/ChunksPerPage].dirty.Or(1 << (c % ChunksPerPage))
	}
}

// Reader reads the heap. It is valid only inside View or a Tx.
type Reader struct{ mem []byte }

// Bytes returns the n bytes at off. The slice aliases the heap: copy what
// must outlive the View or Tx.
func (r Reader) Bytes(off, n uint64) ([]byte, error) { return span(r.mem, off, n) }

// Uint64 reads the little-endian uint64 at off.
func (r Reader) Uint64(off uint64) (uint64, error) {
	b, err := span(r.mem, off, 8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// Uint32 reads the little-endian uint32 at off.
func (r Reader) Uint32(off uint64) (uint32, error) {
	b, err := span(r.mem, off, 4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

// Bit reports bit i of the bitmap at off.
func (r Reader) Bit(off, i uint64) (bool, error) {
	b, err := span(r.mem, off+i/8, 1)
	if err != nil {
		return false, err
	}
	return b[0]&(1<<(i%8)) != 0, nil
}

// Size is the heap size.
func (r Reader) Size() uint64 { return uint64(len(r.mem)) }

// View runs fn with the heap read-locked: it sees a state between
// transactions, never a transaction half-applied.
func (h *Heap) View(fn func(Reader) error) error {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return fn(Reader{h.mem})
}

// Apply replays one record: it applies the record's actions and marks the
// touched pages dirty with the record's ID as pending. Used at open, before
// the heap is shared.
func (h *Heap) Apply(rec *wal.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return rec.Actions(func(a wal.Action) error {
		off, n, err := applyAction(h.mem, a)
		if err != nil {
			return fmt.Errorf("replay record %d: %w", rec.ID, err)
		}
		h.markDirtyLocked(off, n)
		for p := off / PageSize; n > 0 && p <= (off+n-1)/PageSize; p++ {
			pg := &h.pages[p]
			pg.pending = max(pg.pending, rec.ID)
			setMax(&pg.committed, uint64(rec.ID))
		}
		return nil
	})
}

// applyAction applies one redo action to mem and returns the byte range it
// changed.
func applyAction(mem []byte, a wal.Action) (uint64, uint64, error) {
	switch a.Type {
	case wal.ActCopy:
		dst, err := span(mem, a.Off, uint64(a.N))
		if err != nil {
			return 0, 0, err
		}
		copy(dst, a.Data)
		return a.Off, uint64(a.N), nil
	case wal.ActAssign:
		dst, err := span(mem, a.Off, uint64(a.N))
		if err != nil {
			return 0, 0, err
		}
		var v [8]byte
		binary.LittleEndian.PutUint64(v[:], a.Arg)
		copy(dst, v[:a.N])
		return a.Off, uint64(a.N), nil
	case wal.ActSet:
		dst, err := span(mem, a.Off, uint64(a.N))
		if err != nil {
			return 0, 0, err
		}
		for i := range dst {
			dst[i] = byte(a.Arg)
		}
		return a.Off, uint64(a.N), nil
	case wal.ActSetBits, wal.ActClearBits:
		if a.N == 0 {
			return a.Off, 0, nil
		}
		if a.Arg > ^uint64(0)-uint64(a.N) {
			return 0, 0, fmt.Errorf("%w: bits [%d, +%d)", ErrOutOfBounds, a.Arg, a.N)
		}
		first, last := a.Arg/8, (a.Arg+uint64(a.N)-1)/8
		if a.Off > ^uint64(0)-last {
			return 0, 0, fmt.Errorf("%w: bitmap at %d", ErrOutOfBounds, a.Off)
		}
		dst, err := span(mem, a.Off+first, last-first+1)
		if err != nil {
			return 0, 0, err
		}
		changeBits(dst, a.Arg%8, uint64(a.N), a.Type == wal.ActSetBits)
		return a.Off + first, last - first + 1, nil
	case wal.ActDataChecksum:
		return 0, 0, nil
	}
	return 0, 0, fmt.Errorf("umem: unknown action %v", a.Type)
}

// changeBits sets or clears n bits of b starting at bit i (i < 8).
func changeBits(b []byte, i, n uint64, set bool) {
	for n > 0 {
		k := i / 8
		bit := i % 8
		if bit == 0 && n >= 8 {
			if set {
				b[k] = 0xff
			} else {
				b[k] = 0
			}
			i, n = i+8, n-8
			continue
		}
		m := byte(1) << bit
		if set {
			b[k] |= m
		} else {
			b[k] &^= m
		}
		i, n = i+1, n-1
	}
}

func setMax(a *atomic.Uint64, v uint64) {
	for {
		old := a.Load()
		if old >= v || a.CompareAndSwap(old, v) {
			return
		}
	}
}

// MarkCommitted records that the record id, which touched pages, is durable.
func (h *Heap) MarkCommitted(id wal.ID, pages []uint32) {
	for _, p := range pages {
		setMax(&h.pages[p].committed, uint64(id))
	}
}

// DirtyPages counts pages with dirty chunks.
func (h *Heap) DirtyPages() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	n := 0
	for i := range h.pages {
		if h.pages[i].dirty.Load() != 0 {
			n++
		}
	}
	return n
}

// DirtyBytes counts dirty bytes.
func (h *Heap) DirtyBytes() uint64 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var n uint64
	for i := range h.pages {
		n += uint64(bits.OnesCount64(h.pages[i].dirty.Load())) * ChunkSize
	}
	return n
}
