package vos

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"vosfs/alloc"
	"vosfs/pool"
	"vosfs/umem"
	"vosfs/wal"
)

// Status is the outcome of a commit.
type Status int

const (
	// Committed: every change is applied (and durable when Commit returns).
	Committed Status = iota + 1
	// PredicateFailure: a predicate did not hold; nothing was applied.
	PredicateFailure
	// Aborted: a conflict that replay could not resolve; nothing was applied.
	Aborted
)

func (s Status) String() string {
	switch s {
	case Committed:
		return "committed"
	case PredicateFailure:
		return "predicate failure"
	case Aborted:
		return "aborted"
	}
	return fmt.Sprintf("status(%d)", int(s))
}

// Errors of transactions.
var (
	ErrTxDone = errors.New("vos: transaction already ended")
	// ErrTxOverlap: array writes or punches of one akey overlap within one
	// transaction (each must touch distinct bytes).
	ErrTxOverlap = errors.New("vos: overlapping array changes in one transaction")
	// ErrAborted is returned by Update when a conflict aborted the
	// transaction and retries were not asked for (or ran out).
	ErrAborted = errors.New("vos: transaction aborted by a conflict")
	// ErrPredicate is returned by Update when a predicate failed.
	ErrPredicate = errors.New("vos: predicate failed")
)

// PredicateKind is the condition of a predicate.
type PredicateKind int

const (
	// Exists holds when the key has a value.
	Exists PredicateKind = iota + 1
	// Absent holds when the key has no value.
	Absent
	// Equals holds when the key's value is exactly Value.
	Equals
)

// Predicate is a condition on a key's value at commit.
type Predicate struct {
	Path  Path
	Kind  PredicateKind
	Value []byte
}

// PredicateResult says which predicate failed and what it saw.
type PredicateResult struct {
	Index     int
	Predicate Predicate
	Existed   bool
	Saw       []byte
}

// Result is the outcome of a commit.
type Result struct {
	Status Status
	Epoch  uint64 // the transaction's epoch when it committed changes
	ID     wal.ID // its log ID when Committed
	Failed *PredicateResult
}

type opKind int

const (
	opPut opKind = iota + 1
	opPunch
	opMerge
	opWrite
	opPunchRange
	opPunchDkey
	opPunchObject
)

// large is a value on its way to the data blob: reserved extents and the
// writes in flight.
type large struct {
	exts []alloc.Extent
	ws   []*pool.DataWrite
	csum uint32 // of the value, computed while its writes are in flight
}

// largePiece is one extent of a large value: its bytes at offset at.
type largePiece struct {
	at   uint64
	data []byte
	l    *large
}

// split gives one large per extent of l, which holds data: each piece has
// its own record, so its own checksum.
func (l *large) split(data []byte) []largePiece {
	if len(l.exts) == 1 {
		return []largePiece{{data: data, l: l}}
	}
	var out []largePiece
	at := uint64(0)
	for i, e := range l.exts {
		piece := data[at:min(at+e.Count*blockSize, uint64(len(data)))]
		out = append(out, largePiece{at: at, data: piece,
			l: &large{exts: []alloc.Extent{e}, ws: []*pool.DataWrite{l.ws[i]}, csum: wal.Checksum(piece)}})
		at += e.Count * blockSize
	}
	return out
}

type op struct {
	kind  opKind
	path  Path
	val   []byte
	merge uint8
	off   uint64 // opWrite: array offset; opPunchRange: start
	end   uint64 // opPunchRange: end
	large *large // data-blob storage of val, reserved before commit
}

type readKind int

const (
	readGet readKind = iota + 1
	readArray
	readList
)

// read is one read of the transaction with what it saw, for replay.
type read struct {
	kind    readKind
	path    Path
	off, n  uint64
	from    []byte
	excl    bool
	limit   int
	witness []byte
}

// Tx is a transaction: reads at its start epoch, buffered writes, and
// predicates, applied together by Commit. A Tx is used by one goroutine.
type Tx struct {
	s        *Store
	start    uint64
	ops      []op
	reads    []read
	readObjs map[uint64]bool
	preds    []Predicate
	done     bool
	noReplay bool
	freeing  bool         // may take the heap's deletion reserve
	opsArr   [4]op        // the first ops, without an allocation
	predsArr [2]Predicate // the first predicates
}

