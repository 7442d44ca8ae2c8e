package vos

import (
	"context"
	"errors"
	"fmt"

	"vosfs/alloc"
	"vosfs/umem"
)

// View is a read-only view of the store at one epoch: the latest state when
// it was made, or a snapshot's. What it sees stays frozen while writers go
// on; aggregation keeps it readable until Close.
type View struct {
	s      *Store
	epoch  uint64
	closed bool
}

// Latest returns a view of the current state.
func (s *Store) Latest() *View { return &View{s: s, epoch: s.pin(0)} }

// Epoch is the view's epoch.
func (v *View) Epoch() uint64 { return v.epoch }

// Close releases the view.
func (v *View) Close() {
	if !v.closed {
		v.closed = true
		v.s.unpin(v.epoch)
	}
}

var errViewClosed = errors.New("vos: view closed")

func (v *View) run(fn func(view) error) error {
	if v.closed {
		return errViewClosed
	}
	return v.s.p.View(func(r umem.Reader) error { return fn(view{s: v.s, r: r, epoch: v.epoch}) })
}

// Get returns the value of p.
func (v *View) Get(p Path) ([]byte, bool, error) {
	if err := p.check(); err != nil {
		return nil, false, err
	}
	var res valueResult
	if err := v.run(func(w view) error {
		var err error
		res, err = w.lookup(p)
		return err
	}); err != nil {
		return nil, false, err
	}
	return v.s.value(p, res)
}

// Segments maps [off, off+n) of p's array to data and hole segments.
func (v *View) Segments(p Path, off, n uint64) ([]Segment, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	var segs []Segment
	err := v.run(func(w view) error {
		var err error
		segs, err = w.resolveArray(p, off, n)
		return err
	})
	return segs, err
}

// ReadArray reads len(buf) bytes at off of p's array; holes read as zeros.
func (v *View) ReadArray(p Path, off uint64, buf []byte) error {
	segs, err := v.Segments(p, off, uint64(len(buf)))
	if err != nil {
		return err
	}
	return v.s.readSegments(p, segs, off, buf)
}

// ListDkeys calls fn for each dkey of oid holding something, in key order,
// from from (after it when exclusive), until fn returns false or limit
// keys were listed (limit <= 0: no limit).
func (v *View) ListDkeys(oid uint64, from []byte, exclusive bool, limit int, fn func(dkey []byte) bool) error {
	return v.list(oid, nil, from, exclusive, limit, fn)
}

// ListAkeys lists the akeys of oid/dkey like ListDkeys.
func (v *View) ListAkeys(oid uint64, dkey []byte, from []byte, exclusive bool, limit int, fn func(akey []byte) bool) error {
	if len(dkey) == 0 {
		return ErrEmptyKey
	}
	return v.list(oid, dkey, from, exclusive, limit, fn)
}

func (v *View) list(oid uint64, dkey, from []byte, exclusive bool, limit int, fn func([]byte) bool) error {
	var keys [][]byte
	if err := v.run(func(w view) error {
		return listLimited(w, oid, dkey, from, exclusive, limit, func(k []byte) { keys = append(keys, k) })
	}); err != nil {
		return err
	}
	for _, k := range keys {
		if !fn(k) {
			break
		}
	}
	return nil
}

// noSpaceAggregations bounds the aggregation passes one Update runs when
// its commit finds the heap full.
const noSpaceAggregations = 4

// UpdateOptions tune Update.
type UpdateOptions struct {
	// Retries is how many times an aborted transaction is run again.
	Retries int
	// NoReplay aborts on a conflict at once instead of replaying reads.
	NoReplay bool
	// Async returns before the commit is durable.
	Async bool
}

// Update runs fn in a transaction and commits it, running it again (up to
// opts.Retries times) when a conflict aborts it. A predicate failure
// returns an error wrapping ErrPredicate; an abort with no retries left
// returns ErrAborted. fn must be safe to run more than once.
func (s *Store) Update(ctx context.Context, opts UpdateOptions, fn func(*Tx) error) (Result, error) {
	aggregated := 0
	for attempt := 0; ; attempt++ {
		tx := s.Begin()
		tx.noReplay = opts.NoReplay
		if err := fn(tx); err != nil {
			tx.Abort()
			return Result{}, err
		}
		var res Result
		var err error
		if opts.Async {
			res, _, err = tx.CommitAsync(ctx)
		} else {
			res, err = tx.Commit(ctx)
		}
		if errors.Is(err, alloc.ErrNoSpace) && aggregated < noSpaceAggregations {
			// The heap may be full of versions nobody can see: aggregate
			// and try again, while that drops something.
			aggregated++
			n, aerr := s.Aggregate(ctx)
			if aerr == nil && (n > 0 || aggregated == 1) {
				attempt--
				continue
			}
		}
		if err != nil {
			return res, err
		}
		switch res.Status {
		case Committed:
			return res, nil
		case PredicateFailure:
			f := res.Failed
			return res, fmt.Errorf("%w: #%d (%v on %v), existed=%v", ErrPredicate, f.Index, f.Predicate.Kind, f.Predicate.Path, f.Existed)
		}
		if attempt >= opts.Retries {
			return res, ErrAborted
		}
		s.count(func(st *Stats) { st.Retries++ })
	}
}

// ListObjects calls fn for each object holding something, in ID order,
// until fn returns false.
func (v *View) ListObjects(fn func(oid uint64) bool) error {
	var oids []uint64
	if err := v.run(func(w view) error {
		seek := []byte{kindData}
		for {
			it := w.s.tree.Seek(w.r, seek)
			if !it.Next() || it.Key()[0] != kindData {
				return it.Err()
			}
			pk, err := parseDataKey(it.Key())
			if err != nil {
				return err
			}
			live := false
			if err := w.listKeys(pk.oid, nil, nil, false, func([]byte) bool { live = true; return false }); err != nil {
				return err
			}
			if live {
				oids = append(oids, pk.oid)
			}
			if pk.oid == ^uint64(0) {
				return nil
			}
			seek = objPrefix(nil, pk.oid+1)
		}
	}); err != nil {
		return err
	}
	for _, o := range oids {
		if !fn(o) {
			break
		}
	}
	return nil
}
