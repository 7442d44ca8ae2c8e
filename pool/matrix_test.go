package pool_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"vosfs/blob"
	"vosfs/pool"
	"vosfs/umem"
	"vosfs/vos"
	"vosfs/wal"
)

// The corruption matrix: a reference pool (clean, or dirty with live log
// records before and after the header's durable mark) is damaged in every
// region of every blob, one case at a time, by flipping a byte or
// truncating the blob, on the in-memory FS and on real files. Each case is
// then opened, checked (vos.Store.Check, which includes pool.Check) and
// every object is read: it must either be refused with the error its region
// calls for, or read back exactly the reference bytes (a read may also be
// refused, with an error, but never return other bytes). Losing an
// acknowledged operation is allowed in one place only, the documented limit
// of the wal: damage in the log's last batch is indistinguishable from a
// torn write and ends the log there; the test checks that what is lost then
// lies within the batch limit of the damage.

var matrixCfg = pool.Config{DataSize: pool.DataOffset + 2<<20, MetaSize: 1 << 20, WALSize: wal.RingOffset + wal.MinRingSize, RecordLimit: 16 << 10}

// refObj is one acknowledged object of the reference pool.
type refObj struct {
	path  vos.Path
	array bool
	data  []byte
	id    wal.ID // its log record
	phase string // "A" (checkpointed), "B" (live, before the durable mark), "C" (live, after it)
}

// refPool is a reference pool's files and what is where in them.
type refPool struct {
	dirty    bool
	files    map[string][]byte
	objs     []refObj
	layout   pool.Layout
	ring     uint64
	heapUsed []uint64 // heap offsets of allocated arena units (sampled)
	dataUsed []uint64 // allocated data blocks (sampled)
	dataFree uint64   // a free data block
}

func objData(i int) (bool, []byte) {
	fill := func(n int) []byte {
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(i*7 + j*13 + j>>8)
		}
		return b
	}
	switch i % 4 {
	case 0:
		return false, fill(1000) // heap value, in the record
	case 1:
		return true, fill(20 << 10) // data-blob extent
	case 2:
		return true, fill(2 << 10) // heap extent
	default:
		return false, fill(17 << 10) // data-blob value
	}
}

// buildRef writes the reference pool on fsys in dir and returns its files.
func buildRef(t *testing.T, fsys blob.FS, dir string, dirty bool) *refPool {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, pool.Create(fsys, dir, matrixCfg))
	p, err := pool.Open(fsys, dir, pool.Options{CheckpointInterval: time.Hour, DirtyLimit: 1 << 40, HighWater: 0.99})
	require.NoError(t, err)
	s, err := vos.Open(p, vos.Options{AggregateInterval: -1, FoldChain: -1, Logf: func(string, ...any) {}})
	require.NoError(t, err)
	ref := &refPool{dirty: dirty, layout: p.Layout(), ring: matrixCfg.WALSize - wal.RingOffset}
	write := func(phase string, n int) {
		for k := 0; k < n; k++ {
			i := len(ref.objs)
			array, data := objData(i)
			o := refObj{path: vos.Path{OID: uint64(vos.FirstOID + i), Dkey: []byte("d"), Akey: []byte("a")}, array: array, data: data, phase: phase}
			res, err := s.Update(ctx, vos.UpdateOptions{}, func(tx *vos.Tx) error {
				if array {
					return tx.WriteArray(o.path, 0, data, nil)
				}
				return tx.Put(o.path, data)
			})
			require.NoError(t, err)
			o.id = res.ID
			ref.objs = append(ref.objs, o)
		}
	}
	write("A", 12)
	require.NoError(t, p.Checkpoint())
	write("B", 8)
	require.NoError(t, p.MarkDurableForTest())
	write("C", 36) // well past the 64 KiB batch limit of this ring
	require.NoError(t, s.Check())

	// Sample what is allocated: arena units and data blocks.
	require.NoError(t, p.View(func(r umem.Reader) error {
		l := ref.layout
		var units []uint64
		for u := uint64(0); u < l.ArenaSize/64; u++ {
			if set, err := r.Bit(l.HeapBitmap, u); err != nil {
				return err
			} else if set {
				units = append(units, u)
			}
		}
		for i := 0; i < len(units); i += max(1, len(units)/10) {
			ref.heapUsed = append(ref.heapUsed, pool.HeapOffset+l.ArenaOffset+units[i]*64+uint64(i%64))
		}
		var blocks []uint64
		for b := uint64(0); b < l.DataBlocks; b++ {
			if set, err := r.Bit(l.DataBitmap, b); err != nil {
				return err
			} else if set {
				blocks = append(blocks, b)
			} else if ref.dataFree == 0 {
				ref.dataFree = b
			}
		}
		for i := 0; i < len(blocks); i += max(1, len(blocks)/6) {
			ref.dataUsed = append(ref.dataUsed, blocks[i])
		}
		return nil
	}))
	require.NotEmpty(t, ref.heapUsed)
	require.NotEmpty(t, ref.dataUsed)

	require.NoError(t, s.Close())
	if dirty {
		// A power cut right after the last acknowledgement: the log flushed,
		// nothing more checkpointed.
		require.NoError(t, p.Shutdown(pool.ShutdownLogFlush))
		require.ErrorIs(t, p.Close(), pool.ErrShutdown)
	} else {
		require.NoError(t, p.Close())
	}
	ref.files = map[string][]byte{}
	for _, name := range []string{pool.WALFile, pool.MetaFile, pool.DataFile} {
		f, err := fsys.Open(filepath.Join(dir, name))
		require.NoError(t, err)
		size, err := f.Size()
		require.NoError(t, err)
		b := make([]byte, size)
		_, err = f.ReadAt(b, 0)
		require.NoError(t, err)
		require.NoError(t, f.Close())
		ref.files[name] = b
	}
	return ref
}

