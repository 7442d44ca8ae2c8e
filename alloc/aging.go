package alloc

import "vosfs/wal"

// agingList holds data extents freed by committed transactions whose
// records may not be durable yet. The extents are still referenced by the
// metadata a crash would bring back, so they must not be handed out (and
// overwritten) until the durable ID has passed the freeing record. Batches
// are appended by commit hooks, which run in ID order, so the list is
// sorted by ID. Its owner guards it.
type agingList struct {
	batches []agingBatch
	units   uint64
}

type agingBatch struct {
	id   wal.ID // the freeing record
	exts []Range
}

func (l *agingList) add(id wal.ID, exts []Range) {
	l.batches = append(l.batches, agingBatch{id: id, exts: exts})
	for _, e := range exts {
		l.units += e.Count
	}
}

// promote removes the batches whose record is durable (durable > id) and
// calls fn for each of their extents. It returns the units removed.
func (l *agingList) promote(durable wal.ID, fn func(Range)) uint64 {
	var n uint64
	k := 0
	for k < len(l.batches) && l.batches[k].id < durable {
		for _, e := range l.batches[k].exts {
			n += e.Count
			fn(e)
		}
		k++
	}
	if k > 0 {
		clear(l.batches[:k])
		l.batches = l.batches[k:]
		l.units -= n
	}
	return n
}
