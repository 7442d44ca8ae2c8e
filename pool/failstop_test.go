package pool

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"vosfs/alloc"
	"vosfs/blob"
	"vosfs/umem"
)

// lineLog collects a pool's log lines.
type lineLog struct {
	mu    sync.Mutex
	lines []string // guarded by mu
}

func (l *lineLog) logf(format string, args ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

// count returns how many lines contain s.
func (l *lineLog) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// A failed data-blob write stops the pool at once: Failed names the blob,
// the operation, the offset and the errno, the stats show it, the failure
// is logged once however many operations fail after it, and every later
// operation — reads too — fails with ErrFailed wrapping the cause.
func TestFailureIsRecordedLoggedOnceAndStopsEverything(t *testing.T) {
	mfs := blob.NewMemFS(1)
	require.NoError(t, Create(mfs, "pool", crashConfig()))
	var log lineLog
	opts := crashOptions()
	opts.Logf = log.logf
	p, err := Open(mfs, "pool", opts)
	require.NoError(t, err)
	ctx := context.Background()
	m := newModel()
	w := &workload{p: p, m: m, largeMax: 4}
	require.NoError(t, w.setup(ctx))
	require.NoError(t, p.Failed())
	require.Nil(t, p.Stats().Failure)

	exts, err := p.Extents().Reserve(nil, 2)
	require.NoError(t, err)
	mfs.InjectFile("pool/data.blob", blob.OpWrite, 1, syscall.EIO)
	dw, err := p.WriteData(exts[0], make([]byte, exts[0].Count*BlockSize))
	require.NoError(t, err)
	err = dw.Wait()
	require.ErrorIs(t, err, ErrFailed)
	require.ErrorIs(t, err, syscall.EIO)
	p.Extents().Cancel(exts)

	f := p.Failure()
	require.NotNil(t, f)
	require.Equal(t, "data.blob", f.Blob)
	require.Equal(t, "write", f.Op)
	require.Equal(t, int64(DataOffset+exts[0].Block*BlockSize), f.Off)
	require.Equal(t, int64(exts[0].Count*BlockSize), f.Len)
	require.Equal(t, syscall.EIO, f.Errno)
	require.ErrorIs(t, p.Failed(), ErrFailed)
	require.ErrorIs(t, p.Failed(), syscall.EIO)
	require.Contains(t, p.Failed().Error(), "write of data.blob at offset")
	require.Contains(t, p.Failed().Error(), "errno 5 (EIO)")

	before, _ := mfs.Ops()
	for i := 0; i < 5; i++ {
		require.ErrorIs(t, w.step(ctx, newRand(int64(i))), ErrFailed)
	}
	_, err = p.Update(ctx, func(*Tx) error { return nil })
	require.ErrorIs(t, err, ErrFailed)
	require.ErrorIs(t, p.View(func(umem.Reader) error { return nil }), ErrFailed, "reads of a failed pool are refused")
	require.ErrorIs(t, p.ReadData(alloc.Extent{Block: 0, Count: 1}, 0, make([]byte, BlockSize)), ErrFailed)
	require.ErrorIs(t, p.Sync(), ErrFailed)
	require.ErrorIs(t, p.Checkpoint(), ErrFailed)
	_, err = p.WriteData(exts[0], make([]byte, exts[0].Count*BlockSize))
	require.ErrorIs(t, err, ErrFailed)

	st := p.Stats()
	require.Equal(t, uint64(1), st.WriteErrors)
	require.NotNil(t, st.Failure)
	require.Equal(t, "data.blob", st.Failure.Blob)
	require.ErrorIs(t, p.Close(), ErrFailed)
	after, _ := mfs.Ops()
	require.Equal(t, before, after, "a failed pool writes nothing more, Close included")
	require.Equal(t, 1, log.count("FAIL-STOP"), "the failure is logged once: %q", log.lines)
	require.Equal(t, 1, log.count("data.blob at offset"))

	p, err = Open(mfs, "pool", crashOptions())
	require.NoError(t, err)
	defer p.Close()
	require.NoError(t, p.Failed(), "a reopened pool runs again")
	require.NoError(t, verify(p, m))
}

// A failed read is the reader's error and stops nothing: it changes no
// state. It is counted.
func TestReadErrorIsReturnedAndCounted(t *testing.T) {
	mfs, p := openTest(t)
	defer p.Close()
	ctx := context.Background()
	m := newModel()
	w := &workload{p: p, m: m, largeMax: 4}
	require.NoError(t, w.setup(ctx))
	mfs.InjectFile("pool/data.blob", blob.OpRead, 1, syscall.EIO)
	err := p.ReadData(alloc.Extent{Block: 0, Count: 1}, 0, make([]byte, BlockSize))
	require.ErrorIs(t, err, syscall.EIO)
	require.NotErrorIs(t, err, ErrFailed)
	require.NoError(t, p.Failed())
	st := p.Stats()
	require.Equal(t, uint64(1), st.ReadErrors)
	require.Zero(t, st.WriteErrors)
	require.NoError(t, w.step(ctx, newRand(3)), "the pool runs on")
	require.NoError(t, verify(p, m))
}