// damage is one case of the matrix.
type damage struct {
	region string
	file   string
	off    int64 // byte flipped; with truncate, the new size
	trunc  bool
	want   []error // errors an open may refuse with; nil: it must open
	// limit: the damage may be taken as a torn tail (it is within the
	// batch limit of the log's end), losing the records from at on.
	limit bool
	at    wal.ID
}

func (r *refPool) ringOff(id wal.ID) int64 { return int64(wal.RingOffset + uint64(id)%r.ring) }

// recordSize decodes the record at id in the reference log.
func (r *refPool) recordSize(t *testing.T, id wal.ID) uint64 {
	t.Helper()
	_, n, err := wal.DecodeRecord(r.files[pool.WALFile][r.ringOff(id):])
	require.NoError(t, err)
	return n
}

func (r *refPool) cases(t *testing.T, short bool) []damage {
	badHeader := []error{wal.ErrBadHeader, pool.ErrBadPool}
	bad := []error{pool.ErrBadPool}
	corrupt := []error{pool.ErrCorrupt}
	walSize := int64(len(r.files[pool.WALFile]))
	metaSize := int64(len(r.files[pool.MetaFile]))
	dataSize := int64(len(r.files[pool.DataFile]))
	cs := []damage{
		{region: "log header slot 0", file: pool.WALFile, off: 70},
		{region: "log header slot 1", file: pool.WALFile, off: 4096 + 70},
		{region: "log header both slots", file: pool.WALFile, off: -1, want: badHeader},
		{region: "log truncated by a block", file: pool.WALFile, off: walSize - 4096, trunc: true, want: badHeader},
		{region: "log truncated to its headers", file: pool.WALFile, off: wal.RingOffset, trunc: true, want: badHeader},
		{region: "meta header", file: pool.MetaFile, off: 40, want: bad},
		{region: "meta truncated by a block", file: pool.MetaFile, off: metaSize - 4096, trunc: true, want: bad},
		{region: "heap superblock", file: pool.MetaFile, off: pool.HeapOffset + 20, want: bad},
		{region: "heap root area", file: pool.MetaFile, off: pool.HeapOffset + pool.RootOffset + 1},
		{region: "heap allocator bitmap", file: pool.MetaFile, off: int64(pool.HeapOffset + r.layout.HeapBitmap)},
		{region: "data allocator bitmap", file: pool.MetaFile, off: int64(pool.HeapOffset + r.layout.DataBitmap)},
		{region: "data header", file: pool.DataFile, off: 20, want: bad},
		{region: "data truncated by a block", file: pool.DataFile, off: dataSize - 4096, trunc: true, want: bad},
		{region: "data free block", file: pool.DataFile, off: int64(pool.DataOffset + r.dataFree*pool.BlockSize + 9)},
	}
	for _, off := range r.heapUsed {
		cs = append(cs, damage{region: "heap page in use", file: pool.MetaFile, off: int64(off)})
	}
	for _, b := range r.dataUsed {
		cs = append(cs, damage{region: "data extent", file: pool.DataFile, off: int64(pool.DataOffset + b*pool.BlockSize + 100)})
	}
	// The log's records: of the checkpointed phase (dead in both states),
	// and, live in a dirty pool, before and after the durable mark.
	var byPhase = map[string][]refObj{}
	for _, o := range r.objs {
		byPhase[o.phase] = append(byPhase[o.phase], o)
	}
	last := r.objs[len(r.objs)-1]
	logEnd := last.id + wal.ID(r.recordSize(t, last.id))
	window := uint64(min(wal.MaxBatch, r.ring/4))
	rec := func(region string, o refObj, delta uint64) damage {
		d := damage{region: region, file: pool.WALFile, off: r.ringOff(o.id + wal.ID(delta)), at: o.id}
		if r.dirty && o.phase != "A" {
			d.want = corrupt
			// Each object was its own commit, so its own batch: only
			// damage in the last one can be a torn write.
			if o.id == last.id {
				require.GreaterOrEqual(t, uint64(o.id)&^4095+window, uint64(logEnd))
				d.want, d.limit = nil, true
			}
		}
		return d
	}
	a, b, c := byPhase["A"], byPhase["B"], byPhase["C"]
	cs = append(cs,
		rec("log record, checkpointed", a[len(a)/2], 40),
		rec("log record before the durable mark", b[0], 40),
		rec("log record before the durable mark (head)", b[len(b)/2], 17),
		rec("log record after the durable mark", c[0], 40),
		rec("log record after the durable mark (head)", c[len(c)/3], 20),
		rec("log record within the batch limit of the end", c[len(c)-3], 40),
		rec("log record in the last batch", c[len(c)-1], 40),
	)
	// Log padding: the seal pad after a record, up to its block's end.
	for _, o := range []refObj{b[1], c[1]} {
		n := r.recordSize(t, o.id)
		if (uint64(o.id)+n)%4096 == 0 {
			continue
		}
		d := rec("log padding", o, n+4)
		if r.dirty {
			d.at = o.id + wal.ID(n)
		}
		cs = append(cs, d)
	}
	if short {
		// Every region once.
		seen := map[string]bool{}
		var out []damage
		for _, d := range cs {
			if !seen[d.region] {
				seen[d.region] = true
				out = append(out, d)
			}
		}
		cs = out
	}
	return cs
}

