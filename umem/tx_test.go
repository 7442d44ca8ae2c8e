package umem

import (
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"

	"vosfs/wal"
)

// recorder is an Appender that keeps the records, so that a test can replay
// them on a second heap: the real encoding and decoding, no log I/O.
type recorder struct {
	next   ID
	recs   [][]byte
	counts []uint32
}

type ID = wal.ID

func (r *recorder) Append(body wal.Encoder, _ []wal.DataWait) (*wal.Commit, error) {
	r.next += 64
	r.recs = append(r.recs, wal.EncodeBody(body))
	r.counts = append(r.counts, uint32(body.Count()))
	return &wal.Commit{ID: r.next}, nil
}

func (r *recorder) replay(t *testing.T, h *Heap) {
	for i, b := range r.recs {
		rec := &wal.Record{ID: ID(64 * (i + 1)), Body: b, Count: r.counts[i]}
		require.NoError(t, h.Apply(rec))
	}
}

func TestTxAppliesAndReplays(t *testing.T) {
	h := New(1 << 20)
	var log recorder
	tx := h.Begin(1 << 20)
	require.NoError(t, tx.Write(100, []byte("abcdef")))
	require.NoError(t, tx.PutUint64(4096, 0x0102030405060708))
	require.NoError(t, tx.PutUint32(5000, 77))
	require.NoError(t, tx.Memset(300000, 5000, 0x5a))
	require.NoError(t, tx.SetBits(8192, 5, 30))
	require.NoError(t, tx.ClearBits(8192, 10, 3))
	b, err := tx.Reader().Bytes(100, 6)
	require.NoError(t, err)
	require.Equal(t, "abcdef", string(b), "read your writes")
	res, err := tx.Commit(&log)
	require.NoError(t, err)
	require.Equal(t, ID(64), res.ID)
	require.ElementsMatch(t, []uint32{0, 1}, res.Pages)

	require.NoError(t, h.View(func(r Reader) error {
		v, _ := r.Uint64(4096)
		require.Equal(t, uint64(0x0102030405060708), v)
		w, _ := r.Uint32(5000)
		require.Equal(t, uint32(77), w)
		bm, _ := r.Bytes(8192, 5)
		// bits 5..34 set, 10..12 cleared
		require.Equal(t, []byte{0b11100000, 0b11100011, 0xff, 0xff, 0b00000111}, bm)
		return nil
	}))

	h2 := New(1 << 20)
	log.replay(t, h2)
	require.Equal(t, h.mem, h2.mem, "replaying the record reproduces the heap")
}

func TestTxAbortRestores(t *testing.T) {
	h := New(1 << 20)
	var log recorder
	tx := h.Begin(1 << 20)
	require.NoError(t, tx.Write(0, []byte("keep")))
	_, err := tx.Commit(&log)
	require.NoError(t, err)
	before := append([]byte(nil), h.mem...)

	aborted := false
	tx = h.Begin(1 << 20)
	tx.OnAbort(func() { aborted = true })
	require.NoError(t, tx.Write(0, []byte("lose")))
	require.NoError(t, tx.Write(2, []byte("XYZ")))
	require.NoError(t, tx.SetBits(9000, 0, 100))
	tx.Abort()
	require.True(t, aborted)
	require.Equal(t, before, h.mem)
	require.Len(t, log.recs, 1)
	require.ErrorIs(t, tx.Write(0, nil), ErrTxDone)
}

func TestTxLimitsAndBounds(t *testing.T) {
	h := New(1 << 20)
	tx := h.Begin(4096)
	err := tx.Write(0, make([]byte, 5000))
	require.ErrorIs(t, err, wal.ErrRecordTooLarge)
	_, err = tx.Commit(&recorder{})
	require.ErrorIs(t, err, wal.ErrRecordTooLarge)

	tx = h.Begin(1 << 20)
	require.ErrorIs(t, tx.Write(1<<20-2, []byte("abc")), ErrOutOfBounds)
	tx.Abort()

	bad := &wal.Record{ID: 1}
	var b wal.Body
	b.Copy(1<<20, []byte("x"))
	bad.Body, bad.Count = b.Bytes(), 1
	require.ErrorIs(t, h.Apply(bad), ErrOutOfBounds)
}