// Begin starts a transaction reading at the current epoch.
func (s *Store) Begin() *Tx {
	tx := &Tx{s: s, start: s.pin(0)}
	tx.ops, tx.preds = tx.opsArr[:0], tx.predsArr[:0]
	return tx
}

// Epoch is the epoch the transaction reads at.
func (tx *Tx) Epoch() uint64 { return tx.start }

// UseDeletionReserve marks the transaction as one that gives space back
// (a delete, a truncate): its heap allocations may take the pool's
// deletion reserve, so that it commits on a full heap (pool.DeletionReserve).
func (tx *Tx) UseDeletionReserve() { tx.freeing = true }

// Freeing reports whether UseDeletionReserve was called.
func (tx *Tx) Freeing() bool { return tx.freeing }

// DisableReplay makes a conflict abort at once instead of replaying the
// reads (for comparison).
func (tx *Tx) DisableReplay() { tx.noReplay = true }

// add appends an operation.
func (tx *Tx) add(o op) {
	tx.ops = append(tx.ops, o)
}

func (tx *Tx) usable() error {
	if tx.done {
		return ErrTxDone
	}
	return nil
}

// changing checks a change of p: the transaction is open, the path valid,
// and its object not punched earlier in the transaction.
func (tx *Tx) changing(p Path) error {
	if err := tx.usable(); err != nil {
		return err
	}
	if err := p.check(); err != nil {
		return err
	}
	return tx.punchedObject(p.OID)
}

// punchedObject reports whether the transaction already punched oid: later
// changes to it would share the punch's epoch and be hidden by it.
func (tx *Tx) punchedObject(oid uint64) error {
	for _, o := range tx.ops {
		if o.kind == opPunchObject && o.path.OID == oid {
			return fmt.Errorf("%w: object %d was punched earlier in the transaction", ErrTxOverlap, oid)
		}
	}
	return nil
}

// viewAt runs fn on a view at the transaction's epoch.
func (tx *Tx) view(witness *[]byte, fn func(view) error) error {
	return tx.s.p.View(func(r umem.Reader) error {
		return fn(view{s: tx.s, r: r, epoch: tx.start, witness: witness})
	})
}

// Get returns the value of path: the transaction's own writes over the
// store at the transaction's epoch.
func (tx *Tx) Get(p Path) ([]byte, bool, error) {
	if err := tx.usable(); err != nil {
		return nil, false, err
	}
	if err := p.check(); err != nil {
		return nil, false, err
	}
	own, ops, fromStore := tx.ownValue(p)
	var base []byte
	var exists bool
	if fromStore {
		rd := read{kind: readGet, path: p}
		var res valueResult
		if err := tx.view(&rd.witness, func(v view) error {
			var err error
			res, err = v.lookup(p)
			return err
		}); err != nil {
			return nil, false, err
		}
		tx.record(rd)
		var err error
		if base, exists, err = tx.s.value(p, res); err != nil {
			return nil, false, err
		}
	} else {
		base, exists = own, own != nil
	}
	if len(ops) == 0 {
		return base, exists, nil
	}
	out, err := tx.s.fold(ops[0].merge, base, exists, ops)
	return out, true, err
}

func (tx *Tx) record(rd read) {
	tx.reads = append(tx.reads, rd)
	if tx.readObjs == nil {
		tx.readObjs = map[uint64]bool{}
	}
	tx.readObjs[rd.path.OID] = true
}

// ownValue looks at the transaction's own writes to path: the last put or
// punch (fromStore false, own nil for a punch) and the merges after it; or
// fromStore true when the store's value is the base.
func (tx *Tx) ownValue(p Path) (own []byte, merges []op, fromStore bool) {
	fromStore = true
	for _, o := range tx.ops {
		switch {
		case o.kind == opPunchObject && o.path.OID == p.OID,
			o.kind == opPunchDkey && o.path.OID == p.OID && bytes.Equal(o.path.Dkey, p.Dkey):
			own, merges, fromStore = nil, nil, false
		case !o.path.equal(p):
		case o.kind == opPut:
			own, merges, fromStore = o.val, nil, false
		case o.kind == opPunch:
			own, merges, fromStore = nil, nil, false
		case o.kind == opMerge:
			merges = append(merges, o)
		}
	}
	return own, merges, fromStore
}