// apply returns the reference files with d done to them.
func (r *refPool) apply(d damage) map[string][]byte {
	files := map[string][]byte{}
	for k, v := range r.files {
		files[k] = slices.Clone(v)
	}
	b := files[d.file]
	switch {
	case d.trunc:
		files[d.file] = b[:d.off]
	case d.off < 0: // both log header slots
		b[70] ^= 0x5a
		b[4096+70] ^= 0x5a
	default:
		b[d.off] ^= 0x5a
	}
	return files
}

func materialize(t *testing.T, fsys blob.FS, dir string, files map[string][]byte) {
	t.Helper()
	require.NoError(t, fsys.MkdirAll(dir))
	for name, b := range files {
		f, err := fsys.Create(filepath.Join(dir, name))
		require.NoError(t, err)
		_, err = f.WriteAt(b, 0)
		require.NoError(t, err)
		require.NoError(t, f.Truncate(int64(len(b))))
		require.NoError(t, f.Sync())
		require.NoError(t, f.Close())
	}
}

// outcome is what a case did.
type outcome struct {
	open      string // "opened" or the refusal
	fsck      string
	exact     int
	refused   int
	lost      []refObj
	wrong     []string
	repair    string // what fsck --repair's open did, for a damaged log
	violation string
}

// sentinelName names the sentinel a refusal wraps.
func sentinelName(err error) string {
	for _, e := range []struct {
		err  error
		name string
	}{{pool.ErrCorrupt, "ErrCorrupt"}, {wal.ErrBadHeader, "ErrBadHeader"}, {pool.ErrBadPool, "ErrBadPool"}} {
		if errors.Is(err, e.err) {
			return e.name
		}
	}
	return short(err)
}

