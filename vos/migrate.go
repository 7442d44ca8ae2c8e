package vos

import (
	"fmt"
	"sort"

	"vosfs/pool"
)

// Migration is the part of aggregation that moves array data out of the
// heap (DAOS's aggregation of small extents into large ones on NVMe):
// small writes travel inside the log record and land in the heap, which is
// quick to make durable but costs heap space, held in memory and written
// again by every checkpoint that finds it dirty. Once such extents are at or
// below the low-water mark, every maximal run of array bytes that only heap
// extents hold is rewritten as data-blob extents at the epoch of the newest
// extent of the run, and those heap extents are dropped, in one
// transaction.
//
// Why the views do not change: every view is at the low-water mark or later.
// At a byte x of the run, the extent visible at the mark has epoch e_x <= E
// (the new extent's epoch). No extent or punch covering x has an epoch in
// (e_x, mark] (it would be the one visible), so the new extent at E shadows
// exactly what the dropped one did, and everything above the mark still
// shadows it.
const (
	// minMigrate is the shortest run migrated: below a block, the heap is
	// the right home (DAOS's data threshold).
	minMigrate = blockSize
	// migrateChunk: a run is cut, where no extent straddles the cut, into
	// migrations of about this many bytes.
	migrateChunk = 1 << 20
	// migrateBatch bounds the bytes one planning round reads out of the
	// heap for migrations; a path with more is planned again next round.
	migrateBatch = 16 << 20
)

// migration rewrites [off, off+len(data)) of path's array, held by the heap
// extents drops at or below epoch, as data-blob extents at epoch.
type migration struct {
	path   Path
	off    uint64
	epoch  uint64
	data   []byte
	drops  [][]byte
	larges []*large // one per extent, written before the transaction
	at     []uint64 // array offset of each
}

// visSeg is a visible range of the heap extent entries[i].
type visSeg struct {
	lo, hi uint64
	i      int
}

// planMigrations finds the runs of arrays (entries at or below the mark,
// vis their visible ranges) that only heap extents hold, and reads their
// bytes through v, at the mark, up to budget bytes. It returns the
// migrations and whether some were left for lack of budget.
func planMigrations(v view, p Path, arrays []aggEntry, vis [][][2]uint64, budget int) ([]*migration, bool, error) {
	var segs []visSeg
	left := make([]int, len(arrays)) // visible ranges of each not yet walked
	for i, e := range arrays {
		if e.sub != subExt || e.r.kind == recData {
			continue
		}
		for _, g := range vis[i] {
			segs = append(segs, visSeg{g[0], g[1], i})
			left[i]++
		}
	}
	if len(segs) == 0 {
		return nil, false, nil
	}
	sort.Slice(segs, func(a, b int) bool { return segs[a].lo < segs[b].lo })

	var out []*migration
	var cur *migration
	members := map[int]bool{}
	// An extent of a run left in the heap cannot be dropped, so no other
	// run it shows in can go either.
	stays := map[int]bool{}
	open := 0 // members with visible ranges still ahead
	flush := func() error {
		m := cur
		cur = nil
		keep := m == nil || len(m.data) < minMigrate || open != 0
		for i := range members {
			keep = keep || stays[i]
		}
		if keep {
			for i := range members {
				stays[i] = true
			}
		}
		clear(members)
		open = 0
		if keep {
			return nil
		}
		// The bytes as the mark sees them: all in the heap, so no I/O.
		rs, err := v.resolveArray(p, m.off, uint64(len(m.data)))
		if err != nil {
			return err
		}
		if err := v.s.readSegments(p, rs, m.off, m.data); err != nil {
			return err
		}
		out = append(out, m)
		budget -= len(m.data)
		return nil
	}
	for _, sg := range segs {
		if cur != nil && (sg.lo != cur.off+uint64(len(cur.data)) || (open == 0 && len(cur.data) >= migrateChunk)) {
			// A gap (or a clean cut of a long run): the run so far is
			// complete. A member with ranges beyond a gap cannot go.
			if err := flush(); err != nil {
				return nil, false, err
			}
			if budget <= 0 {
				return out, true, nil
			}
		}
		if cur == nil {
			cur = &migration{path: p, off: sg.lo}
		}
		cur.data = append(cur.data, make([]byte, sg.hi-sg.lo)...)
		e := arrays[sg.i]
		if !members[sg.i] {
			members[sg.i] = true
			cur.drops = append(cur.drops, e.key)
			cur.epoch = max(cur.epoch, e.epoch)
			open++
		}
		if left[sg.i]--; left[sg.i] == 0 {
			open--
		}
	}
	if err := flush(); err != nil {
		return nil, false, err
	}
	return out, false, nil
}

// write writes the migration's bytes to data-blob extents, each at most
// MaxExtentLen.
func (m *migration) write(s *Store) error {
	for at := uint64(0); at < uint64(len(m.data)); {
		n := min(uint64(len(m.data))-at, MaxExtentLen)
		l, err := s.writeLargeNoAggregate(nil, m.data[at:at+n], false)
		if err != nil {
			m.cancel(s)
			return err
		}
		for _, pc := range l.split(m.data[at : at+n]) {
			m.larges, m.at = append(m.larges, pc.l), append(m.at, m.off+at+pc.at)
		}
		at += n
	}
	// Readers see the extents from the moment the transaction applies.
	for _, l := range m.larges {
		for _, w := range l.ws {
			if err := w.Wait(); err != nil {
				m.cancel(s)
				return err
			}
		}
	}
	return nil
}

// cancel returns the extents of a migration that will not be applied, once
// their writes are done.
func (m *migration) cancel(s *Store) {
	for _, l := range m.larges {
		for _, w := range l.ws {
			_ = w.Wait()
		}
		s.p.Extents().Cancel(l.exts)
	}
	m.larges, m.at = nil, nil
}

// apply drops the heap extents and puts the data-blob ones, in tx.
func (m *migration) apply(s *Store, tx *pool.Tx) error {
	for _, k := range m.drops {
		if err := s.dropEntry(tx, k); err != nil {
			return err
		}
	}
	for i, l := range m.larges {
		if err := tx.PublishExtents(l.exts); err != nil {
			return err
		}
		for _, w := range l.ws {
			if err := tx.AddData(w); err != nil {
				return err
			}
		}
		size := uint64(len(m.data)) - (m.at[i] - m.off)
		size = min(size, l.exts[0].Count*blockSize)
		r := rec{kind: recData, size: size, csum: l.csum, loc: l.exts[0].Block}
		replaced, err := s.tree.Put(tx, m.path.extKey(m.at[i], m.epoch), r.encode())
		if err == nil && replaced {
			err = fmt.Errorf("vos: %v migrated extent at %d replaced a live one at epoch %d", m.path, m.at[i], m.epoch)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
