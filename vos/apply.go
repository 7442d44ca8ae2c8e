package vos

import (
	"bytes"
	"fmt"
	"slices"

	"vosfs/pool"
	"vosfs/wal"
)

// applyTx runs in the pool's critical section: the coarse conflict check
// and replay, the predicates, then every change at the next epoch.
func (s *Store) applyTx(ptx *pool.Tx, tx *Tx) (Status, *PredicateResult, uint64, error) {
	r := ptx.Reader()
	latest, err := r.Uint64(rootEpoch)
	if err != nil {
		return 0, nil, 0, err
	}
	v := view{s: s, r: r, epoch: latest}

	if len(tx.reads) > 0 {
		s.mu.Lock()
		conflict := false
		for oid := range tx.readObjs {
			if s.lastWrite[oid] > tx.start {
				conflict = true
				break
			}
		}
		s.mu.Unlock()
		if conflict {
			s.count(func(st *Stats) { st.Conflicts++ })
			if tx.noReplay {
				s.count(func(st *Stats) { st.Aborts++ })
				return Aborted, nil, 0, nil
			}
			for _, rd := range tx.reads {
				same, err := rd.replay(v)
				if err != nil {
					return 0, nil, 0, err
				}
				if !same {
					s.count(func(st *Stats) { st.Aborts++ })
					return Aborted, nil, 0, nil
				}
			}
			s.count(func(st *Stats) { st.Replays++ })
		}
	}

	for i, pr := range tx.preds {
		res, err := v.lookup(pr.Path)
		if err != nil {
			return 0, nil, 0, err
		}
		val, exists, err := s.value(pr.Path, res)
		if err != nil {
			return 0, nil, 0, err
		}
		ok := false
		switch pr.Kind {
		case Exists:
			ok = exists
		case Absent:
			ok = !exists
		case Equals:
			ok = exists && bytes.Equal(val, pr.Value)
		default:
			return 0, nil, 0, fmt.Errorf("vos: predicate kind %d", pr.Kind)
		}
		if !ok {
			s.count(func(st *Stats) { st.PredicateFailures++ })
			return PredicateFailure, &PredicateResult{Index: i, Predicate: pr, Existed: exists, Saw: val}, 0, nil
		}
	}

	epoch := latest + 1
	if err := ptx.PutUint64(rootEpoch, epoch); err != nil {
		return 0, nil, 0, err
	}
	a := applier{s: s, ptx: ptx, v: v, epoch: epoch}
	if err := a.apply(tx.ops); err != nil {
		return 0, nil, 0, err
	}
	written, inserts := a.written, a.inserts
	ptx.OnCommit(func(wal.ID) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.epoch = epoch
		for _, oid := range written {
			s.lastWrite[oid] = epoch
		}
		s.stats.Commits++
		s.stats.TreeInserts += inserts
		if len(s.lastWrite) > 4096 {
			s.pruneLastWriteLocked()
		}
	})
	return Committed, nil, epoch, nil
}

// pruneLastWriteLocked forgets changes older than every active reader: a
// missing entry reads as epoch 0, which conflicts with nobody.
func (s *Store) pruneLastWriteLocked() {
	low := s.epoch
	for e := range s.readers {
		low = min(low, e)
	}
	for oid, e := range s.lastWrite {
		if e <= low {
			delete(s.lastWrite, oid)
		}
	}
}

// applier writes a transaction's changes at its epoch.
type applier struct {
	s       *Store
	ptx     *pool.Tx
	v       view // the state before the transaction
	epoch   uint64
	written []uint64 // the objects changed, each once
	inserts uint64   // tree puts so far
}

// put puts one record into the tree in the transaction (the tree copies
// key and value: both may be scratch).
func (a *applier) put(key []byte, r rec) (bool, error) {
	a.inserts++
	sc := &a.s.scratch
	r.encodeTo(sc.val[:])
	return a.s.tree.Put(a.ptx, key, sc.val[:])
}

// key returns the scratch key buffer, emptied.
func (a *applier) key() []byte { return a.s.scratch.key[:0] }

