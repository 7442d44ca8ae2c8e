package alloc

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"vosfs/umem"
	"vosfs/wal"
)

// testLog is a umem.Appender that hands out increasing IDs (100, 200, ...)
// and keeps a copy of every record, so that tests can replay them. Its
// commits have no batch: never Wait on them.
type testLog struct {
	mu   sync.Mutex
	next wal.ID
	recs []wal.Record
	fail error // returned by Append when set
}

func (l *testLog) Append(body wal.Encoder, _ []wal.DataWait) (*wal.Commit, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail != nil {
		return nil, l.fail
	}
	l.next += 100
	l.recs = append(l.recs, wal.Record{ID: l.next, Count: uint32(body.Count()), Body: wal.EncodeBody(body)})
	return &wal.Commit{ID: l.next}, nil
}

// replay applies every record to a fresh heap of the same size.
func (l *testLog) replay(t testing.TB, size uint64) *umem.Heap {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := umem.New(size)
	for i := range l.recs {
		require.NoError(t, h.Apply(&l.recs[i]))
	}
	return h
}

// durableID is a settable durable ID for the VEA.
type durableID struct{ v atomic.Uint64 }

func (d *durableID) get() wal.ID   { return wal.ID(d.v.Load()) }
func (d *durableID) set(id wal.ID) { d.v.Store(uint64(id)) }

const txLimit = 1 << 20

// commit runs fn in a transaction and commits it to log, returning the ID.
func commit(t testing.TB, h *umem.Heap, log *testLog, fn func(tx *umem.Tx) error) wal.ID {
	t.Helper()
	tx := h.Begin(txLimit)
	if err := fn(tx); err != nil {
		tx.Abort()
		require.NoError(t, err)
	}
	res, err := tx.Commit(log)
	require.NoError(t, err)
	require.NotNil(t, res.Commit)
	return res.ID
}

// bitString returns bits [start, start+n) of the bitmap at off as a string
// of '0' and '1', bit start first.
func bitString(t testing.TB, h *umem.Heap, off, start, n uint64) string {
	t.Helper()
	var s string
	require.NoError(t, h.View(func(r umem.Reader) (err error) {
		s, err = readBits(r, off, start, n)
		return err
	}))
	return s
}

// countSet counts the set bits among the first n of the bitmap at off.
func countSet(t testing.TB, h *umem.Heap, off, n uint64) uint64 {
	t.Helper()
	var c uint64
	require.NoError(t, h.View(func(r umem.Reader) error {
		b, err := loadBitset(r, off, n)
		b.runs(0, n, func(_, k uint64) { c += k })
		return err
	}))
	return c
}

func rep(c byte, n int) string { return string(slices.Repeat([]byte{c}, n)) }

var errInjected = errors.New("injected append failure")

// readBits renders bits [start, start+n) of the bitmap at off from r.
func readBits(r umem.Reader, off, start, n uint64) (string, error) {
	s := make([]byte, n)
	for i := range n {
		b, err := r.Bit(off, start+i)
		if err != nil {
			return "", err
		}
		s[i] = '0'
		if b {
			s[i] = '1'
		}
	}
	return string(s), nil
}

// txBitString is bitString inside a transaction (View would wait for the
// write lock the transaction holds).
func txBitString(t testing.TB, tx *umem.Tx, off, start, n uint64) string {
	t.Helper()
	s, err := readBits(tx.Reader(), off, start, n)
	require.NoError(t, err)
	return s
}

// problems splits a Check error into its messages.
func problems(err error) []string {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var s []string
		for _, e := range j.Unwrap() {
			s = append(s, e.Error())
		}
		return s
	}
	return []string{err.Error()}
}
