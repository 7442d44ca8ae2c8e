package umem

import (
	"math/bits"

	"vosfs/wal"
)

// Run is a copy of contiguous dirty chunks taken by the checkpointer.
type Run struct {
	Off  uint64 // heap offset
	Data []byte
}

// CopyDirty copies the dirty chunks of pages [from, ...) until about
// maxBytes are taken, clearing their dirty bits, and returns the runs, the
// highest pending ID of the pages copied (the durable ID must reach it before
// the runs may be written back), and the page to continue from (-1 at the
// end). Each page is copied under the read lock, so writers wait for one page
// copy at most. Only one caller may copy at a time.
func (h *Heap) CopyDirty(from int, maxBytes int) (runs []Run, pending wal.ID, next int) {
	taken := 0
	for p := from; p < len(h.pages); p++ {
		if taken >= maxBytes {
			return runs, pending, p
		}
		h.mu.RLock()
		pg := &h.pages[p]
		d := pg.dirty.Swap(0)
		if d != 0 {
			pending = max(pending, pg.pending)
			base := uint64(p) * PageSize
			for d != 0 {
				i := uint64(bits.TrailingZeros64(d))
				j := i
				for j < ChunksPerPage && d&(1<<j) != 0 {
					j++
				}
				off := base + i*ChunkSize
				end := min(base+j*ChunkSize, uint64(len(h.mem)))
				data := make([]byte, end-off)
				copy(data, h.mem[off:end])
				runs = append(runs, Run{Off: off, Data: data})
				taken += len(data)
				if j == ChunksPerPage {
					d = 0
				} else {
					d &^= (uint64(1) << j) - 1
				}
			}
		}
		h.mu.RUnlock()
	}
	return runs, pending, -1
}

// Redirty marks the runs dirty again (after a failed write-back).
func (h *Heap) Redirty(runs []Run) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range runs {
		h.markDirtyLocked(r.Off, uint64(len(r.Data)))
	}
}
