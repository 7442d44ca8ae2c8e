package pool

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"time"

	"vosfs/alloc"
	"vosfs/umem"
)

// The engine workload used by the crash and load tests: a table of slots in
// the heap, each holding nothing, a small value in the heap or a large value
// in data-blob extents. Each transaction bumps a sequence number in the root
// area, so after recovery the sequence says exactly which prefix of
// transactions the pool holds, and the model says what that prefix is.

const (
	slotCount = 32
	slotSize  = 48
	kindNone  = 0
	kindSmall = 1
	kindLarge = 2

	rootTable = RootOffset     // heap offset of the table
	rootSeq   = RootOffset + 8 // transactions applied
)

// slot is one table entry: kind u8 (in a u64), off/block u64, len/count u64,
// size u64, token u64, reserved u64.
type slot struct {
	Kind  uint64
	Where uint64 // heap offset or first block
	Count uint64 // heap bytes or blocks
	Size  uint64 // value bytes
	Token uint64 // seeds the value's bytes
}

func (s slot) encode() []byte {
	b := make([]byte, slotSize)
	for i, v := range []uint64{s.Kind, s.Where, s.Count, s.Size, s.Token} {
		binary.LittleEndian.PutUint64(b[8*i:], v)
	}
	return b
}

func decodeSlot(b []byte) slot {
	le := binary.LittleEndian
	return slot{le.Uint64(b), le.Uint64(b[8:]), le.Uint64(b[16:]), le.Uint64(b[24:]), le.Uint64(b[32:])}
}

// valueBytes is the content of a value: a function of its token and size.
func valueBytes(token, size uint64) []byte {
	b := make([]byte, size)
	rand.New(rand.NewSource(int64(token))).Read(b)
	return b
}

// op is one planned change of a transaction.
type op struct {
	Slot  int
	Kind  uint64
	Size  uint64
	Token uint64
}

// model records the operations of every applied transaction by sequence.
type model struct {
	mu    sync.Mutex
	ops   map[uint64][]op // guarded by mu
	acked uint64          // guarded by mu: highest sequence acknowledged durable
}

func newModel() *model { return &model{ops: map[uint64][]op{}} }

func (m *model) record(seq uint64, ops []op) {
	m.mu.Lock()
	m.ops[seq] = ops
	m.mu.Unlock()
}

func (m *model) ack(seq uint64) {
	m.mu.Lock()
	m.acked = max(m.acked, seq)
	m.mu.Unlock()
}

// state is the table after the first n transactions.
func (m *model) state(n uint64) ([slotCount]op, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var st [slotCount]op
	for s := uint64(1); s <= n; s++ {
		ops, ok := m.ops[s]
		if !ok {
			return st, fmt.Errorf("pool holds transaction %d that was never applied", s)
		}
		for _, o := range ops {
			st[o.Slot] = o
		}
	}
	return st, nil
}

// workload drives transactions against a pool.
type workload struct {
	p     *Pool
	m     *model
	token uint64 // guarded by the pool's critical section (bumped in fn) -- use tokenMu
	tmu   sync.Mutex
	// largeMax is the largest value in blocks.
	largeMax int
}

func (w *workload) nextToken() uint64 {
	w.tmu.Lock()
	defer w.tmu.Unlock()
	w.token++
	return w.token
}

// setup allocates the table in the first transaction (unless the pool
// already has it).
func (w *workload) setup(ctx context.Context) error {
	_, err := w.p.Update(ctx, func(tx *Tx) error {
		if t, err := tx.Reader().Uint64(rootTable); err != nil || t != 0 {
			return err
		}
		off, err := tx.Alloc(slotCount * slotSize)
		if err != nil {
			return err
		}
		if err := tx.Memset(off, slotCount*slotSize, 0); err != nil {
			return err
		}
		return tx.PutUint64(rootTable, off)
	})
	return err
}