// repairCase opens a pool refused for a damaged log with RepairLog, as
// vosfs fsck --repair does: the objects logged before the damage read
// exactly, those after it are gone (as many as the repair said it
// dropped, at most), and the pool checks clean.
func repairCase(fsys blob.FS, dir string, ref *refPool, d damage) string {
	p, err := pool.Open(fsys, dir, pool.Options{CheckpointInterval: time.Hour, RepairLog: true})
	if err != nil {
		return fmt.Sprintf("VIOLATION: the repair did not open: %v", err)
	}
	defer p.Close()
	dmg := p.Recovery().Repaired
	if dmg == nil || dmg.At != d.at {
		return fmt.Sprintf("VIOLATION: repaired %+v, want the damage at %d", dmg, d.at)
	}
	s, err := vos.Open(p, vos.Options{AggregateInterval: -1, FoldChain: -1, Logf: func(string, ...any) {}})
	if err != nil {
		return fmt.Sprintf("VIOLATION: the repaired store did not open: %v", err)
	}
	defer s.Close()
	if err := s.Check(); err != nil {
		return fmt.Sprintf("VIOLATION: the repaired pool is not clean: %v", err)
	}
	v := s.Latest()
	defer v.Close()
	var kept, dropped uint64
	for _, obj := range ref.objs {
		got, found, err := readObj(v, obj)
		switch {
		case err != nil:
			return fmt.Sprintf("VIOLATION: after the repair %v: %v", obj.path, err)
		case obj.id < d.at && !bytes.Equal(got, obj.data):
			return fmt.Sprintf("VIOLATION: after the repair %v (logged before the damage) reads wrong", obj.path)
		case obj.id < d.at:
			kept++
		case found:
			return fmt.Sprintf("VIOLATION: after the repair %v (logged after the damage) is there", obj.path)
		default:
			dropped++
		}
	}
	if dropped > dmg.Intact+1 {
		return fmt.Sprintf("VIOLATION: the repair said it drops %d intact records, %d objects are gone", dmg.Intact, dropped)
	}
	return fmt.Sprintf("repair drops %d records, %d B: %d objects kept, %d gone", dmg.Intact, dmg.Dropped(), kept, dropped)
}

// readObj reads an object whole.
func readObj(v *vos.View, obj refObj) ([]byte, bool, error) {
	if obj.array {
		got := make([]byte, len(obj.data))
		err := v.ReadArray(obj.path, 0, got)
		return got, !bytes.Equal(got, make([]byte, len(got))), err
	}
	return v.Get(obj.path)
}

func short(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && len(s) > 90 {
		s = "..." + s[max(0, len(s)-90):]
	}
	return s
}

