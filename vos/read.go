package vos

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"

	"vosfs/alloc"
	"vosfs/umem"
)

// view reads the tree as of one epoch. It is used under the heap's read
// lock (Store.View) or inside a commit's critical section.
type view struct {
	s     *Store
	r     umem.Reader
	epoch uint64
	// witness, if not nil, collects every tree entry a read consumed, so a
	// replay can tell whether the read would return the same thing.
	witness *[]byte
}

func (v view) note(parts ...[]byte) {
	if v.witness == nil {
		return
	}
	for _, p := range parts {
		*v.witness = binary.AppendUvarint(*v.witness, uint64(len(p)))
		*v.witness = append(*v.witness, p...)
	}
}

// objPunch returns the epoch of the newest punch of oid at or below the
// view's epoch (0 if none): every version at or below it is invisible.
func (v view) objPunch(oid uint64) (uint64, error) {
	key := objPunchKey(oid, v.epoch)
	it := v.s.tree.Seek(v.r, key)
	prefix := key[:9]
	if it.Next() && bytes.HasPrefix(it.Key(), prefix) {
		v.note(it.Key())
		return ^binary.BigEndian.Uint64(it.Key()[len(prefix):]), nil
	}
	v.note([]byte("no object punch"))
	return 0, it.Err()
}

// part is one piece of a value: bytes in hand, or a data-blob extent to
// read once the heap lock is released.
type part struct {
	r    rec
	data []byte // nil for recData until loaded
}

// valueResult is what a single-value lookup found: a base value (or none)
// and the merge operands above it, newest first.
type valueResult struct {
	exists   bool
	base     *part
	operands []part
	merge    uint8
}

// lookup finds the value of path visible at the view's epoch.
func (v view) lookup(p Path) (valueResult, error) {
	var res valueResult
	punch, err := v.objPunch(p.OID)
	if err != nil {
		return res, err
	}
	key := p.valueKey(v.epoch)
	prefix := key[:len(key)-8]
	it := v.s.tree.Seek(v.r, key)
	for it.Next() {
		k := it.Key()
		if !bytes.HasPrefix(k, prefix) {
			break
		}
		epoch := ^binary.BigEndian.Uint64(k[len(prefix):])
		if epoch <= punch {
			break
		}
		r, err := decodeRec(it.Value())
		if err != nil {
			return res, fmt.Errorf("%v at epoch %d: %w", p, epoch, err)
		}
		v.note(k, it.Value())
		if r.kind == recPunch {
			break
		}
		pt, err := v.load(p, 0, r)
		if err != nil {
			return res, err
		}
		if r.merge != 0 {
			if res.merge != 0 && res.merge != r.merge {
				return res, fmt.Errorf("vos: %v mixes merge operators %d and %d", p, res.merge, r.merge)
			}
			res.merge = r.merge
			res.operands = append(res.operands, pt)
			res.exists = true
			continue
		}
		res.base, res.exists = &pt, true
		break
	}
	if len(res.operands) > v.s.opts.FoldChain && v.s.opts.FoldChain > 0 {
		v.s.askFold(p)
	}
	v.note([]byte("end"))
	return res, it.Err()
}

// load copies a record's bytes out of the heap, verified against the
// record's checksum (off is the array offset of an extent, 0 for a value);
// the data blob is read later, outside the lock (fetch, readSegments).
func (v view) load(p Path, off uint64, r rec) (part, error) {
	switch r.kind {
	case recInline:
		b := r.inline[:r.size]
		if err := v.s.verify(p, off, r, b); err != nil {
			return part{}, err
		}
		return part{r: r, data: append([]byte{}, b...)}, nil
	case recHeap:
		b, err := v.r.Bytes(r.loc, r.size)
		if err != nil {
			return part{}, err
		}
		if err := v.s.verify(p, off, r, b); err != nil {
			return part{}, err
		}
		return part{r: r, data: append([]byte{}, b...)}, nil
	}
	return part{r: r}, nil
}

// fetch reads the data-blob parts of a result, verified.
func (s *Store) fetch(p Path, pt *part) error {
	if pt.data != nil || pt.r.kind != recData {
		return nil
	}
	buf := make([]byte, pt.r.size)
	if err := s.p.ReadData(alloc.Extent{Block: pt.r.loc, Count: pt.r.blocks()}, 0, buf); err != nil {
		return err
	}
	if err := s.verify(p, 0, pt.r, buf); err != nil {
		return err
	}
	pt.data = buf
	return nil
}

