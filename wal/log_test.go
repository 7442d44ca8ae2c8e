package wal

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"vosfs/blob"
)

const testRing = 1 << 20

func newTestLog(t *testing.T, fs *blob.MemFS, opts Options) *Log {
	t.Helper()
	f, err := fs.Create("wal")
	require.NoError(t, err)
	require.NoError(t, Create(f, [16]byte{9}, testRing, 64<<10, nil))
	l, err := Open(f, opts)
	require.NoError(t, err)
	_, err = l.Replay(func(*Record) error { return nil }, nil)
	require.NoError(t, err)
	require.NoError(t, l.Start(l.Header().Checkpoint))
	return l
}

func reopen(t *testing.T, fs *blob.MemFS) (*Log, []Record) {
	t.Helper()
	f, err := fs.Open("wal")
	require.NoError(t, err)
	l, err := Open(f, Options{})
	require.NoError(t, err)
	var recs []Record
	_, err = l.Replay(func(r *Record) error {
		recs = append(recs, Record{ID: r.ID, Count: r.Count, Body: append([]byte(nil), r.Body...)})
		return nil
	}, nil)
	require.NoError(t, err)
	return l, recs
}

func bodyOf(s string) *Body {
	var b Body
	b.Copy(0, []byte(s))
	return &b
}

func payload(r Record) string {
	var s string
	_ = r.Actions(func(a Action) error { s = string(a.Data); return nil })
	return s
}

func TestAppendWaitReplay(t *testing.T) {
	fs := blob.NewMemFS(1)
	l := newTestLog(t, fs, Options{})
	var ids []ID
	for i := 0; i < 50; i++ {
		c, err := l.Append(bodyOf(fmt.Sprintf("record %d", i)), nil)
		require.NoError(t, err)
		require.NoError(t, c.Wait())
		require.GreaterOrEqual(t, l.Durable(), c.ID)
		ids = append(ids, c.ID)
	}
	require.NoError(t, l.Close())

	_, recs := reopen(t, fs)
	require.Len(t, recs, 50)
	for i, r := range recs {
		require.Equal(t, ids[i], r.ID)
		require.Equal(t, fmt.Sprintf("record %d", i), payload(r))
	}
}

// Concurrent committers share batches: fewer syncs than records, and every
// waiter is released by the durable ID passing it.
func TestGroupCommit(t *testing.T) {
	fs := blob.NewMemFS(1)
	l := newTestLog(t, fs, Options{})
	var mu sync.Mutex // the callers' critical section
	var ids []ID      // guarded by mu
	var wg sync.WaitGroup
	const n = 64 * 20
	errs := make(chan error, n)
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				mu.Lock()
				err := l.WaitSpaceOrCheckpoint(t)
				var c *Commit
				if err == nil {
					c, err = l.Append(bodyOf(fmt.Sprintf("%d/%d", g, i)), nil)
				}
				if err == nil {
					ids = append(ids, c.ID)
				}
				mu.Unlock()
				if err == nil {
					err = c.Wait()
				}
				if err == nil && l.Durable() <= c.ID {
					err = fmt.Errorf("released before durable")
				}
				errs <- err
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	s := l.Stats()
	require.Equal(t, uint64(n), s.Records)
	require.Less(t, s.Batches, uint64(n), "group commit must batch")
	require.NoError(t, l.Close())
	l2, recs := reopen(t, fs)
	want := 0
	for _, id := range ids {
		if id >= l2.Header().Checkpoint {
			want++
		}
	}
	require.Equal(t, want, len(recs))
	for i := 1; i < len(recs); i++ {
		require.Less(t, recs[i-1].ID, recs[i].ID)
	}
}

