package wal

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"vosfs/blob"
)

// writeSpread appends n records of about 10 KiB, each in its own batch, and
// returns their IDs; the log is closed (not checkpointed).
func writeSpread(t *testing.T, fs *blob.MemFS, n int) []ID {
	t.Helper()
	l := newTestLog(t, fs, Options{})
	var ids []ID
	for i := 0; i < n; i++ {
		c, err := l.Append(bodyOf(fmt.Sprintf("%05d%s", i, strings.Repeat("x", 10000))), nil)
		require.NoError(t, err)
		require.NoError(t, c.Wait())
		ids = append(ids, c.ID)
	}
	require.NoError(t, l.Close())
	return ids
}

// flipLog flips one byte of the log blob at ring position pos.
func flipLog(t *testing.T, fs *blob.MemFS, pos ID) {
	t.Helper()
	f, err := fs.Open("wal")
	require.NoError(t, err)
	defer f.Close()
	off := int64(RingOffset + uint64(pos)%testRing)
	b := make([]byte, 1)
	_, err = f.ReadAt(b, off)
	require.NoError(t, err)
	b[0] ^= 0x40
	_, err = f.WriteAt(b, off)
	require.NoError(t, err)
	require.NoError(t, f.Sync())
}

func replayAll(t *testing.T, fs *blob.MemFS) (*Log, []string, ID, error) {
	t.Helper()
	f, err := fs.Open("wal")
	require.NoError(t, err)
	l, err := Open(f, Options{})
	require.NoError(t, err)
	var got []string
	end, err := l.Replay(func(r *Record) error {
		got = append(got, payload(*r)[:5])
		return nil
	}, nil)
	return l, got, end, err
}

func names(from, to int) []string {
	var s []string
	for i := from; i < to; i++ {
		s = append(s, fmt.Sprintf("%05d", i))
	}
	return s
}

// A record damaged in the middle of the log, with intact records of its
// generation after it beyond the one batch a crash can tear, is refused as
// corruption naming the position, the intact records around it and what a
// truncation drops; a repair (Start at the damage) then drops exactly those,
// and they never come back.
func TestReplayRefusesDamageBeforeIntactRecords(t *testing.T) {
	fs := blob.NewMemFS(11)
	ids := writeSpread(t, fs, 60)
	flipLog(t, fs, ids[10]+headSize+100) // inside record 10's body
	l, got, end, err := replayAll(t, fs)
	require.ErrorIs(t, err, ErrCorrupt)
	require.Equal(t, names(0, 10), got, "replay applies exactly the records before the damage")
	require.Equal(t, ids[10], end)
	d, ok := AsDamage(err)
	require.True(t, ok)
	// The last record's batch ends with its seal pad, on a block boundary.
	last := ID(alignUp(uint64(ids[59])+RecordSize(len(bodyOf(strings.Repeat("x", 10005)).Bytes())), blockSize))
	require.Equal(t, Damage{Log: "wal", At: ids[10], Reason: "checksum mismatch", LastGood: ids[9], NextGood: ids[11],
		End: last, Intact: 49, Cause: d.Cause}, *d)
	require.Equal(t, uint64(last-ids[10]), d.Dropped())
	for _, want := range []string{
		fmt.Sprintf("record at log position %d is damaged (checksum mismatch)", ids[10]),
		fmt.Sprintf("the last intact record before it is at %d", ids[9]),
		fmt.Sprintf("the first intact record after it at %d", ids[11]),
		"vosfs fsck --repair", "dropping 49 intact record(s)", fmt.Sprintf("%d bytes of log", d.Dropped()),
		fmt.Sprintf("the one at %d is in a later batch than it (a batch ended at %d)", ids[11], ids[11]),
	} {
		require.Contains(t, err.Error(), want)
	}

	// Repair: start at the damage (the caller has applied the records before
	// it, which the new checkpoint covers), write on, crash, reopen: only the
	// new record replays, none of those after the damage.
	require.NoError(t, l.Start(ID(alignUp(uint64(end), blockSize))))
	c, err := l.Append(bodyOf("after"+strings.Repeat("y", 100)), nil)
	require.NoError(t, err)
	require.NoError(t, c.Wait())
	fs = fs.Crash()
	_, got, _, err = replayAll(t, fs)
	require.NoError(t, err)
	require.Equal(t, []string{"after"}, got)
}