// value folds a lookup result for p into bytes; exists is false for no
// value.
func (s *Store) value(p Path, res valueResult) ([]byte, bool, error) {
	if !res.exists {
		return nil, false, nil
	}
	if res.base != nil {
		if err := s.fetch(p, res.base); err != nil {
			return nil, false, err
		}
	}
	if res.merge == 0 {
		return res.base.data, true, nil
	}
	op, ok := s.byID[res.merge]
	if !ok {
		return nil, false, fmt.Errorf("vos: merge operator %d is not registered", res.merge)
	}
	ops := make([][]byte, len(res.operands))
	for i := range res.operands {
		pt := &res.operands[len(res.operands)-1-i] // oldest first
		if err := s.fetch(p, pt); err != nil {
			return nil, false, err
		}
		ops[i] = pt.data
	}
	var base []byte
	if res.base != nil {
		base = res.base.data
	}
	out, err := op.fn(base, res.base != nil, ops)
	return out, true, err
}

// Segment is a piece of an array read: Len bytes at Off, data or a hole.
type Segment struct {
	Off, Len uint64
	Hole     bool
	src      part   // for data: the extent's record and heap bytes
	epoch    uint64 // for data: the extent's epoch (with its key, it names its bytes for good)
	skip     uint64 // bytes into the extent where the segment starts
}

// arrayItem is an extent or a range punch, with its epoch.
type arrayItem struct {
	epoch      uint64
	start, end uint64
	punch      bool
	r          rec
}

// arrayItems lists the punches and extents of path visible at the view's
// epoch that reach [off, end), newest first (items of one epoch never
// overlap), noting each in the view's witness.
func (v view) arrayItems(p Path, off, end uint64) ([]arrayItem, error) {
	punch, err := v.objPunch(p.OID)
	if err != nil {
		return nil, err
	}
	var items []arrayItem
	// Range punches of this akey.
	pprefix := p.subPrefix(subPunch)
	it := v.s.tree.Seek(v.r, p.punchKey(v.epoch, 0))
	for it.Next() && bytes.HasPrefix(it.Key(), pprefix) {
		epoch := ^binary.BigEndian.Uint64(it.Key()[len(pprefix):])
		if epoch <= punch {
			break
		}
		r, err := decodeRec(it.Value())
		if err != nil {
			return nil, err
		}
		if r.loc < end && r.size > off {
			v.note(it.Key(), it.Value())
			items = append(items, arrayItem{epoch: epoch, start: r.loc, end: r.size, punch: true})
		}
	}
	if err := it.Err(); err != nil {
		return nil, err
	}
	// Extents that can reach [off, end): they start at most MaxExtentLen
	// before off.
	eprefix := p.subPrefix(subExt)
	from := uint64(0)
	if off > MaxExtentLen {
		from = off - MaxExtentLen
	}
	it = v.s.tree.Seek(v.r, p.extKey(from, ^uint64(0)))
	for it.Next() && bytes.HasPrefix(it.Key(), eprefix) {
		k := it.Key()[len(eprefix):]
		start := binary.BigEndian.Uint64(k)
		if start >= end {
			break
		}
		epoch := ^binary.BigEndian.Uint64(k[8:])
		if epoch > v.epoch || epoch <= punch {
			continue
		}
		r, err := decodeRec(it.Value())
		if err != nil {
			return nil, err
		}
		if start+r.size <= off {
			continue
		}
		v.note(it.Key(), it.Value())
		items = append(items, arrayItem{epoch: epoch, start: start, end: start + r.size, r: r})
	}
	if err := it.Err(); err != nil {
		return nil, err
	}
	sort.SliceStable(items, func(i, j int) bool { return items[i].epoch > items[j].epoch })
	return items, nil
}

// resolveArray maps [off, off+n) of path at the view's epoch to segments:
// the newest extent or punch at each byte wins; bytes no extent covers are
// holes.
func (v view) resolveArray(p Path, off, n uint64) ([]Segment, error) {
	end := off + n
	items, err := v.arrayItems(p, off, end)
	if err != nil {
		return nil, err
	}
	v.note([]byte("end"))
	// Paint newest first: each item claims the bytes not yet claimed.
	var claimed []Segment // sorted, non-overlapping
	for _, item := range items {
		lo, hi := max(item.start, off), min(item.end, end)
		var pt part
		loaded := false
		for _, gap := range gaps(claimed, lo, hi) {
			seg := Segment{Off: gap[0], Len: gap[1] - gap[0], Hole: item.punch}
			if !item.punch {
				// Once per extent, however many gaps it fills: its
				// checksum covers all of it.
				if !loaded {
					var err error
					if pt, err = v.load(p, item.start, item.r); err != nil {
						return nil, err
					}
					loaded = true
				}
				seg.src, seg.skip, seg.epoch = pt, gap[0]-item.start, item.epoch
			}
			claimed = insertSeg(claimed, seg)
		}
	}
	// Fill the rest with holes.
	var out []Segment
	for _, gap := range gaps(claimed, off, end) {
		claimed = insertSeg(claimed, Segment{Off: gap[0], Len: gap[1] - gap[0], Hole: true})
	}
	for _, s := range claimed {
		if len(out) > 0 && s.Hole && out[len(out)-1].Hole && out[len(out)-1].Off+out[len(out)-1].Len == s.Off {
			out[len(out)-1].Len += s.Len
			continue
		}
		out = append(out, s)
	}
	return out, nil
}