// Records wrap around the ring many times as the checkpoint frees space;
// replay after the last wrap returns exactly the live records.
func TestWrapAndCheckpoint(t *testing.T) {
	fs := blob.NewMemFS(2)
	l := newTestLog(t, fs, Options{})
	big := make([]byte, 20000)
	var live []string
	for i := 0; i < 400; i++ {
		require.NoError(t, l.WaitSpaceOrCheckpoint(t))
		copy(big, fmt.Sprintf("rec%04d", i))
		c, err := l.Append(bodyOf(string(big)), nil)
		require.NoError(t, err)
		require.NoError(t, c.Wait())
		live = append(live, string(big))
		if i%37 == 36 {
			require.NoError(t, l.SetCheckpoint(l.Durable()))
			live = live[:0]
		}
	}
	require.Greater(t, uint64(l.Next()), uint64(3*testRing), "the ring must have wrapped")
	require.NoError(t, l.Close())
	_, recs := reopen(t, fs)
	require.Len(t, recs, len(live))
	for i, r := range recs {
		require.Equal(t, live[i], payload(r))
	}
}

// WaitSpaceOrCheckpoint is WaitSpace for a test without a checkpointer: it
// checkpoints at the durable ID when the ring is short.
func (l *Log) WaitSpaceOrCheckpoint(t *testing.T) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := l.WaitSpace(ctx); err == nil {
		return nil
	}
	require.NoError(t, l.Flush())
	require.NoError(t, l.SetCheckpoint(l.Durable()))
	return l.WaitSpace(context.Background())
}

func TestThrottleBlocksUntilCheckpoint(t *testing.T) {
	fs := blob.NewMemFS(3)
	kicks := make(chan struct{}, 100)
	l := newTestLog(t, fs, Options{Kick: func() { kicks <- struct{}{} }})
	big := make([]byte, 60000)
	var last *Commit
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
		err := l.WaitSpace(ctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		require.NoError(t, err)
		c, err := l.Append(bodyOf(string(big)), nil)
		require.NoError(t, err)
		last = c
	}
	require.NoError(t, last.Wait())
	require.NotEmpty(t, kicks, "a throttled writer kicks the checkpointer")
	s := l.Stats()
	require.Equal(t, uint64(1), s.ThrottleEvents)

	released := make(chan error, 1)
	go func() { released <- l.WaitSpace(context.Background()) }()
	select {
	case <-released:
		t.Fatal("writer released without a checkpoint")
	case <-time.After(20 * time.Millisecond):
	}
	require.NoError(t, l.SetCheckpoint(l.Durable()))
	require.NoError(t, <-released)
	require.Equal(t, uint64(2), l.Stats().ThrottleEvents)
	require.NoError(t, l.Close())
}

func TestFailStopOnSyncError(t *testing.T) {
	fs := blob.NewMemFS(4)
	l := newTestLog(t, fs, Options{})
	c, err := l.Append(bodyOf("durable"), nil)
	require.NoError(t, err)
	require.NoError(t, c.Wait())

	_, syncsBefore := fs.Ops()
	fs.Inject(blob.OpSync, 1, syscall.EIO)
	c, err = l.Append(bodyOf("lost"), nil)
	require.NoError(t, err)
	err = c.Wait()
	require.ErrorIs(t, err, ErrFailed)
	require.ErrorIs(t, err, syscall.EIO)
	_, err = l.Append(bodyOf("after"), nil)
	require.ErrorIs(t, err, ErrFailed)
	require.ErrorIs(t, l.SetCheckpoint(l.Durable()), ErrFailed)
	require.ErrorIs(t, l.Close(), ErrFailed)
	_, syncsAfter := fs.Ops()
	require.Equal(t, syncsBefore+1, syncsAfter, "a failed sync is never retried")
}

type failedData struct{ err error }

func (d failedData) Wait() error { return d.err }

