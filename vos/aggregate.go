package vos

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"sort"
	"time"

	"vosfs/alloc"
	"vosfs/pool"
	"vosfs/umem"
)

// Aggregation limits: each transaction of an aggregation pass handles at
// most aggPaths keys and aggActions changes, so its record stays small and
// the pass can stop between transactions.
const (
	aggPaths   = 64
	aggActions = 256
)

// aggAction is one change of aggregation: drop an entry (and free its
// space), or replace a merge operand by the folded value.
//
// Actions are applied in order, possibly split over several transactions,
// so every prefix of them must leave what each view sees unchanged: a
// tombstone is dropped only after what it hides, and a fold carries the
// drops of the chain it replaces, applied in the same transaction.
type aggAction struct {
	key   []byte
	fold  []byte   // nil: drop
	drops [][]byte // a fold's chain below its top, dropped with it
	path  Path
	mig   *migration // instead of the above: a migration out of the heap
}

// weight is how many tree changes the action makes.
func (a aggAction) weight() int {
	if a.mig != nil {
		return len(a.mig.drops) + len(a.mig.larges)
	}
	return 1 + len(a.drops)
}

// aggregateLoop runs a pass of aggregation every AggregateInterval, the
// first at once (a store opened for less than an interval at a time would
// otherwise never aggregate), until ctx is cancelled; Close cancels a pass
// between rounds.
func (s *Store) aggregateLoop(ctx context.Context) {
	defer close(s.stopped)
	t := time.NewTicker(s.opts.AggregateInterval)
	defer t.Stop()
	for {
		if s.p.Err() == nil {
			_, _ = s.Aggregate(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Aggregate drops (or folds) every version that no snapshot, reader or the
// latest state can see, and frees its space; it returns how many entries
// it dropped. Data-blob extents become reusable once the dropping
// transaction is durable.
//
// The pass takes the aggregation lock one round at a time, so that the
// folds reads ask for (foldLoop) and Check need not wait for a whole pass
// over a large store. A round plans against the state it finds; the
// low-water mark taken at the start only rises meanwhile.
func (s *Store) Aggregate(ctx context.Context) (int, error) {
	s.mu.Lock()
	low := s.lowWaterLocked()
	s.mu.Unlock()

	dropped := 0
	cursor := []byte{kindData}
	for cursor != nil {
		if err := ctx.Err(); err != nil {
			return dropped, err
		}
		s.aggMu.Lock()
		next, n, err := s.aggregateRound(ctx, cursor, low, aggPaths)
		s.aggMu.Unlock()
		dropped += n
		if err != nil {
			return dropped, err
		}
		cursor = next
	}
	s.aggMu.Lock()
	n, err := s.aggregateObjectPunches(ctx, low)
	s.aggMu.Unlock()
	dropped += n
	s.count(func(st *Stats) { st.Aggregations++; st.VersionsDropped += uint64(dropped) })
	return dropped, err
}

// aggregateRound plans and applies aggregation for up to maxPaths keys from
// cursor, and returns the cursor after them (nil at the end).
func (s *Store) aggregateRound(ctx context.Context, cursor []byte, low uint64, maxPaths int) ([]byte, int, error) {
	var actions []aggAction
	var next []byte
	var folds []*foldPlan
	if err := s.p.View(func(r umem.Reader) error {
		var err error
		actions, folds, next, err = s.planPaths(r, cursor, low, maxPaths)
		return err
	}); err != nil {
		return nil, 0, err
	}
	for _, f := range folds {
		a, err := f.finish(s)
		if err != nil {
			return nil, 0, err
		}
		actions = append(actions, a)
	}
	// Migrations write their data-blob extents first; one that finds no
	// space leaves its run in the heap.
	kept := actions[:0]
	for _, a := range actions {
		if a.mig != nil {
			if err := a.mig.write(s); err != nil {
				if !errors.Is(err, alloc.ErrNoSpace) {
					cancelMigrations(s, actions)
					return nil, 0, err
				}
				continue
			}
		}
		kept = append(kept, a)
	}
	n, err := s.applyAggregation(ctx, kept)
	if errors.Is(err, alloc.ErrNoSpace) {
		// A full heap (or data blob) fails the transactions that fold or
		// migrate, which need space; the plain drops free it. Apply those
		// alone (one already applied is a no-op), so that a full pool
		// can always be aggregated back.
		var drops []aggAction
		for _, a := range kept {
			if a.fold == nil && a.mig == nil {
				drops = append(drops, a)
			}
		}
		n, err = s.applyAggregation(ctx, drops)
	}
	return next, n, err
}

// foldLoop folds, in the background, the merge chains that reads found
// long (askFold), one key at a time.
func (s *Store) foldLoop() {
	defer close(s.foldDone)
	for {
		select {
		case <-s.foldStop:
			return
		case p := <-s.foldReq:
			if s.p.Err() == nil {
				s.aggregatePath(context.Background(), p)
			}
			s.foldMu.Lock()
			delete(s.foldPending, p.key())
			s.foldMu.Unlock()
		}
	}
}

// askFold asks foldLoop to fold p's chain, unless it is asked already or
// its queue is full (the next read asks again).
func (s *Store) askFold(p Path) {
	if s.foldReq == nil {
		return
	}
	k := p.key()
	s.foldMu.Lock()
	defer s.foldMu.Unlock()
	if s.foldPending[k] {
		return
	}
	select {
	case s.foldReq <- p:
		s.foldPending[k] = true
	default:
	}
}

// aggregatePath aggregates the one key p.
func (s *Store) aggregatePath(ctx context.Context, p Path) (int, error) {
	s.aggMu.Lock()
	defer s.aggMu.Unlock()
	s.mu.Lock()
	low := s.lowWaterLocked()
	s.mu.Unlock()
	_, n, err := s.aggregateRound(ctx, p.prefix(nil), low, 1)
	if n > 0 {
		s.count(func(st *Stats) { st.ChainsFolded++; st.VersionsDropped += uint64(n) })
	}
	return n, err
}

// foldChunk is how many operands of a merge chain one fold transaction
// folds: with the value below them and the entry it replaces, its changes
// stay within aggActions.
const foldChunk = aggActions - 2

// foldPlan is a piece of a merge chain to fold: the operands' parts and the
// base, read under the lock, fetched and folded outside it. A long chain is
// folded from the bottom up in pieces of foldChunk operands, each in its
// own transaction; each piece's base is the value the piece below it
// folded to.
type foldPlan struct {
	key      []byte   // the piece's newest operand, replaced by the value
	drops    [][]byte // the rest of the piece and the entry below it
	path     Path
	merge    uint8
	base     *part     // the value below the chain (nil: none, or below)
	below    *foldPlan // the piece below, folded first
	operands []part    // newest first
	val      []byte    // the folded value, once finished
}

func (f *foldPlan) finish(s *Store) (aggAction, error) {
	res := valueResult{exists: true, base: f.base, operands: f.operands, merge: f.merge}
	if f.below != nil {
		res.base = &part{r: rec{kind: recHeap}, data: f.below.val}
	}
	val, _, err := s.value(f.path, res)
	if err != nil {
		return aggAction{}, err
	}
	if val == nil {
		val = []byte{}
	}
	f.val = val
	return aggAction{key: f.key, fold: val, drops: f.drops, path: f.path}, nil
}

type aggEntry struct {
	key   []byte
	sub   byte
	epoch uint64
	off   uint64
	r     rec
}

// planPaths looks at up to maxPaths keys from cursor and returns what to
// drop or fold, and the cursor after them (nil at the end).
func (s *Store) planPaths(r umem.Reader, cursor []byte, low uint64, maxPaths int) ([]aggAction, []*foldPlan, []byte, error) {
	var actions []aggAction
	var folds []*foldPlan
	v := view{s: s, r: r, epoch: low}
	budget := migrateBatch
	for n := 0; n < maxPaths; n++ {
		it := s.tree.Seek(r, cursor)
		if !it.Next() || it.Key()[0] != kindData {
			return actions, folds, nil, it.Err()
		}
		pk, err := parseDataKey(it.Key())
		if err != nil {
			return nil, nil, nil, err
		}
		p := Path{OID: pk.oid, Dkey: pk.dkey, Akey: pk.akey}
		prefix := p.prefix(nil)
		var entries []aggEntry
		for ok := true; ok && bytes.HasPrefix(it.Key(), prefix); ok = it.Next() {
			e, err := parseDataKey(it.Key())
			if err != nil {
				return nil, nil, nil, err
			}
			rc, err := decodeRec(it.Value())
			if err != nil {
				return nil, nil, nil, err
			}
			entries = append(entries, aggEntry{key: append([]byte(nil), it.Key()...), sub: e.sub, epoch: e.epoch, off: e.off, r: rc})
		}
		if err := it.Err(); err != nil {
			return nil, nil, nil, err
		}
		punch, err := v.objPunch(p.OID)
		if err != nil {
			return nil, nil, nil, err
		}
		a, f, more, err := planPath(v, p, entries, low, punch, &budget)
		if err != nil {
			return nil, nil, nil, err
		}
		actions = append(actions, a...)
		folds = append(folds, f...)
		if more {
			// Out of migration budget: this path again next round, once
			// what was planned is applied.
			return actions, folds, prefix, nil
		}
		cursor = afterEscaped(prefix)
		if len(actions) >= aggActions || budget <= 0 {
			break
		}
	}
	return actions, folds, cursor, nil
}

// planPath decides what of one akey's entries at or below low is invisible
// to every view (all views are at low or later), and which array runs move
// out of the heap, within *budget bytes (more: some were left).
func planPath(v view, p Path, entries []aggEntry, low, objPunch uint64, budget *int) (actions []aggAction, folds []*foldPlan, more bool, err error) {
	drop := func(e aggEntry) { actions = append(actions, aggAction{key: e.key, path: p}) }
	var values, arrays []aggEntry
	for _, e := range entries {
		switch {
		case e.epoch > low:
		case e.epoch <= objPunch:
			drop(e)
		case e.sub == subValue:
			values = append(values, e) // newest first (key order)
		default:
			arrays = append(arrays, e)
		}
	}
	// Single values: the newest at or below low decides what low sees;
	// everything older goes. A merge chain folds into one value.
	for i, e := range values {
		if e.r.kind == recPunch {
			// Oldest first, the tombstone last.
			for j := len(values) - 1; j >= i; j-- {
				drop(values[j])
			}
			break
		}
		if e.r.merge == 0 {
			for _, o := range values[i+1:] {
				drop(o)
			}
			break
		}
		if i > 0 {
			continue // inside a chain that started above
		}
		// An operand on top: find its base.
		j := 1
		for j < len(values) && values[j].r.merge != 0 && values[j].r.kind != recPunch {
			j++
		}
		if j == 1 && (j == len(values)) {
			break // a lone operand: nothing to fold
		}
		// What is older than the chain's base (or the punch under it) is
		// hidden by it, now and once folded: plain drops.
		if j+1 < len(values) {
			for _, o := range values[j+1:] {
				drop(o)
			}
		}
		// The operands values[:j], folded bottom up, foldChunk at a time.
		var below *foldPlan
		for hi := j; hi > 0; {
			lo := max(0, hi-foldChunk)
			f := &foldPlan{key: values[lo].key, path: p, merge: e.r.merge, below: below}
			for _, o := range values[lo:hi] {
				pt, err := v.load(p, 0, o.r)
				if err != nil {
					return nil, nil, false, err
				}
				f.operands = append(f.operands, pt)
			}
			switch {
			case below != nil:
				f.drops = append(f.drops, below.key)
			case j < len(values):
				// The chain's base or the punch it stands on.
				if values[j].r.kind != recPunch {
					pt, err := v.load(p, 0, values[j].r)
					if err != nil {
						return nil, nil, false, err
					}
					f.base = &pt
				}
				f.drops = append(f.drops, values[j].key)
			}
			for _, o := range values[lo+1 : hi] {
				f.drops = append(f.drops, o.key)
			}
			folds = append(folds, f)
			below, hi = f, lo
		}
		break
	}
	// Arrays: paint at low; an extent no byte of which is visible goes; a
	// punch goes once no older extent under it is left.
	if len(arrays) > 0 {
		sort.SliceStable(arrays, func(i, j int) bool { return arrays[i].epoch > arrays[j].epoch })
		var claimed []Segment // coalesced: addRange
		var kept []aggEntry
		vis := make([][][2]uint64, len(arrays)) // what low sees of each
		for i, e := range arrays {
			lo, hi := e.off, e.off+e.r.size
			if e.sub == subPunch {
				lo, hi = e.r.loc, e.r.size
			}
			visible := false
			for _, g := range gaps(claimed, lo, hi) {
				visible = true
				vis[i] = append(vis[i], g)
			}
			claimed = addRange(claimed, lo, hi)
			switch {
			case e.sub == subExt && !visible:
				drop(e)
			case e.sub == subExt:
				kept = append(kept, e)
			}
		}
		for _, e := range arrays {
			if e.sub != subPunch {
				continue
			}
			needed := false
			for _, k := range kept {
				if k.epoch < e.epoch && k.off < e.r.size && e.r.loc < k.off+k.r.size {
					needed = true
					break
				}
			}
			if !needed {
				drop(e)
			}
		}
		if *budget > 0 {
			migs, left, err := planMigrations(v, p, arrays, vis, *budget)
			if err != nil {
				return nil, nil, false, err
			}
			for _, m := range migs {
				*budget -= len(m.data)
				actions = append(actions, aggAction{path: p, mig: m})
			}
			more = left
		}
	}
	return actions, folds, more, nil
}

// addRange adds [lo, hi) to c, a set of byte ranges kept sorted and
// coalesced: painting the many extents of an array written in small pieces
// stays O(n log n), since the set stays a few ranges however many extents
// cover it.
func addRange(c []Segment, lo, hi uint64) []Segment {
	if lo >= hi {
		return c
	}
	// The ranges that overlap or touch [lo, hi): c[i:j].
	i := sort.Search(len(c), func(i int) bool { return c[i].Off+c[i].Len >= lo })
	j := i
	for j < len(c) && c[j].Off <= hi {
		lo, hi = min(lo, c[j].Off), max(hi, c[j].Off+c[j].Len)
		j++
	}
	if i == j {
		c = append(c, Segment{})
		copy(c[i+1:], c[i:])
		c[i] = Segment{Off: lo, Len: hi - lo}
		return c
	}
	c[i] = Segment{Off: lo, Len: hi - lo}
	return append(c[:i+1], c[j:]...)
}

// applyAggregation applies actions in order, in transactions of about
// aggActions changes (a fold and its drops always in one).
func (s *Store) applyAggregation(ctx context.Context, actions []aggAction) (int, error) {
	done := 0
	for len(actions) > 0 {
		n, weight := 0, 0
		for n < len(actions) && (n == 0 || weight+actions[n].weight() <= aggActions) {
			weight += actions[n].weight()
			n++
		}
		batch := actions[:n]
		actions = actions[n:]
		if _, err := s.p.Update(ctx, func(tx *pool.Tx) error {
			// Aggregation gives space back (a fold replaces its chain by
			// one value): it works on a full heap.
			tx.UseDeletionReserve()
			for _, a := range batch {
				if a.mig != nil {
					if err := a.mig.apply(s, tx); err != nil {
						return err
					}
					continue
				}
				for _, k := range a.drops {
					if err := s.dropEntry(tx, k); err != nil {
						return err
					}
				}
				if a.fold == nil {
					if err := s.dropEntry(tx, a.key); err != nil {
						return err
					}
					continue
				}
				if err := s.replaceWithFold(tx, a.key, a.fold); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			cancelMigrations(s, batch)
			cancelMigrations(s, actions)
			return done, err
		}
		moved := 0
		for _, a := range batch {
			if a.mig != nil {
				moved += len(a.mig.data)
				done += len(a.mig.drops)
			} else {
				done += a.weight()
			}
		}
		if moved > 0 {
			s.count(func(st *Stats) { st.MigratedBytes += uint64(moved) })
		}
	}
	return done, nil
}

// cancelMigrations gives back the extents of migrations not applied.
func cancelMigrations(s *Store, actions []aggAction) {
	for _, a := range actions {
		if a.mig != nil {
			a.mig.cancel(s)
		}
	}
}

// takeEntry frees the space of the tree entry at key, reporting whether
// it exists; the caller deletes or replaces the entry.
func (s *Store) takeEntry(tx *pool.Tx, key []byte) (bool, error) {
	val, ok, err := s.tree.Get(tx.Reader(), key)
	if err != nil || !ok {
		return false, err
	}
	old, err := decodeRec(val)
	if err != nil {
		return false, err
	}
	return true, freeRec(tx, old)
}

// dropEntry deletes a tree entry and frees its space.
func (s *Store) dropEntry(tx *pool.Tx, key []byte) error {
	if ok, err := s.takeEntry(tx, key); err != nil || !ok {
		return err
	}
	_, err := s.tree.Delete(tx, key)
	return err
}

// replaceWithFold replaces a merge operand by the folded plain value.
func (s *Store) replaceWithFold(tx *pool.Tx, key, fold []byte) error {
	if ok, err := s.takeEntry(tx, key); err != nil || !ok {
		return err
	}
	nr, err := storeSmall(tx, fold)
	if err != nil {
		return err
	}
	_, err = s.tree.Put(tx, key, nr.encode())
	return err
}

// freeRec frees the heap or data-blob space a record holds.
func freeRec(tx *pool.Tx, r rec) error {
	switch r.kind {
	case recHeap:
		return tx.Free(r.loc, r.size)
	case recData:
		return tx.FreeExtents([]alloc.Extent{{Block: r.loc, Count: r.blocks()}})
	}
	return nil
}

// aggregateObjectPunches drops object punches at or below low that hide
// nothing any more (aggregation dropped what they hid), and punches older
// than another such punch of the same object.
func (s *Store) aggregateObjectPunches(ctx context.Context, low uint64) (int, error) {
	var drops []aggAction
	if err := s.p.View(func(r umem.Reader) error {
		it := s.tree.Seek(r, []byte{kindObjPunch})
		var lastOID uint64
		haveNewer := false
		for it.Next() {
			k := it.Key()
			if k[0] != kindObjPunch || len(k) != 17 {
				break
			}
			oid := binary.BigEndian.Uint64(k[1:])
			epoch := ^binary.BigEndian.Uint64(k[9:])
			if oid != lastOID {
				lastOID, haveNewer = oid, false
			}
			if epoch > low {
				continue
			}
			if haveNewer {
				drops = append(drops, aggAction{key: append([]byte(nil), k...)})
				continue
			}
			haveNewer = true
			hides := false
			prefix := objPrefix(nil, oid)
			dit := s.tree.Seek(r, prefix)
			for dit.Next() && bytes.HasPrefix(dit.Key(), prefix) {
				e, err := parseDataKey(dit.Key())
				if err != nil {
					return err
				}
				if e.epoch <= epoch {
					hides = true
					break
				}
			}
			if err := dit.Err(); err != nil {
				return err
			}
			if !hides {
				drops = append(drops, aggAction{key: append([]byte(nil), k...)})
			}
		}
		return it.Err()
	}); err != nil {
		return 0, err
	}
	return s.applyAggregation(ctx, drops)
}