// Damage within the batch limit of the log's end but before a batch's seal
// pad, with intact records after that pad, is damage: the later batch was
// written only once the damaged one was durable.
func TestReplayDamageBeforeASealedBatch(t *testing.T) {
	fs := blob.NewMemFS(12)
	ids := writeSpread(t, fs, 60)
	flipLog(t, fs, ids[45]+20) // record 45's head: 14 records (~170 KiB) follow, within 256 KiB
	_, got, end, err := replayAll(t, fs)
	require.ErrorIs(t, err, ErrCorrupt)
	require.Contains(t, err.Error(), fmt.Sprintf("(a batch ended at %d)", ids[46]))
	require.Equal(t, names(0, 45), got)
	require.Equal(t, ids[45], end)
}

// Damage in the last batch, with intact records of that batch after it, is
// a torn tail (a crash may keep any of the batch's blocks): replay ends at
// the damage and the log opens.
func TestReplayTornTailInLastBatch(t *testing.T) {
	fs := blob.NewMemFS(16)
	l := newTestLog(t, fs, Options{})
	var ids []ID
	for i := 0; i < 20; i++ {
		c, err := l.Append(bodyOf(fmt.Sprintf("%05d", i)), nil)
		require.NoError(t, err)
		require.NoError(t, c.Wait())
		ids = append(ids, c.ID)
	}
	// Hold the committer on a batch of its own, so that the next records
	// gather in one batch behind it.
	release := make(chan struct{})
	hold, err := l.Append(bodyOf("hold!"), []DataWait{blockedData(release)})
	require.NoError(t, err)
	for {
		l.mu.Lock()
		taken := l.open == nil
		l.mu.Unlock()
		if taken {
			break
		}
		time.Sleep(time.Millisecond)
	}
	var last []*Commit
	for i := 20; i < 30; i++ {
		c, err := l.Append(bodyOf(fmt.Sprintf("%05d%s", i, strings.Repeat("x", 3000))), nil)
		require.NoError(t, err)
		last = append(last, c)
	}
	close(release)
	require.NoError(t, hold.Wait())
	for _, c := range last {
		require.NoError(t, c.Wait())
		require.Same(t, last[0].b, c.b, "one batch")
	}
	require.NoError(t, l.Close())
	flipLog(t, fs, last[2].ID+headSize+10) // the third record of the last batch
	_, got, end, err := replayAll(t, fs)
	require.NoError(t, err)
	require.Equal(t, append(append(names(0, 20), "hold!"), names(20, 22)...), got)
	require.Equal(t, last[2].ID, end)
}

// Damage below the durable ID the header records is corruption even with
// nothing intact after it.
func TestReplayDamageBelowDurableMark(t *testing.T) {
	fs := blob.NewMemFS(13)
	l := newTestLog(t, fs, Options{})
	var ids []ID
	for i := 0; i < 3; i++ {
		c, err := l.Append(bodyOf(fmt.Sprintf("%05d", i)), nil)
		require.NoError(t, err)
		require.NoError(t, c.Wait())
		ids = append(ids, c.ID)
	}
	require.NoError(t, l.SetCheckpoint(l.Header().Checkpoint)) // the durable mark, the checkpoint unmoved
	durable := l.Durable()
	require.NoError(t, l.Close())
	flipLog(t, fs, ids[2]+headSize)
	_, got, _, err := replayAll(t, fs)
	require.ErrorIs(t, err, ErrCorrupt)
	require.Equal(t, names(0, 2), got)
	d, _ := AsDamage(err)
	require.Equal(t, ids[2], d.At)
	require.Equal(t, durable, d.End)
	require.Zero(t, d.Intact)
	require.Contains(t, err.Error(), fmt.Sprintf("durable to %d", durable))
}