func runCase(fsys blob.FS, dir string, ref *refPool, d damage) (o outcome) {
	defer func() {
		if p := recover(); p != nil {
			o.violation = fmt.Sprintf("panic: %v", p)
		}
	}()
	p, err := pool.Open(fsys, dir, pool.Options{CheckpointInterval: time.Hour})
	if err != nil {
		o.open = "refused: " + sentinelName(err)
		for _, w := range d.want {
			if errors.Is(err, w) {
				if errors.Is(err, pool.ErrCorrupt) {
					o.repair = repairCase(fsys, dir, ref, d)
					if strings.HasPrefix(o.repair, "VIOLATION") {
						o.violation = o.repair
					}
				}
				return o
			}
		}
		o.violation = fmt.Sprintf("refused with an unexpected error: %v", err)
		return o
	}
	defer p.Close()
	o.open = "opened"
	if d.want != nil {
		o.violation = fmt.Sprintf("opened, want a refusal wrapping %v", d.want)
	}
	if rec := p.Recovery(); rec.Records > 0 {
		o.open = fmt.Sprintf("opened, %d records replayed", rec.Records)
	}
	s, err := vos.Open(p, vos.Options{AggregateInterval: -1, FoldChain: -1, Logf: func(string, ...any) {}})
	if err != nil {
		o.open = "store refused: " + short(err)
		return o
	}
	defer s.Close()
	if err := s.Check(); err != nil {
		o.fsck = fmt.Sprintf("%d problem(s)", strings.Count(err.Error(), "\n")+1)
	} else {
		o.fsck = "clean"
	}
	v := s.Latest()
	defer v.Close()
	for _, obj := range ref.objs {
		got, found, err := readObj(v, obj)
		switch {
		case err != nil:
			o.refused++
		case bytes.Equal(got, obj.data):
			o.exact++
		case !found:
			o.lost = append(o.lost, obj)
		default:
			o.wrong = append(o.wrong, fmt.Sprintf("%v: %d bytes differ", obj.path, len(got)))
		}
	}
	if len(o.wrong) > 0 {
		o.violation = fmt.Sprintf("wrong bytes read: %v", o.wrong)
	} else if len(o.lost) > 0 {
		window := uint64(min(wal.MaxBatch, ref.ring/4))
		for _, l := range o.lost {
			if !d.limit || l.id < d.at || uint64(l.id) >= uint64(d.at)&^4095+window {
				o.violation = fmt.Sprintf("acknowledged object %v (log %d) lost", l.path, l.id)
				break
			}
		}
	}
	return o
}

func TestCorruptionMatrix(t *testing.T) {
	type fsKind struct {
		name string
		make func(t *testing.T) (blob.FS, string)
	}
	kinds := []fsKind{
		{"memfs", func(t *testing.T) (blob.FS, string) { return blob.NewMemFS(1), "pool" }},
		{"files", func(t *testing.T) (blob.FS, string) { return blob.NewOSFS(false), t.TempDir() }},
	}
	var rows []string
	total, refusedOpen, openedExact, readRefused, limits := 0, 0, 0, 0, 0
	for _, k := range kinds {
		for _, dirty := range []bool{false, true} {
			state := "clean"
			if dirty {
				state = "dirty"
			}
			fsys, dir := k.make(t)
			ref := buildRef(t, fsys, filepath.Join(dir, "ref"), dirty)
			for i, d := range ref.cases(t, testing.Short()) {
				cfs, cdir := k.make(t)
				cdir = filepath.Join(cdir, fmt.Sprintf("case%d", i))
				materialize(t, cfs, cdir, ref.apply(d))
				o := runCase(cfs, cdir, ref, d)
				total++
				verdict := "ok"
				switch {
				case o.violation != "":
					verdict = "VIOLATION: " + o.violation
					t.Errorf("%s %s %s (%s @%d): %s", k.name, state, d.region, d.file, d.off, o.violation)
				case o.open != "opened" && !strings.HasPrefix(o.open, "opened,"):
					refusedOpen++
				case len(o.lost) > 0:
					limits++
					verdict = fmt.Sprintf("limit: damage in the last batch taken as a torn tail, %d acknowledged object(s) of it lost", len(o.lost))
				case o.refused > 0:
					readRefused++
				default:
					openedExact++
				}
				what := "flip"
				if d.trunc {
					what = "truncate"
				}
				if o.repair != "" && o.violation == "" {
					verdict += "; " + o.repair
				}
				fsck := o.fsck
				if fsck == "" {
					fsck = "-"
				}
				rows = append(rows, fmt.Sprintf("%-5s %-5s %-45s %-9s %-8s %7d | %-28.28s | fsck %-12s | exact %2d refused %2d lost %2d | %s",
					k.name, state, d.region, d.file, what, d.off, o.open, fsck, o.exact, o.refused, len(o.lost), verdict))
				if k.name == "files" {
					os.RemoveAll(cdir)
				}
			}
		}
	}
	t.Logf("corruption matrix: %d cases: %d refused at open, %d opened and read exactly, %d opened with the damaged objects' reads refused, %d lost the acknowledged objects of the last batch (damage there is a torn tail)\n%s",
		total, refusedOpen, openedExact, readRefused, limits, strings.Join(rows, "\n"))
}