func (s *Store) fold(id uint8, base []byte, exists bool, ops []op) ([]byte, error) {
	m, ok := s.byID[id]
	if !ok {
		return nil, fmt.Errorf("%w: operator %d not registered", ErrMerge, id)
	}
	operands := make([][]byte, len(ops))
	for i, o := range ops {
		if o.merge != id {
			return nil, fmt.Errorf("%w: mixed operators on one key", ErrMerge)
		}
		operands[i] = o.val
	}
	return m.fn(base, exists, operands)
}

// Put sets the value of path. A value at or above the threshold (or of a
// block or more when the heap is past half full) is written to the data
// blob now, and the commit waits for it.
func (tx *Tx) Put(p Path, val []byte) error {
	if err := tx.changing(p); err != nil {
		return err
	}
	o := op{kind: opPut, path: p, val: append([]byte{}, val...)}
	if !tx.s.toHeap(len(val)) {
		l, err := tx.s.writeLarge(nil, o.val, true)
		if err != nil && !errors.Is(err, errFragmented) {
			return err
		}
		o.large = l // nil when fragmented: the value goes to the heap
	}
	tx.add(o)
	return nil
}

// Punch removes the value (or the array) of path.
func (tx *Tx) Punch(p Path) error {
	if err := tx.changing(p); err != nil {
		return err
	}
	tx.supersedeArrays(func(q Path) bool { return q.equal(p) })
	tx.add(op{kind: opPunch, path: p})
	return nil
}

// supersedeArrays drops the transaction's earlier array changes of the
// paths a punch removes: ops apply in order, and array changes at one
// epoch cannot be ordered after the fact.
func (tx *Tx) supersedeArrays(match func(Path) bool) {
	kept := tx.ops[:0]
	for _, o := range tx.ops {
		if (o.kind == opWrite || o.kind == opPunchRange) && match(o.path) {
			if o.large != nil {
				for _, w := range o.large.ws {
					_ = w.Wait()
				}
				tx.s.p.Extents().Cancel(o.large.exts)
			}
			continue
		}
		kept = append(kept, o)
	}
	tx.ops = kept
}

// PunchDkey removes every akey of a dkey.
func (tx *Tx) PunchDkey(oid uint64, dkey []byte) error {
	if err := tx.usable(); err != nil {
		return err
	}
	p := Path{OID: oid, Dkey: dkey}
	if err := p.check(); err != nil {
		return err
	}
	tx.supersedeArrays(func(q Path) bool { return q.OID == oid && bytes.Equal(q.Dkey, dkey) })
	tx.add(op{kind: opPunchDkey, path: p})
	return nil
}

// PunchObject removes everything in an object.
func (tx *Tx) PunchObject(oid uint64) error {
	if err := tx.usable(); err != nil {
		return err
	}
	tx.supersedeArrays(func(q Path) bool { return q.OID == oid })
	tx.add(op{kind: opPunchObject, path: Path{OID: oid}})
	return nil
}

// Merge adds operand to path's value through the named merge operator. It
// reads nothing, so merges never conflict.
func (tx *Tx) Merge(p Path, name string, operand []byte) error {
	if err := tx.changing(p); err != nil {
		return err
	}
	m, ok := tx.s.merges[name]
	if !ok {
		return fmt.Errorf("%w: no operator %q", ErrMerge, name)
	}
	tx.add(op{kind: opMerge, path: p, merge: m.id, val: append([]byte{}, operand...)})
	return nil
}

// Predicate adds a condition checked at commit against the current state.
func (tx *Tx) Predicate(pr Predicate) error {
	if err := tx.usable(); err != nil {
		return err
	}
	if err := pr.Path.check(); err != nil {
		return err
	}
	tx.preds = append(tx.preds, pr)
	return nil
}

