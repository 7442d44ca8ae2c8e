package vos

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"vosfs/blob"
	"vosfs/pool"
	"vosfs/wal"
)

// The model-based test: random transactions against a plain in-memory
// reference model kept by epoch. Each committed transaction's operations
// are recorded under its epoch; the model at epoch E is the operations of
// epochs 1..E applied in order (writers derive from the previous version).
// After a power cut and recovery, the store must equal the model at its
// recovered epoch, which must be at least the last acknowledged one; every
// surviving snapshot must equal the model at its epoch.

const modelArrayLen = 48 << 10

var noAgg = false

var (
	modelOIDs  = []uint64{1, 2, 3}
	modelDkeys = []string{"a", "b", "c"}
)

type modelState struct {
	vals   map[string][]byte
	arrays map[string][]byte
}

func (m modelState) clone() modelState {
	c := modelState{vals: map[string][]byte{}, arrays: map[string][]byte{}}
	for k, v := range m.vals {
		c.vals[k] = v
	}
	for k, v := range m.arrays {
		c.arrays[k] = append([]byte(nil), v...)
	}
	return c
}

func (m modelState) apply(o op) {
	k := o.path.key()
	under := func(p Path) func(key string) bool {
		pre := string(objPrefix(nil, p.OID))
		if p.Dkey != nil {
			pre = string(dkeyPrefix(nil, p.OID, p.Dkey))
		}
		return func(key string) bool { return len(key) >= len(pre) && key[:len(pre)] == pre }
	}
	drop := func(match func(string) bool) {
		for key := range m.vals {
			if match(key) {
				delete(m.vals, key)
			}
		}
		for key := range m.arrays {
			if match(key) {
				delete(m.arrays, key)
			}
		}
	}
	switch o.kind {
	case opPut:
		m.vals[k] = o.val
	case opPunch:
		delete(m.vals, k)
		delete(m.arrays, k)
	case opMerge:
		old, ok := m.vals[k]
		switch o.merge {
		case 1:
			m.vals[k] = append(append([]byte{}, old...), o.val...)
		case 2:
			var n uint64
			if ok {
				n = binary.LittleEndian.Uint64(old)
			}
			m.vals[k] = binary.LittleEndian.AppendUint64(nil, n+binary.LittleEndian.Uint64(o.val))
		}
	case opWrite:
		a := m.arrays[k]
		if a == nil {
			a = make([]byte, modelArrayLen)
		}
		copy(a[o.off:], o.val)
		m.arrays[k] = a
	case opPunchRange:
		if a := m.arrays[k]; a != nil {
			clear(a[min(o.off, modelArrayLen):min(o.end, modelArrayLen)])
		}
	case opPunchDkey:
		drop(under(o.path))
	case opPunchObject:
		drop(under(Path{OID: o.path.OID}))
	}
}

type modelLog struct {
	mu    sync.Mutex
	ops   map[uint64][]op   // guarded by mu: operations by epoch
	acked uint64            // guarded by mu
	snaps map[string]uint64 // guarded by mu: snapshots acknowledged, by name
}

func (l *modelLog) state(n uint64) (modelState, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := modelState{vals: map[string][]byte{}, arrays: map[string][]byte{}}
	for e := uint64(1); e <= n; e++ {
		ops, ok := l.ops[e]
		if !ok {
			return m, fmt.Errorf("store holds epoch %d that no transaction committed", e)
		}
		for _, o := range ops {
			m.apply(o)
		}
	}
	return m, nil
}

func randPath(rng *rand.Rand, akey string) Path {
	return path(modelOIDs[rng.Intn(len(modelOIDs))], modelDkeys[rng.Intn(len(modelDkeys))], akey)
}

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	rng.Read(b)
	return b
}