// keep keeps the scratch key buffer k grew into.
func (a *applier) keep(k []byte) []byte {
	a.s.scratch.key = k
	return k
}

// valueState is the net effect of a transaction's ops on one single value.
type valueState struct {
	path   Path
	set    bool // a put or a punch decides the base
	punch  bool
	val    []byte
	large  *large
	merges []op
}

func (a *applier) apply(ops []op) error {
	var punchedObj map[uint64]bool // read as nil when nothing is punched
	for _, o := range ops {
		if o.kind == opPunchObject {
			if punchedObj == nil {
				punchedObj = map[uint64]bool{}
			}
			punchedObj[o.path.OID] = true
		}
	}
	// The value states in order of first change; a few are searched, many
	// indexed. A state's pointer is good until the next call of state.
	order := make([]valueState, 0, 4)
	var index map[string]int
	const searched = 16
	state := func(p Path) *valueState {
		if index == nil {
			for i := range order {
				if order[i].path.equal(p) {
					return &order[i]
				}
			}
		} else if i, ok := index[p.key()]; ok {
			return &order[i]
		}
		order = append(order, valueState{path: p})
		switch {
		case index != nil:
			index[p.key()] = len(order) - 1
		case len(order) > searched:
			index = make(map[string]int, 2*len(order))
			for i := range order {
				index[order[i].path.key()] = i
			}
		}
		return &order[len(order)-1]
	}
	drop := func(st *valueState) {
		if st.large != nil {
			a.cancelLarge(st.large)
			st.large = nil
		}
	}
	for _, o := range ops {
		if n := len(a.written); n == 0 || a.written[n-1] != o.path.OID && !slices.Contains(a.written, o.path.OID) {
			a.written = append(a.written, o.path.OID)
		}
		if punchedObj[o.path.OID] && o.kind != opPunchObject {
			if o.large != nil {
				a.cancelLarge(o.large)
			}
			continue
		}
		switch o.kind {
		case opPut:
			st := state(o.path)
			drop(st)
			st.set, st.punch, st.val, st.large, st.merges = true, false, o.val, o.large, nil
		case opPunch:
			st := state(o.path)
			drop(st)
			st.set, st.punch, st.val, st.merges = true, true, nil, nil
			if err := a.punchArrayAll(o.path); err != nil {
				return err
			}
		case opMerge:
			st := state(o.path)
			st.merges = append(st.merges, o)
		case opPunchDkey:
			// Every akey of the dkey, in the store or written so far.
			if err := a.v.listKeys(o.path.OID, o.path.Dkey, nil, false, func(ak []byte) bool {
				state(Path{OID: o.path.OID, Dkey: o.path.Dkey, Akey: ak})
				return true
			}); err != nil {
				return err
			}
			for i := range order {
				st := &order[i]
				if st.path.OID == o.path.OID && bytes.Equal(st.path.Dkey, o.path.Dkey) {
					drop(st)
					st.set, st.punch, st.val, st.merges = true, true, nil, nil
					if err := a.punchArrayAll(st.path); err != nil {
						return err
					}
				}
			}
		case opPunchObject:
			if _, err := a.put(objPunchKey(o.path.OID, a.epoch), rec{kind: recPunch}); err != nil {
				return err
			}
		case opWrite:
			if err := a.writeExtent(o); err != nil {
				return err
			}
		case opPunchRange:
			if err := a.putPunchRange(o.path, o.off, o.end); err != nil {
				return err
			}
		}
	}
	for i := range order {
		if err := a.applyValue(&order[i]); err != nil {
			return err
		}
	}
	return nil
}