func TestCopyDirty(t *testing.T) {
	h := New(4 * PageSize)
	var log recorder
	tx := h.Begin(1 << 20)
	require.NoError(t, tx.Write(10, []byte("a")))                     // page 0 chunk 0
	require.NoError(t, tx.Write(3*ChunkSize-1, []byte("bc")))         // page 0 chunks 2,3
	require.NoError(t, tx.Write(2*PageSize+5*ChunkSize, []byte("d"))) // page 2 chunk 5
	res, err := tx.Commit(&log)
	require.NoError(t, err)
	require.Equal(t, uint64(4*ChunkSize), h.DirtyBytes())

	runs, pending, next := h.CopyDirty(0, 1<<30)
	require.Equal(t, -1, next)
	require.Equal(t, res.ID, pending)
	var offs []uint64
	for _, r := range runs {
		offs = append(offs, r.Off)
		require.Equal(t, h.mem[r.Off:r.Off+uint64(len(r.Data))], r.Data)
	}
	require.Equal(t, []uint64{0, 2 * ChunkSize, 2*PageSize + 5*ChunkSize}, offs)
	require.Len(t, runs[1].Data, 2*ChunkSize)
	require.Zero(t, h.DirtyBytes())
}

func TestRandomTxReplayEquivalence(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	h := New(1 << 20)
	var log recorder
	for i := 0; i < 300; i++ {
		tx := h.Begin(1 << 20)
		for j := 0; j < 1+rng.Intn(8); j++ {
			off := uint64(rng.Intn(1<<20 - 9000))
			switch rng.Intn(5) {
			case 0:
				p := make([]byte, rng.Intn(3000))
				rng.Read(p)
				require.NoError(t, tx.Write(off, p))
			case 1:
				require.NoError(t, tx.PutUint64(off, rng.Uint64()))
			case 2:
				require.NoError(t, tx.Memset(off, uint32(rng.Intn(9000)), byte(rng.Intn(256))))
			case 3:
				require.NoError(t, tx.SetBits(off, uint64(rng.Intn(64)), uint32(rng.Intn(2000))))
			case 4:
				require.NoError(t, tx.ClearBits(off, uint64(rng.Intn(64)), uint32(rng.Intn(2000))))
			}
		}
		if rng.Intn(4) == 0 {
			tx.Abort()
			continue
		}
		_, err := tx.Commit(&log)
		require.NoError(t, err)
	}
	h2 := New(1 << 20)
	log.replay(t, h2)
	require.Equal(t, h.mem, h2.mem)
}

// A record carries one copy per merged range of final bytes: overlapping,
// adjacent and nearby changes share one; a long fill stays one action and
// is replayed before the copies, so a write inside it survives replay.
func TestTxRecordMergesRanges(t *testing.T) {
	h := New(1 << 20)
	var log recorder
	tx := h.Begin(1 << 20)
	require.NoError(t, tx.Write(100, []byte("abcd")))     // [100, 104)
	require.NoError(t, tx.Write(104, []byte("efghij")))   // adjacent: [100, 110)
	require.NoError(t, tx.PutUint64(112, 7))              // 2 bytes away: [100, 120)
	require.NoError(t, tx.Write(102, []byte("XY")))       // inside
	require.NoError(t, tx.Write(4000, []byte("far")))     // its own range
	require.NoError(t, tx.Memset(8192, 4096, 0x11))       // a fill action
	require.NoError(t, tx.Write(9000, []byte("in fill"))) // a copy over the fill
	require.NoError(t, tx.SetBits(65536, 3, 2))           // a short bit range: a copy
	_, err := tx.Commit(&log)
	require.NoError(t, err)
	require.Len(t, log.recs, 1)
	var got []wal.Action
	require.NoError(t, wal.DecodeActions(log.recs[0], log.counts[0], func(a wal.Action) error {
		a.Data = append([]byte(nil), a.Data...)
		got = append(got, a)
		return nil
	}))
	require.Len(t, got, 5)
	require.Equal(t, wal.ActSet, got[0].Type)
	require.Equal(t, []uint64{100, 4000, 9000, 65536}, []uint64{got[1].Off, got[2].Off, got[3].Off, got[4].Off})
	want := append([]byte("abXYefghij\x00\x00"), 7, 0, 0, 0, 0, 0, 0, 0)
	require.Equal(t, want, got[1].Data)
	require.Equal(t, []byte{0x18}, got[4].Data)
	size := wal.EntrySize + wal.CopySize(20) + wal.CopySize(3) + wal.CopySize(7) + wal.CopySize(1)
	require.Len(t, log.recs[0], size)

	h2 := New(1 << 20)
	log.replay(t, h2)
	require.Equal(t, h.mem, h2.mem)
}