// step runs one random transaction; it returns the pool's error if any.
func (w *workload) step(ctx context.Context, rng *rand.Rand) error {
	n := 1 + rng.Intn(3)
	ops := make([]op, 0, n)
	used := map[int]bool{}
	for len(ops) < n {
		o := op{Slot: rng.Intn(slotCount), Token: w.nextToken()}
		if used[o.Slot] {
			continue
		}
		used[o.Slot] = true
		switch r := rng.Intn(10); {
		case r < 5:
			o.Kind, o.Size = kindSmall, uint64(1+rng.Intn(3000))
		case r < 8:
			o.Kind, o.Size = kindLarge, uint64(1+rng.Intn(w.largeMax))*BlockSize
		default:
			o.Kind = kindNone
		}
		ops = append(ops, o)
	}
	// Large values: reserve and start the data writes before the critical
	// section, as the design's write path says.
	type large struct {
		exts []alloc.Extent
		ws   []*DataWrite
	}
	larges := make([]large, len(ops))
	cancelAll := func() {
		for _, l := range larges {
			if l.exts != nil {
				w.p.Extents().Cancel(l.exts)
			}
		}
	}
	for i, o := range ops {
		if o.Kind != kindLarge {
			continue
		}
		exts, err := w.p.Extents().Reserve(nil, o.Size/BlockSize)
		if errors.Is(err, alloc.ErrNoSpace) || len(exts) > 1 {
			// The table keeps one extent per value: a full or
			// fragmented data blob turns the change into a delete.
			if err == nil {
				w.p.Extents().Cancel(exts)
			}
			ops[i] = op{Slot: o.Slot, Token: o.Token}
			continue
		}
		if err != nil {
			cancelAll()
			return err
		}
		larges[i].exts = exts
		data := valueBytes(o.Token, o.Size)
		for _, e := range exts {
			dw, err := w.p.WriteData(e, data[:e.Count*BlockSize])
			if err != nil {
				cancelAll()
				return err
			}
			data = data[e.Count*BlockSize:]
			larges[i].ws = append(larges[i].ws, dw)
		}
	}
	var seq uint64
	ran := false
	_, err := w.p.Update(ctx, func(tx *Tx) error {
		ran = true
		r := tx.Reader()
		table, err := r.Uint64(rootTable)
		if err != nil {
			return err
		}
		if table == 0 {
			return errors.New("workload: no table")
		}
		if seq, err = r.Uint64(rootSeq); err != nil {
			return err
		}
		seq++
		for i, o := range ops {
			soff := table + uint64(o.Slot)*slotSize
			b, err := r.Bytes(soff, slotSize)
			if err != nil {
				return err
			}
			old := decodeSlot(b)
			switch old.Kind {
			case kindSmall:
				err = tx.Free(old.Where, old.Count)
			case kindLarge:
				err = tx.FreeExtents([]alloc.Extent{{Block: old.Where, Count: old.Count}})
			}
			if err != nil {
				return err
			}
			s := slot{Kind: o.Kind, Size: o.Size, Token: o.Token}
			switch o.Kind {
			case kindSmall:
				if s.Where, err = tx.Alloc(o.Size); err != nil {
					return err
				}
				s.Count = o.Size
				if err := tx.Write(s.Where, valueBytes(o.Token, o.Size)); err != nil {
					return err
				}
			case kindLarge:
				exts := larges[i].exts
				if err := tx.PublishExtents(exts); err != nil {
					return err
				}
				for _, dw := range larges[i].ws {
					if err := tx.AddData(dw); err != nil {
						return err
					}
				}
				if len(exts) != 1 {
					return fmt.Errorf("fragmented reservation %v", exts)
				}
				s.Where, s.Count = exts[0].Block, exts[0].Count
			}
			if err := tx.Write(soff, s.encode()); err != nil {
				return err
			}
		}
		w.m.record(seq, ops)
		return tx.PutUint64(rootSeq, seq)
	})
	if !ran {
		cancelAll()
	}
	if err != nil {
		return err
	}
	w.m.ack(seq)
	return nil
}

// verify checks the recovered pool against the model: the checker passes,
// the pool holds a prefix at least as long as every acknowledged
// transaction, and every slot holds that prefix's value, byte for byte.
func verify(p *Pool, m *model) error {
	var seq, table uint64
	var slots [slotCount]slot
	var small [slotCount][]byte
	err := p.View(func(r umem.Reader) error {
		var err error
		if table, err = r.Uint64(rootTable); err != nil {
			return err
		}
		if seq, err = r.Uint64(rootSeq); err != nil {
			return err
		}
		if table == 0 {
			return nil
		}
		for i := range slots {
			b, err := r.Bytes(table+uint64(i)*slotSize, slotSize)
			if err != nil {
				return err
			}
			slots[i] = decodeSlot(b)
			if slots[i].Kind == kindSmall {
				v, err := r.Bytes(slots[i].Where, slots[i].Size)
				if err != nil {
					return err
				}
				small[i] = append([]byte(nil), v...)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := p.Check(workloadRefs(table, slots)); err != nil {
		return fmt.Errorf("check: %w", err)
	}
	m.mu.Lock()
	acked := m.acked
	m.mu.Unlock()
	if seq < acked {
		return fmt.Errorf("pool holds %d transactions, %d were acknowledged", seq, acked)
	}
	want, err := m.state(seq)
	if err != nil {
		return err
	}
	for i, s := range slots {
		o := want[i]
		if s.Kind != o.Kind || (o.Kind != kindNone && (s.Size != o.Size || s.Token != o.Token)) {
			return fmt.Errorf("after %d transactions slot %d is %+v, want %+v", seq, i, s, o)
		}
		var got []byte
		switch s.Kind {
		case kindSmall:
			got = small[i]
		case kindLarge:
			got = make([]byte, s.Size)
			if err := p.ReadData(alloc.Extent{Block: s.Where, Count: s.Count}, 0, got); err != nil {
				return err
			}
		default:
			continue
		}
		if string(got) != string(valueBytes(s.Token, s.Size)) {
			return fmt.Errorf("after %d transactions slot %d (kind %d) has wrong bytes", seq, i, s.Kind)
		}
	}
	return nil
}

func workloadRefs(table uint64, slots [slotCount]slot) Refs {
	var refs Refs
	if table == 0 {
		return refs
	}
	refs.Heap = append(refs.Heap, alloc.Span{Off: table, Size: roundUnit(slotCount * slotSize)})
	for _, s := range slots {
		switch s.Kind {
		case kindSmall:
			refs.Heap = append(refs.Heap, alloc.Span{Off: s.Where, Size: roundUnit(s.Count)})
		case kindLarge:
			refs.Extents = append(refs.Extents, alloc.Extent{Block: s.Where, Count: s.Count})
		}
	}
	return refs
}

func roundUnit(n uint64) uint64 { return (n + alloc.HeapUnit - 1) / alloc.HeapUnit * alloc.HeapUnit }

// isCrash reports whether err comes from the simulated power cut (or the
// fail-stop it caused).
func isCrash(err error) bool { return err != nil && (errors.Is(err, ErrFailed) || isCrashed(err)) }

func newRand(seed int64) *rand.Rand { return rand.New(rand.NewSource(seed)) }

const (
	testTimeout = 5 * time.Second
	pollEvery   = 5 * time.Millisecond
)