// arrayOverlap reports whether an own change of p overlaps [lo, hi) of its
// array: changes at one epoch must not overlap, there is no order among them.
func (tx *Tx) arrayOverlap(p Path, lo, hi uint64) bool {
	for _, o := range tx.ops {
		if o.path.OID != p.OID {
			continue
		}
		switch o.kind {
		case opPunchObject:
			return true
		case opPunchDkey:
			if bytes.Equal(o.path.Dkey, p.Dkey) {
				return true
			}
		}
		if !o.path.equal(p) {
			continue
		}
		switch o.kind {
		case opPunch:
			return true
		case opWrite:
			if o.off < hi && lo < o.off+uint64(len(o.val)) {
				return true
			}
		case opPunchRange:
			if o.off < hi && lo < o.end {
				return true
			}
		}
	}
	return false
}

// toHeap decides where a value or write of n bytes goes: below the
// threshold to the heap (inside the log record), unless it is a block or
// more and the heap is past half full — the heap holds what migration has
// not yet moved to the data blob, and must keep room for metadata.
func (s *Store) toHeap(n int) bool {
	if n >= s.opts.Threshold {
		return false
	}
	if n < blockSize {
		return true
	}
	st := s.p.HeapAlloc().Stats()
	return st.Free >= uint64(n)+st.Total/2
}

// WriteArray writes data at offset off of path's array. The block-aligned
// body of a write at or above the threshold (or of a block or more when the
// heap is past half full) goes to data-blob extents (hint keeps a stream's
// extents in sequence); the rest to the heap.
func (tx *Tx) WriteArray(p Path, off uint64, data []byte, hint *alloc.Hint) error {
	if err := tx.changing(p); err != nil {
		return err
	}
	end := off + uint64(len(data))
	if end < off || end > MaxArrayOffset {
		return fmt.Errorf("%w: write at %d of %d bytes", ErrRange, off, len(data))
	}
	if len(data) == 0 {
		return nil
	}
	if tx.arrayOverlap(p, off, end) {
		return ErrTxOverlap
	}
	add := func(at uint64, b []byte, l *large) {
		tx.add(op{kind: opWrite, path: p, off: at, val: b, large: l})
	}
	buf := append([]byte{}, data...)
	if tx.s.toHeap(len(buf)) {
		for len(buf) > 0 {
			n := min(len(buf), MaxExtentLen)
			add(off, buf[:n], nil)
			off, buf = off+uint64(n), buf[n:]
		}
		return nil
	}
	// Unaligned head and tail to the heap, the aligned body to extents.
	head := min(uint64(len(buf)), (blockSize-off%blockSize)%blockSize)
	if head > 0 {
		add(off, buf[:head], nil)
		off, buf = off+head, buf[head:]
	}
	body := uint64(len(buf)) &^ (blockSize - 1)
	for body > 0 {
		n := min(body, MaxExtentLen)
		l, err := tx.s.writeLarge(hint, buf[:n], false)
		if err != nil {
			return err // reservations of ops added so far go with Abort
		}
		// One extent record per reserved extent.
		for _, pc := range l.split(buf[:n]) {
			add(off+pc.at, pc.data, pc.l)
		}
		off, buf, body = off+n, buf[n:], body-n
	}
	if len(buf) > 0 {
		add(off, buf, nil)
	}
	return nil
}

// PunchArray punches [start, end) of path's array (end MaxArrayOffset for
// "to the end", as truncate does).
func (tx *Tx) PunchArray(p Path, start, end uint64) error {
	if err := tx.changing(p); err != nil {
		return err
	}
	if start >= end || end > MaxArrayOffset {
		return fmt.Errorf("%w: punch [%d, %d)", ErrRange, start, end)
	}
	if tx.arrayOverlap(p, start, end) {
		return ErrTxOverlap
	}
	tx.add(op{kind: opPunchRange, path: p, off: start, end: end})
	return nil
}