// gaps returns the sub-ranges of [lo, hi) not covered by segs (sorted).
func gaps(segs []Segment, lo, hi uint64) [][2]uint64 {
	var out [][2]uint64
	cur := lo
	i := sort.Search(len(segs), func(i int) bool { return segs[i].Off+segs[i].Len > lo })
	for ; i < len(segs) && cur < hi; i++ {
		s := segs[i]
		if s.Off >= hi {
			break
		}
		if s.Off > cur {
			out = append(out, [2]uint64{cur, s.Off})
		}
		cur = max(cur, s.Off+s.Len)
	}
	if cur < hi {
		out = append(out, [2]uint64{cur, hi})
	}
	return out
}

func insertSeg(segs []Segment, s Segment) []Segment {
	i := sort.Search(len(segs), func(i int) bool { return segs[i].Off > s.Off })
	segs = append(segs, Segment{})
	copy(segs[i+1:], segs[i:])
	segs[i] = s
	return segs
}

// readSegments copies the segments' bytes of p into buf, which starts at
// array offset off. Heap bytes are in hand (verified by load); data-blob
// extents are read now, each whole, so that its checksum is verified once
// before any of its bytes reach buf: an extent the read covers entirely
// is read into buf itself (with its neighbours on disk and in buf, in one
// read); one it covers in part is read into a buffer of its own and the
// part copied. Up to readParallel reads are in flight.
func (s *Store) readSegments(p Path, segs []Segment, off uint64, buf []byte) error {
	type piece struct{ from, to, skip uint64 } // bytes of buf, and where in the extent they start
	type extent struct {
		r      rec
		start  uint64 // array offset of the extent's first byte
		epoch  uint64
		pieces []piece
	}
	var exts []*extent
	byLoc := map[uint64]*extent{}
	for _, seg := range segs {
		from, to := seg.Off-off, seg.Off-off+seg.Len
		switch {
		case seg.Hole:
			clear(buf[from:to])
		case seg.src.data != nil:
			copy(buf[from:to], seg.src.data[seg.skip:seg.skip+seg.Len])
		default:
			e := byLoc[seg.src.r.loc]
			if e == nil {
				e = &extent{r: seg.src.r, start: seg.Off - seg.skip, epoch: seg.epoch}
				byLoc[seg.src.r.loc] = e
				exts = append(exts, e)
			}
			e.pieces = append(e.pieces, piece{from: from, to: to, skip: seg.skip})
		}
	}
	if len(exts) == 0 {
		return nil
	}
	whole := func(e *extent) bool {
		return len(e.pieces) == 1 && e.pieces[0].skip == 0 && e.pieces[0].to-e.pieces[0].from == e.r.size
	}
	// A run is extents read together: several whole ones that follow each
	// other on disk and in buf, or one extent read into its own buffer.
	var runs [][]*extent
	for _, e := range exts {
		if n := len(runs); n > 0 && whole(e) {
			last := runs[n-1][len(runs[n-1])-1]
			if whole(last) && last.r.size%blockSize == 0 && last.r.loc+last.r.blocks() == e.r.loc &&
				last.pieces[0].to == e.pieces[0].from && e.pieces[0].to-runs[n-1][0].pieces[0].from <= maxRun {
				runs[n-1] = append(runs[n-1], e)
				continue
			}
		}
		runs = append(runs, []*extent{e})
	}
	read := func(run []*extent) error {
		first := run[0]
		if whole(first) {
			from, to := first.pieces[0].from, run[len(run)-1].pieces[0].to
			blocks := (to - from + blockSize - 1) / blockSize
			if err := s.p.ReadData(alloc.Extent{Block: first.r.loc, Count: blocks}, 0, buf[from:to]); err != nil {
				return err
			}
			for _, e := range run {
				pc := e.pieces[0]
				if err := s.verify(p, e.start, e.r, buf[pc.from:pc.to]); err != nil {
					clear(buf[pc.from:pc.to]) // never leave bad bytes in the caller's buffer
					return err
				}
			}
			return nil
		}
		// Read in part: the kernel's 128 KiB reads of a 1 MiB extent
		// would read and verify it eight times, so the verified bytes
		// are kept for the next read of the same extent.
		ck := cacheKey{path: string(p.key()), start: first.start, epoch: first.epoch, loc: first.r.loc, size: first.r.size, csum: first.r.csum}
		tmp := s.extents.get(ck)
		if tmp == nil {
			tmp = make([]byte, first.r.size)
			if err := s.p.ReadData(alloc.Extent{Block: first.r.loc, Count: first.r.blocks()}, 0, tmp); err != nil {
				return err
			}
			if err := s.verify(p, first.start, first.r, tmp); err != nil {
				return err
			}
			s.extents.put(ck, tmp)
		}
		for _, pc := range first.pieces {
			copy(buf[pc.from:pc.to], tmp[pc.skip:])
		}
		return nil
	}
	if len(runs) == 1 {
		return read(runs[0])
	}
	sem := make(chan struct{}, readParallel)
	errs := make(chan error, len(runs))
	for _, run := range runs {
		sem <- struct{}{}
		go func(run []*extent) {
			defer func() { <-sem }()
			errs <- read(run)
		}(run)
	}
	var first error
	for range runs {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// maxRun bounds the bytes of one data-blob read of neighbouring extents,
// so a long read still has several in flight.
const maxRun = 4 << 20

// readParallel bounds the data-blob reads one array read has in flight.
const readParallel = 16

// akeyLive reports whether the akey p holds a value or array data at the
// view's epoch.
func (v view) akeyLive(p Path, objPunch uint64) (bool, error) {
	v.witness = nil // v is a copy: the listing notes the live keys instead
	res, err := v.lookup(p)
	if err != nil || res.exists {
		return res.exists, err
	}
	// Array: an extent newer than the newest whole-array punch.
	var punched uint64 = objPunch
	pprefix := p.subPrefix(subPunch)
	it := v.s.tree.Seek(v.r, p.punchKey(v.epoch, 0))
	for it.Next() && bytes.HasPrefix(it.Key(), pprefix) {
		r, err := decodeRec(it.Value())
		if err != nil {
			return false, err
		}
		if r.loc == 0 && r.size >= MaxArrayOffset {
			punched = max(punched, ^binary.BigEndian.Uint64(it.Key()[len(pprefix):]))
			break
		}
	}
	eprefix := p.subPrefix(subExt)
	it = v.s.tree.Seek(v.r, eprefix)
	for it.Next() && bytes.HasPrefix(it.Key(), eprefix) {
		epoch := ^binary.BigEndian.Uint64(it.Key()[len(eprefix)+8:])
		if epoch <= v.epoch && epoch > punched {
			return true, nil
		}
	}
	return false, it.Err()
}

// listKeys calls fn for each dkey of oid (when dkey is nil) or each akey of
// oid/dkey that holds something at the view's epoch, in key order, starting
// at from (after from when exclusive), until fn returns false.
func (v view) listKeys(oid uint64, dkey []byte, from []byte, exclusive bool, fn func(key []byte) bool) error {
	punch, err := v.objPunch(oid)
	if err != nil {
		return err
	}
	var base []byte
	if dkey == nil {
		base = objPrefix(nil, oid)
	} else {
		base = dkeyPrefix(nil, oid, dkey)
	}
	seek := base
	if from != nil {
		seek = esc(append([]byte(nil), base...), from)
		if exclusive {
			seek = afterEscaped(seek)
		}
	}
	for {
		it := v.s.tree.Seek(v.r, seek)
		if !it.Next() || !bytes.HasPrefix(it.Key(), base) {
			if err := it.Err(); err != nil {
				return err
			}
			break
		}
		key, _, err := unesc(it.Key()[len(base):])
		if err != nil {
			return err
		}
		key = append([]byte(nil), key...)
		kprefix := esc(append([]byte(nil), base...), key)
		live := false
		if dkey != nil {
			live, err = v.akeyLive(Path{OID: oid, Dkey: dkey, Akey: key}, punch)
		} else {
			err = v.listKeys(oid, key, nil, false, func([]byte) bool { live = true; return false })
		}
		if err != nil {
			return err
		}
		if live {
			v.note(key)
			if !fn(key) {
				return nil
			}
		}
		seek = afterEscaped(kprefix)
	}
	v.note([]byte("end of keys"))
	return nil
}