func TestDataWriteFailureFailsCommit(t *testing.T) {
	fs := blob.NewMemFS(5)
	synced := 0
	l := newTestLog(t, fs, Options{DataSync: func() error { synced++; return nil }})
	c, err := l.Append(bodyOf("x"), []DataWait{failedData{syscall.EIO}})
	require.NoError(t, err)
	require.ErrorIs(t, c.Wait(), syscall.EIO)
	require.Equal(t, 0, synced)
	require.ErrorIs(t, l.Close(), ErrFailed)
	_, recs := reopen(t, fs)
	require.Empty(t, recs, "a record whose data failed is never written")
}

func TestRecordLimit(t *testing.T) {
	l := newTestLog(t, blob.NewMemFS(6), Options{})
	_, err := l.Append(bodyOf(string(make([]byte, 64<<10))), nil)
	require.ErrorIs(t, err, ErrRecordTooLarge)
	require.NoError(t, l.Close())
}

// After a crash, records beyond the replayed end were written by a run
// that is gone; once the log restarts in a new generation they can never be
// replayed, even when a later, shorter record ends right before them.
func TestStaleTailNeverReplayed(t *testing.T) {
	fs := blob.NewMemFS(7)
	l := newTestLog(t, fs, Options{})
	c, err := l.Append(bodyOf("one"), nil)
	require.NoError(t, err)
	require.NoError(t, c.Wait())
	// Write, by hand, a valid record of this generation one block past
	// the end with a hole before it: an unacknowledged record that
	// survived a power cut while the one before it did not.
	end := l.Durable()
	orphan := make([]byte, 4096)
	b := bodyOf("orphan")
	encodeRecord(orphan, end+4096, l.gen, 1, b.Bytes())
	_, err = l.f.WriteAt(orphan, int64(RingOffset+uint64(end+4096)%testRing))
	require.NoError(t, err)
	require.NoError(t, l.f.Sync())
	fs = fs.Crash()

	l2, recs := reopen(t, fs)
	require.Len(t, recs, 1)
	require.NoError(t, l2.Start(end))
	// A record that fills exactly the block before the orphan.
	c, err = l2.Append(bodyOf(string(make([]byte, 4096-headSize-entrySize-64))), nil)
	require.NoError(t, err)
	require.NoError(t, c.Wait())
	require.Equal(t, end+4096, l2.Durable())
	fs = fs.Crash()
	_, recs = reopen(t, fs)
	require.Len(t, recs, 1, "only the new record; the orphan has an old generation")
}

func TestReplayCorruptBelowDurable(t *testing.T) {
	fs := blob.NewMemFS(8)
	l := newTestLog(t, fs, Options{})
	c, err := l.Append(bodyOf("precious"), nil)
	require.NoError(t, err)
	require.NoError(t, c.Wait())
	// Record the durable ID in the header without moving the checkpoint.
	require.NoError(t, l.SetCheckpoint(l.Header().Checkpoint))
	require.NoError(t, l.Close())
	raw, err := fs.ReadFile("wal")
	require.NoError(t, err)
	off := RingOffset + uint64(c.ID)%testRing + headSize + 30
	raw[off] ^= 0xff
	f, err := fs.Open("wal")
	require.NoError(t, err)
	_, err = f.WriteAt(raw[off&^4095:(off&^4095)+4096], int64(off&^4095))
	require.NoError(t, err)
	l2, err := Open(f, Options{})
	require.NoError(t, err)
	_, err = l2.Replay(func(*Record) error { return nil }, nil)
	require.ErrorIs(t, err, ErrCorrupt)
}

func TestOpenRefusesBadHeaders(t *testing.T) {
	fs := blob.NewMemFS(9)
	f, err := fs.Create("wal")
	require.NoError(t, err)
	require.NoError(t, f.Truncate(RingOffset+testRing))
	_, err = Open(f, Options{})
	require.ErrorIs(t, err, ErrBadHeader)
	require.ErrorContains(t, err, "wal")

	g, err := fs.Create("short")
	require.NoError(t, err)
	require.NoError(t, g.Truncate(100))
	_, err = Open(g, Options{})
	require.ErrorContains(t, err, "too short")
}