// ReadArray reads len(buf) bytes at off of path's array: the store at the
// transaction's epoch with the transaction's own changes over it. Holes
// read as zeros.
func (tx *Tx) ReadArray(p Path, off uint64, buf []byte) error {
	if err := tx.usable(); err != nil {
		return err
	}
	if err := p.check(); err != nil {
		return err
	}
	rd := read{kind: readArray, path: p, off: off, n: uint64(len(buf))}
	var segs []Segment
	if err := tx.view(&rd.witness, func(v view) error {
		var err error
		segs, err = v.resolveArray(p, off, uint64(len(buf)))
		return err
	}); err != nil {
		return err
	}
	tx.record(rd)
	if err := tx.s.readSegments(p, segs, off, buf); err != nil {
		return err
	}
	end := off + uint64(len(buf))
	for _, o := range tx.ops {
		same := o.path.equal(p)
		whole := o.kind == opPunchObject && o.path.OID == p.OID ||
			o.kind == opPunchDkey && o.path.OID == p.OID && bytes.Equal(o.path.Dkey, p.Dkey) ||
			o.kind == opPunch && same
		switch {
		case whole:
			clear(buf)
		case !same:
		case o.kind == opWrite:
			lo, hi := max(o.off, off), min(o.off+uint64(len(o.val)), end)
			if lo < hi {
				copy(buf[lo-off:hi-off], o.val[lo-o.off:hi-o.off])
			}
		case o.kind == opPunchRange:
			lo, hi := max(o.off, off), min(o.end, end)
			if lo < hi {
				clear(buf[lo-off : hi-off])
			}
		}
	}
	return nil
}

// ListDkeys calls fn for each dkey of oid holding something at the
// transaction's epoch (own changes are not listed), from from (after from
// if exclusive), until fn returns false or limit keys were listed.
func (tx *Tx) ListDkeys(oid uint64, from []byte, exclusive bool, limit int, fn func(dkey []byte) bool) error {
	return tx.list(oid, nil, from, exclusive, limit, fn)
}

// ListAkeys lists the akeys of oid/dkey like ListDkeys.
func (tx *Tx) ListAkeys(oid uint64, dkey []byte, from []byte, exclusive bool, limit int, fn func(akey []byte) bool) error {
	return tx.list(oid, dkey, from, exclusive, limit, fn)
}

func (tx *Tx) list(oid uint64, dkey, from []byte, exclusive bool, limit int, fn func([]byte) bool) error {
	if err := tx.usable(); err != nil {
		return err
	}
	rd := read{kind: readList, path: Path{OID: oid, Dkey: dkey}, from: from, excl: exclusive, limit: limit}
	var keys [][]byte
	if err := tx.view(&rd.witness, func(v view) error {
		return listLimited(v, oid, dkey, from, exclusive, limit, func(k []byte) { keys = append(keys, k) })
	}); err != nil {
		return err
	}
	tx.record(rd)
	for _, k := range keys {
		if !fn(k) {
			break
		}
	}
	return nil
}

func listLimited(v view, oid uint64, dkey, from []byte, exclusive bool, limit int, add func([]byte)) error {
	n := 0
	return v.listKeys(oid, dkey, from, exclusive, func(k []byte) bool {
		add(k)
		n++
		return limit <= 0 || n < limit
	})
}

// replay runs a read again at the current state and reports whether it saw
// the same entries.
func (rd read) replay(v view) (bool, error) {
	var w []byte
	v.witness = &w
	var err error
	switch rd.kind {
	case readGet:
		_, err = v.lookup(rd.path)
	case readArray:
		_, err = v.resolveArray(rd.path, rd.off, rd.n)
	case readList:
		err = listLimited(v, rd.path.OID, rd.path.Dkey, rd.from, rd.excl, rd.limit, func([]byte) {})
	}
	return err == nil && bytes.Equal(w, rd.witness), err
}

// Abort abandons the transaction: its data-blob reservations are released
// once their writes have finished.
func (tx *Tx) Abort() {
	if tx.done {
		return
	}
	tx.done = true
	tx.s.unpin(tx.start)
	tx.releaseLarge()
}

func (tx *Tx) releaseLarge() {
	for _, o := range tx.ops {
		if o.large == nil {
			continue
		}
		for _, w := range o.large.ws {
			_ = w.Wait() // never hand out blocks a write may still land in
		}
		tx.s.p.Extents().Cancel(o.large.exts)
	}
}

var errFragmented = errors.New("vos: no single extent for the value")