// applyValue writes the net single-value change of one path.
func (a *applier) applyValue(st *valueState) error {
	switch {
	case !st.set && len(st.merges) == 0:
		return nil
	case st.set && st.punch && len(st.merges) == 0:
		return a.putVersion(st.path, rec{kind: recPunch})
	case len(st.merges) == 0:
		return a.putValue(st.path, st.val, st.large, 0)
	}
	// Merges: on top of this transaction's own base they fold to a plain
	// value; with no own base they combine into one operand (operators
	// are associative).
	drop := st.large
	st.large = nil
	if drop != nil {
		a.cancelLarge(drop)
	}
	if st.set {
		out, err := a.s.fold(st.merges[0].merge, st.val, !st.punch, st.merges)
		if err != nil {
			return err
		}
		return a.putValue(st.path, out, nil, 0)
	}
	out, err := a.s.fold(st.merges[0].merge, nil, false, st.merges)
	if err != nil {
		return err
	}
	return a.putValue(st.path, out, nil, st.merges[0].merge)
}

// putValue stores val (inline, in the heap, or in its data-blob extent) as
// the version of path at the epoch.
func (a *applier) putValue(p Path, val []byte, l *large, merge uint8) error {
	r, err := a.store(val, l)
	if err != nil {
		return err
	}
	r.merge = merge
	return a.putVersion(p, r)
}

// store places val — in its data-blob extent l if it has one, else inline
// or in the heap — and returns its record.
func (a *applier) store(val []byte, l *large) (rec, error) {
	if l != nil {
		if err := a.publish(l); err != nil {
			return rec{}, err
		}
		return rec{kind: recData, size: uint64(len(val)), csum: l.csum, loc: l.exts[0].Block}, nil
	}
	return storeSmall(a.ptx, val)
}

// storeSmall keeps val inline in its record or in the heap.
func storeSmall(tx *pool.Tx, val []byte) (rec, error) {
	r := rec{size: uint64(len(val)), csum: wal.Checksum(val)}
	if len(val) <= inlineMax {
		r.kind = recInline
		copy(r.inline[:], val)
		return r, nil
	}
	off, err := tx.Alloc(uint64(len(val)))
	if err != nil {
		return r, err
	}
	if err := tx.Write(off, val); err != nil {
		return r, err
	}
	r.kind, r.loc = recHeap, off
	return r, nil
}

func (a *applier) putVersion(p Path, r rec) error {
	replaced, err := a.put(a.keep(p.appendValueKey(a.key(), a.epoch)), r)
	if err == nil && replaced {
		err = fmt.Errorf("vos: %v written twice at epoch %d", p, a.epoch)
	}
	return err
}

// publish makes a large value's extents allocated in this transaction and
// makes the commit wait for their writes. If the transaction aborts after
// this, the extents return to the free space only once the writes are done.
func (a *applier) publish(l *large) error {
	a.ptx.OnAbort(func() {
		for _, w := range l.ws {
			_ = w.Wait()
		}
	})
	if err := a.ptx.PublishExtents(l.exts); err != nil {
		return err
	}
	for _, w := range l.ws {
		if err := a.ptx.AddData(w); err != nil {
			return err
		}
	}
	return nil
}

func (a *applier) cancelLarge(l *large) {
	for _, w := range l.ws {
		_ = w.Wait()
	}
	a.s.p.Extents().Cancel(l.exts)
}

func (a *applier) writeExtent(o op) error {
	r, err := a.store(o.val, o.large)
	if err != nil {
		return err
	}
	replaced, err := a.put(a.keep(o.path.appendExtKey(a.key(), o.off, a.epoch)), r)
	if err == nil && replaced {
		err = fmt.Errorf("vos: %v extent at %d written twice at epoch %d", o.path, o.off, a.epoch)
	}
	return err
}

func (a *applier) putPunchRange(p Path, start, end uint64) error {
	_, err := a.put(a.keep(p.appendPunchKey(a.key(), a.epoch, start)), rec{kind: recPunch, loc: start, size: end})
	return err
}

// punchArrayAll punches the whole array of p if it has any extent.
func (a *applier) punchArrayAll(p Path) error {
	eprefix := p.subPrefix(subExt)
	it := a.s.tree.Seek(a.ptx.Reader(), eprefix)
	has := it.Next() && bytes.HasPrefix(it.Key(), eprefix)
	if err := it.Err(); err != nil {
		return err
	}
	if !has {
		return nil
	}
	return a.putPunchRange(p, 0, MaxArrayOffset)
}