// The newest header damaged: Open falls back to the older slot, of an older
// generation, and the records of the newer one are found and refused as
// corruption rather than dropped; a repair starts above their generation so
// they can never be replayed later.
func TestReplayNewestHeaderLost(t *testing.T) {
	fs := blob.NewMemFS(14)
	l := newTestLog(t, fs, Options{}) // header seq 2, generation 2, in slot 0
	for i := 0; i < 3; i++ {
		c, err := l.Append(bodyOf(fmt.Sprintf("%05d", i)), nil)
		require.NoError(t, err)
		require.NoError(t, c.Wait())
	}
	require.NoError(t, l.Close())
	slot := int64(l.Header().Seq%headerSlots) * blockSize
	f, err := fs.Open("wal")
	require.NoError(t, err)
	_, err = f.WriteAt([]byte{0xff}, slot+70)
	require.NoError(t, err)
	require.NoError(t, f.Sync())

	l2, got, end, err := replayAll(t, fs)
	require.ErrorIs(t, err, ErrCorrupt)
	require.Empty(t, got)
	require.Contains(t, err.Error(), "newest log header is damaged")
	d, _ := AsDamage(err)
	require.Equal(t, uint64(3), d.Intact)

	require.NoError(t, l2.Start(ID(alignUp(uint64(end), blockSize))))
	require.Greater(t, l2.Header().Gen, l.Header().Gen, "the repair starts above the generation it dropped")
	require.NoError(t, l2.Close())
	fs = fs.Crash()
	_, got, _, err = replayAll(t, fs)
	require.NoError(t, err)
	require.Empty(t, got)
}

// A batch holds at most the batch limit of records, or one larger record:
// records appended while the committer is busy are cut into batches that
// each fit, so the in-flight rule of replay holds.
func TestBatchLimit(t *testing.T) {
	fs := blob.NewMemFS(15)
	l := newTestLog(t, fs, Options{})
	require.Equal(t, uint64(testRing/4), l.batch)
	release := make(chan struct{})
	var hold blockedData = release
	c0, err := l.Append(bodyOf("hold"), []DataWait{hold})
	require.NoError(t, err)
	var commits []*Commit
	for i := 0; i < 80; i++ {
		n := 5000
		if i%13 == 12 {
			n = 60000 // bigger than what is left in a batch
		}
		c, err := l.Append(bodyOf(strings.Repeat("z", n)), nil)
		require.NoError(t, err)
		commits = append(commits, c)
	}
	close(release)
	require.NoError(t, c0.Wait())
	require.NoError(t, l.Flush())
	batches := map[*batch]int{}
	for _, c := range commits {
		require.NoError(t, c.Wait())
		batches[c.b]++
	}
	require.Greater(t, len(batches), 2, "the records were cut into batches")
	for b, n := range batches {
		size := uint64(b.end - b.start)
		require.Zero(t, uint64(b.start)%blockSize)
		require.True(t, size <= l.batch || n == 1, "batch [%d, %d) of %d records exceeds %d", b.start, b.end, n, l.batch)
	}
	require.NoError(t, l.Close())
	_, recs := reopen(t, fs)
	require.Len(t, recs, 81)
}

type blockedData chan struct{}

func (d blockedData) Wait() error { <-d; return nil }

func TestInFlightWindow(t *testing.T) {
	l := &Log{ring: testRing, batch: batchLimit(testRing), limit: 64 << 10}
	require.True(t, l.inFlight(4096+64, 4096+128, 64))
	require.True(t, l.inFlight(4096+64, 4096+l.batch-64, 64))
	require.False(t, l.inFlight(4096+64, 4096+l.batch-64, 128), "ends past the window")
	require.False(t, l.inFlight(4096+64, 4096+l.batch, 64))
	// A large record at the ring start after the wrap pad it needed.
	p := uint64(5*testRing - 150000)
	require.True(t, l.inFlight(p, 5*testRing, 200000))
	p = 5*testRing - 250000
	require.False(t, l.inFlight(p, 5*testRing, 200000), "the pad is shorter than the record that needed it")
	require.Equal(t, uint64(MaxBatch), batchLimit(64<<20))
	require.Equal(t, uint64(64<<10), batchLimit(MinRingSize))
}