// writeLarge reserves data-blob space for b (rounded up to blocks) and
// starts writing it. With single, the space must be one extent.
func (s *Store) writeLarge(hint *alloc.Hint, b []byte, single bool) (*large, error) {
	l, err := s.writeLargeNoAggregate(hint, b, single)
	if errors.Is(err, alloc.ErrNoSpace) {
		// Space that only old versions hold is reclaimable: aggregate
		// now rather than fail, then try once more.
		if _, aerr := s.Aggregate(context.Background()); aerr == nil {
			l, err = s.writeLargeNoAggregate(hint, b, single)
		}
	}
	return l, err
}

// writeLargeNoAggregate is writeLarge for aggregation itself: a full data
// blob is ErrNoSpace at once.
func (s *Store) writeLargeNoAggregate(hint *alloc.Hint, b []byte, single bool) (*large, error) {
	blocks := (uint64(len(b)) + blockSize - 1) / blockSize
	exts, err := s.p.Extents().Reserve(hint, blocks)
	if err != nil {
		return nil, err
	}
	if single && len(exts) > 1 {
		s.p.Extents().Cancel(exts)
		return nil, errFragmented
	}
	l := &large{exts: exts}
	buf := b
	if uint64(len(b))%blockSize != 0 {
		buf = make([]byte, blocks*blockSize)
		copy(buf, b)
	}
	for _, e := range exts {
		n := e.Count * blockSize
		w, err := s.p.WriteData(e, buf[:n])
		if err != nil {
			for _, w := range l.ws {
				_ = w.Wait()
			}
			s.p.Extents().Cancel(exts)
			return nil, err
		}
		l.ws = append(l.ws, w)
		buf = buf[n:]
	}
	// Here, not in the commit's critical section, and overlapping the
	// writes just started.
	l.csum = wal.Checksum(b)
	return l, nil
}

// Commit applies the transaction if every predicate holds and no conflict
// stands in the way, and returns once it is durable.
func (tx *Tx) Commit(ctx context.Context) (Result, error) {
	if err := tx.usable(); err != nil {
		return Result{}, err
	}
	res, pending, err := tx.commit(ctx)
	if err == nil && pending != nil {
		err = pending.Wait()
	}
	return res, err
}

// CommitAsync applies the transaction like Commit but returns before it is
// durable; Wait on the returned handle (or Pool().Sync()) for durability.
func (tx *Tx) CommitAsync(ctx context.Context) (Result, *pool.Pending, error) {
	if err := tx.usable(); err != nil {
		return Result{}, nil, err
	}
	return tx.commit(ctx)
}

func (tx *Tx) commit(ctx context.Context) (Result, *pool.Pending, error) {
	var res Result
	applied := false
	defer func() {
		tx.done = true
		tx.s.unpin(tx.start)
		if !applied {
			tx.releaseLarge()
		}
	}()
	if len(tx.ops) == 0 && len(tx.preds) == 0 {
		// A read-only transaction commits nothing (and never conflicts:
		// it read one consistent epoch); it has no epoch of its own.
		res.Status = Committed
		return res, nil, nil
	}
	// A version is visible to readers from the moment it is applied, so its
	// data must have landed first: wait for this transaction's data-blob
	// writes before the critical section (other transactions' log writes
	// still overlap them).
	for _, o := range tx.ops {
		if o.large == nil {
			continue
		}
		for _, w := range o.large.ws {
			if err := w.Wait(); err != nil {
				return Result{}, nil, err
			}
		}
	}
	pending, err := tx.s.p.UpdateAsync(ctx, func(ptx *pool.Tx) error {
		if tx.freeing {
			ptx.UseDeletionReserve()
		}
		st, failed, epoch, err := tx.s.applyTx(ptx, tx)
		res.Status, res.Failed, res.Epoch = st, failed, epoch
		if err == nil && st != Committed {
			return errNotApplied
		}
		return err
	})
	switch {
	case errors.Is(err, errNotApplied):
		return res, nil, nil
	case err != nil:
		return Result{}, nil, err
	}
	applied = true
	res.ID = pending.ID()
	return res, pending, nil
}

// errNotApplied makes the pool abort the heap transaction of a commit that
// ended in a predicate failure or a conflict.
var errNotApplied = errors.New("vos: not applied")