// randomTx builds one random transaction (possibly read-modify-write).
func randomTx(rng *rand.Rand, tx *Tx) error {
	n := 1 + rng.Intn(4)
	for i := 0; i < n; i++ {
		var err error
		switch r := rng.Intn(20); {
		case r < 5:
			size := 1 + rng.Intn(100)
			if rng.Intn(4) == 0 {
				size = 4096 + rng.Intn(9000)
			}
			err = tx.Put(randPath(rng, "x"), randBytes(rng, size))
		case r < 6:
			err = tx.Punch(randPath(rng, "x"))
		case r < 8:
			err = tx.Merge(randPath(rng, "x"), MergeConcat, randBytes(rng, 1+rng.Intn(20)))
		case r < 9:
			err = tx.Merge(path(1, "ctr", "n"), MergeAdd64, u64(uint64(rng.Intn(100))))
		case r < 14:
			off := uint64(rng.Intn(modelArrayLen - 10000))
			size := 1 + rng.Intn(300)
			if rng.Intn(2) == 0 {
				size = 4096 + rng.Intn(9000)
			}
			err = tx.WriteArray(randPath(rng, "arr"), off, randBytes(rng, size), nil)
		case r < 16:
			start := uint64(rng.Intn(modelArrayLen))
			end := start + 1 + uint64(rng.Intn(8000))
			if rng.Intn(4) == 0 {
				end = MaxArrayOffset
			}
			err = tx.PunchArray(randPath(rng, "arr"), start, end)
		case r < 17:
			// Read-modify-write: conflicts and replays.
			p := randPath(rng, "x")
			var v []byte
			if v, _, err = tx.Get(p); err == nil {
				err = tx.Put(p, append(v[:len(v):len(v)], 'r'))
			}
		case r < 18:
			p := randPath(rng, "x")
			err = tx.PunchDkey(p.OID, p.Dkey)
		case r < 19:
			buf := make([]byte, 100)
			err = tx.ReadArray(randPath(rng, "arr"), uint64(rng.Intn(1000)), buf)
		default:
			err = tx.PunchObject(modelOIDs[rng.Intn(len(modelOIDs))])
		}
		if errors.Is(err, ErrTxOverlap) {
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// compare checks a view against a model state over the whole universe.
func compareModel(v *View, m modelState) error {
	for _, oid := range append(modelOIDs, 1) {
		for _, d := range append(modelDkeys, "ctr") {
			for _, a := range []string{"x", "n"} {
				p := path(oid, d, a)
				got, ok, err := v.Get(p)
				if err != nil {
					return err
				}
				want, wok := m.vals[p.key()]
				if ok != wok || !bytes.Equal(got, want) {
					return fmt.Errorf("epoch %d: %v is %v %x, want %v %x", v.epoch, p, ok, trunc(got), wok, trunc(want))
				}
			}
			p := path(oid, d, "arr")
			got := make([]byte, modelArrayLen)
			if err := v.ReadArray(p, 0, got); err != nil {
				return err
			}
			want := m.arrays[p.key()]
			if want == nil {
				want = make([]byte, modelArrayLen)
			}
			if !bytes.Equal(got, want) {
				i := 0
				for i < len(got) && got[i] == want[i] {
					i++
				}
				return fmt.Errorf("epoch %d: array %v differs from byte %d", v.epoch, p, i)
			}
		}
	}
	return nil
}

func trunc(b []byte) []byte {
	if len(b) > 16 {
		return b[:16]
	}
	return b
}

func modelConfig() pool.Config {
	return pool.Config{DataSize: pool.DataOffset + 8<<20, MetaSize: 4 << 20, WALSize: wal.RingOffset + 1<<20, RecordLimit: 128 << 10}
}

// modelThreshold alternates the store's threshold between seeds: at 16 KiB
// the model's 4–13 KiB array writes land in the heap, so aggregation
// migrates runs of them to the data blob.
func modelThreshold(seed int64) int {
	if seed%2 == 0 {
		return 16 << 10
	}
	return DefaultThreshold
}

// modelRun runs one crash state and returns a violation, if any.
func modelRun(seed int64, goroutines, steps, crashAt int) error {
	ctx := context.Background()
	mfs := blob.NewMemFS(seed)
	if err := pool.Create(mfs, "pool", modelConfig()); err != nil {
		return err
	}
	p, err := pool.Open(mfs, "pool", pool.Options{CheckpointInterval: 10 * time.Millisecond})
	if err != nil {
		return err
	}
	s, err := Open(p, Options{AggregateInterval: -1, Threshold: modelThreshold(seed)})
	if err != nil {
		return err
	}
	lg := &modelLog{ops: map[uint64][]op{}, snaps: map[string]uint64{}}
	mfs.CrashAfter(crashAt)
	var wg sync.WaitGroup
	errs := make(chan error, goroutines+1)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(seed*31 + int64(g)))
			for i := 0; i < steps; i++ {
				var err error
				switch r := rng.Intn(30); {
				case r == 0:
					if !noAgg {
						_, err = s.Aggregate(ctx)
					}
				case r == 1:
					name := fmt.Sprintf("s%d-%d", g, i)
					var e uint64
					if e, err = s.CreateSnapshot(ctx, name); err == nil {
						lg.mu.Lock()
						lg.snaps[name] = e
						lg.mu.Unlock()
					}
				case r == 2:
					lg.mu.Lock()
					var names []string
					for n := range lg.snaps {
						names = append(names, n)
					}
					lg.mu.Unlock()
					if len(names) > 0 {
						sort.Strings(names)
						name := names[rng.Intn(len(names))]
						// A deletion cut short by the crash may or may
						// not have happened: the snapshot may be gone.
						err = s.DeleteSnapshot(ctx, name)
						if err == nil || errors.Is(err, ErrNoSnapshot) {
							err = nil
						}
						lg.mu.Lock()
						delete(lg.snaps, name)
						lg.mu.Unlock()
					}
				default:
					tx := s.Begin()
					if err = randomTx(rng, tx); err != nil {
						tx.Abort()
						break
					}
					ops := tx.ops
					var res Result
					res, err = tx.Commit(ctx)
					if res.Status == Committed && res.Epoch != 0 {
						lg.mu.Lock()
						lg.ops[res.Epoch] = ops
						if err == nil {
							lg.acked = max(lg.acked, res.Epoch)
						}
						lg.mu.Unlock()
					}
				}
				if err != nil {
					if !errors.Is(err, blob.ErrCrashed) && !errors.Is(err, pool.ErrFailed) {
						errs <- fmt.Errorf("goroutine %d step %d: %w", g, i, err)
					}
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	img := mfs.CrashImage()
	if img == nil {
		img = mfs.Crash()
	}
	s.Close()
	p.Close()

	p, err = pool.Open(img, "pool", pool.Options{})
	if err != nil {
		return fmt.Errorf("reopen: %w", err)
	}
	defer p.Close()
	s, err = Open(p, Options{AggregateInterval: -1, Threshold: modelThreshold(seed)})
	if err != nil {
		return fmt.Errorf("reopen store: %w", err)
	}
	defer s.Close()
	if err := s.Check(); err != nil {
		return fmt.Errorf("check: %w", err)
	}
	epoch := s.Epoch()
	lg.mu.Lock()
	acked := lg.acked
	lg.mu.Unlock()
	if epoch < acked {
		return fmt.Errorf("store recovered epoch %d, %d was acknowledged", epoch, acked)
	}
	m, err := lg.state(epoch)
	if err != nil {
		return err
	}
	v := s.Latest()
	err = compareModel(v, m)
	v.Close()
	if err != nil {
		return err
	}
	for _, si := range s.Snapshots() {
		sm, err := lg.state(si.Epoch)
		if err != nil {
			return err
		}
		sv, err := s.Snapshot(si.Name)
		if err != nil {
			return err
		}
		err = compareModel(sv, sm)
		sv.Close()
		if err != nil {
			return fmt.Errorf("snapshot %s: %w (%s)", si.Name, err, firstDivergence(s, lg, epoch))
		}
	}
	lg.mu.Lock()
	defer lg.mu.Unlock()
	have := map[string]bool{}
	for _, si := range s.Snapshots() {
		have[si.Name] = true
	}
	for name := range lg.snaps {
		if !have[name] {
			return fmt.Errorf("acknowledged snapshot %s is missing", name)
		}
	}
	// Aggregation after recovery keeps everything equal.
	if _, err := s.Aggregate(ctx); err != nil {
		return err
	}
	if err := s.Check(); err != nil {
		return fmt.Errorf("check after aggregation: %w", err)
	}
	v = s.Latest()
	defer v.Close()
	return compareModel(v, m)
}

// firstDivergence names the first epoch at which the store and the model
// differ, with that epoch's operations, to make a failure readable.
func firstDivergence(s *Store, lg *modelLog, last uint64) string {
	for e := uint64(1); e <= last; e++ {
		m, err := lg.state(e)
		if err != nil {
			return err.Error()
		}
		v := &View{s: s, epoch: s.pin(e)}
		err = compareModel(v, m)
		v.Close()
		if err != nil {
			lg.mu.Lock()
			ops := lg.ops[e]
			lg.mu.Unlock()
			var desc []string
			for _, o := range ops {
				desc = append(desc, fmt.Sprintf("{kind %d %v off %d end %d len %d large %v}", o.kind, o.path, o.off, o.end, len(o.val), o.large != nil))
			}
			return fmt.Sprintf("first divergence at epoch %d: %v; ops %v", e, err, desc)
		}
	}
	return "no divergence found"
}

func TestModelCrash(t *testing.T) {
	states := 1000
	if testing.Short() {
		states = 100
	}
	if v := os.Getenv("VOSFS_VOS_CRASH_STATES"); v != "" {
		var err error
		states, err = strconv.Atoi(v)
		require.NoError(t, err)
	}
	seed := time.Now().UnixNano()
	if v := os.Getenv("VOSFS_CRASH_SEED"); v != "" {
		var err error
		seed, err = strconv.ParseInt(v, 10, 64)
		require.NoError(t, err)
	}
	t.Logf("VOSFS_CRASH_SEED=%d", seed)
	rng := rand.New(rand.NewSource(seed))
	for i := 0; i < states; i++ {
		s, g, steps, at := rng.Int63(), 1+rng.Intn(3), 10+rng.Intn(30), 1+rng.Intn(500)
		err := modelRun(s, g, steps, at)
		require.NoError(t, err, "state %d: seed=%d goroutines=%d steps=%d crashAfter=%d (VOSFS_CRASH_SEED=%d)", i, s, g, steps, at, seed)
	}
	t.Logf("%d crash states", states)
}
