package checkpoint

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"vosfs/blob"
	"vosfs/umem"
	"vosfs/wal"
)

const heapOff = 4096

type env struct {
	fs   *blob.MemFS
	heap *umem.Heap
	log  *wal.Log
	meta blob.File
}

func newEnv(t *testing.T, opts wal.Options) *env {
	fs := blob.NewMemFS(1)
	lf, err := fs.Create("wal")
	require.NoError(t, err)
	require.NoError(t, wal.Create(lf, [16]byte{1}, 1<<20, 64<<10, nil))
	log, err := wal.Open(lf, opts)
	require.NoError(t, err)
	_, err = log.Replay(func(*wal.Record) error { return nil }, nil)
	require.NoError(t, err)
	require.NoError(t, log.Start(log.Header().Checkpoint))
	meta, err := fs.Create("meta")
	require.NoError(t, err)
	require.NoError(t, meta.Truncate(heapOff+1<<20))
	t.Cleanup(func() { log.Close() })
	return &env{fs: fs, heap: umem.New(1 << 20), log: log, meta: meta}
}

func (e *env) commit(t *testing.T, off uint64, p []byte) *wal.Commit {
	tx := e.heap.Begin(64 << 10)
	require.NoError(t, tx.Write(off, p))
	res, err := tx.Commit(e.log)
	require.NoError(t, err)
	return res.Commit
}

func (e *env) metaBytes(t *testing.T, off uint64, n int) []byte {
	b := make([]byte, n)
	_, err := e.meta.ReadAt(b, int64(heapOff+off))
	require.NoError(t, err)
	return b
}

func TestRunWritesBackAndAdvances(t *testing.T) {
	e := newEnv(t, wal.Options{})
	c := e.commit(t, 5000, []byte("checkpointed"))
	require.NoError(t, c.Wait())
	ck := New(e.heap, e.log, e.meta, heapOff, Options{})
	require.NoError(t, ck.Run())
	require.Equal(t, "checkpointed", string(e.metaBytes(t, 5000, 12)))
	require.Equal(t, e.log.Durable(), e.log.Header().Checkpoint)
	s := ck.Stats()
	require.Equal(t, uint64(1), s.Checkpoints)
	require.Equal(t, uint64(umem.ChunkSize), s.BytesWritten)
	require.Zero(t, e.heap.DirtyBytes())
}

// A page is never written back before every change on it is durable: the
// write-back waits for the page's pending ID.
func TestWriteBackWaitsForDurability(t *testing.T) {
	e := newEnv(t, wal.Options{})
	c := e.commit(t, 100, []byte("pending"))
	var asked []wal.ID
	gate := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, err := WriteBack(e.heap, e.meta, heapOff, func(id wal.ID) error {
			asked = append(asked, id)
			<-gate
			return e.log.WaitDurable(id)
		})
		require.NoError(t, err)
	}()
	time.Sleep(10 * time.Millisecond)
	require.Equal(t, make([]byte, 7), e.metaBytes(t, 100, 7), "nothing written before the record is durable")
	close(gate)
	wg.Wait()
	require.Equal(t, []wal.ID{c.ID + 1}, asked)
	require.Equal(t, "pending", string(e.metaBytes(t, 100, 7)))
}

func TestKickAndTimerTrigger(t *testing.T) {
	e := newEnv(t, wal.Options{})
	ck := New(e.heap, e.log, e.meta, heapOff, Options{Interval: time.Hour})
	ck.Start()
	defer ck.Stop()
	require.NoError(t, e.commit(t, 0, []byte("a")).Wait())
	ck.Kick()
	require.Eventually(t, func() bool { return ck.Stats().Checkpoints == 1 }, 5*time.Second, time.Millisecond)

	e2 := newEnv(t, wal.Options{})
	ck2 := New(e2.heap, e2.log, e2.meta, heapOff, Options{Interval: 30 * time.Millisecond})
	ck2.Start()
	defer ck2.Stop()
	require.NoError(t, e2.commit(t, 0, []byte("b")).Wait())
	require.Eventually(t, func() bool { return ck2.Stats().Checkpoints >= 1 }, 5*time.Second, time.Millisecond)
}

func TestDirtyLimitTriggers(t *testing.T) {
	e := newEnv(t, wal.Options{})
	ck := New(e.heap, e.log, e.meta, heapOff, Options{Interval: time.Hour, DirtyLimit: 8 * umem.ChunkSize})
	ck.Start()
	defer ck.Stop()
	for i := 0; i < 4; i++ {
		require.NoError(t, e.commit(t, uint64(i)*umem.ChunkSize, []byte("x")).Wait())
	}
	time.Sleep(300 * time.Millisecond)
	require.Zero(t, ck.Stats().Checkpoints, "below the dirty limit")
	for i := 4; i < 9; i++ {
		require.NoError(t, e.commit(t, uint64(i)*umem.ChunkSize, []byte("x")).Wait())
	}
	require.Eventually(t, func() bool { return ck.Stats().Checkpoints == 1 }, 5*time.Second, time.Millisecond)
}

// The log's high-water kick and a throttled writer wake the checkpointer,
// which frees the space.
func TestThrottledWriterReleasedByCheckpoint(t *testing.T) {
	var ck *Checkpointer
	e := newEnv(t, wal.Options{Kick: func() { ck.Kick() }})
	ck = New(e.heap, e.log, e.meta, heapOff, Options{Interval: time.Hour})
	ck.Start()
	defer ck.Stop()
	big := make([]byte, 50<<10)
	for i := 0; i < 200; i++ { // ~10 MiB through a 1 MiB ring
		require.NoError(t, e.log.WaitSpace(context.Background()))
		require.NoError(t, e.commit(t, 0, big).Wait())
	}
	require.Greater(t, ck.Stats().Checkpoints, uint64(5))
}

func TestFailureReported(t *testing.T) {
	e := newEnv(t, wal.Options{})
	var reported error
	ck := New(e.heap, e.log, e.meta, heapOff, Options{OnError: func(err error) { reported = err }})
	require.NoError(t, e.commit(t, 0, []byte("x")).Wait())
	e.fs.InjectFile("meta", blob.OpSync, 1, blob.ErrCrashed)
	err := ck.Run()
	require.ErrorIs(t, err, blob.ErrCrashed)
	require.Equal(t, err, reported)
	require.Equal(t, wal.ID(1<<20), e.log.Header().Checkpoint, "the checkpoint did not advance")
}
