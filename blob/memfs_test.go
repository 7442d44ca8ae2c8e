package blob

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// fill returns n bytes of c.
func fill(c byte, n int) []byte { return bytes.Repeat([]byte{c}, n) }

// dump returns every file of m with its current bytes.
func dump(t *testing.T, m *MemFS) map[string][]byte {
	t.Helper()
	out := make(map[string][]byte)
	for _, name := range m.Files() {
		b, err := m.ReadFile(name)
		require.NoError(t, err)
		out[name] = b
	}
	return out
}

func create(t *testing.T, m *MemFS, name string) File {
	t.Helper()
	f, err := m.Create(name)
	require.NoError(t, err)
	return f
}

func write(t *testing.T, f File, p []byte, off int64) {
	t.Helper()
	n, err := f.WriteAt(p, off)
	require.NoError(t, err)
	require.Equal(t, len(p), n)
}

func TestMemFSSyncedBytesSurviveCrash(t *testing.T) {
	for seed := range int64(50) {
		m := NewMemFS(seed)
		require.NoError(t, m.MkdirAll("pool"))
		f := create(t, m, "pool/log")
		want := append(fill('A', 3*BlockSize), fill('B', 100)...)
		write(t, f, want[:2*BlockSize], 0)
		write(t, f, want[2*BlockSize:], 2*BlockSize)
		require.NoError(t, f.Sync())

		img := m.Crash()
		require.Equal(t, []string{"pool/log"}, img.Files())
		got, err := img.ReadFile("pool/log")
		require.NoError(t, err)
		require.Equal(t, want, got)
		size, err := img.Stat("pool/log")
		require.NoError(t, err)
		require.Equal(t, int64(len(want)), size)
		_, err = img.Stat("pool")
		require.NoError(t, err, "directories carry over")
	}
}

func TestMemFSCrashTearsUnsyncedWrite(t *testing.T) {
	const blocks = 4
	outcomes := map[string]int{}
	for seed := range int64(200) {
		m := NewMemFS(seed)
		f := create(t, m, "data")
		write(t, f, fill('A', blocks*BlockSize), 0)
		require.NoError(t, f.Sync())
		write(t, f, fill('B', blocks*BlockSize), 0)

		got, err := m.Crash().ReadFile("data")
		require.NoError(t, err)
		require.Len(t, got, blocks*BlockSize)
		kept := 0
		for b := range blocks {
			blk := got[b*BlockSize : (b+1)*BlockSize]
			switch {
			case bytes.Equal(blk, fill('B', BlockSize)):
				kept++
			case !bytes.Equal(blk, fill('A', BlockSize)):
				t.Fatalf("seed %d: block %d is neither old nor new", seed, b)
			}
		}
		switch kept {
		case 0:
			outcomes["lost"]++
		case blocks:
			outcomes["kept"]++
		default:
			outcomes["torn"]++
		}
	}
	require.Positive(t, outcomes["lost"], outcomes)
	require.Positive(t, outcomes["kept"], outcomes)
	require.Positive(t, outcomes["torn"], outcomes)
}

func TestMemFSCrashUnsyncedGrowth(t *testing.T) {
	sizes := map[int]bool{}
	for seed := range int64(100) {
		m := NewMemFS(seed)
		f := create(t, m, "data")
		write(t, f, fill('B', 4*BlockSize), 0)

		got, err := m.Crash().ReadFile("data")
		require.NoError(t, err)
		require.Zero(t, len(got)%BlockSize)
		sizes[len(got)/BlockSize] = true
		last := len(got)/BlockSize - 1
		for b := 0; b <= last; b++ {
			blk := got[b*BlockSize : (b+1)*BlockSize]
			if b == last {
				require.Equal(t, fill('B', BlockSize), blk, "the last block is a kept one")
			} else if !bytes.Equal(blk, fill('B', BlockSize)) {
				require.Equal(t, fill(0, BlockSize), blk)
			}
		}
	}
	require.Equal(t, map[int]bool{0: true, 1: true, 2: true, 3: true, 4: true}, sizes)
}

func TestMemFSCrashTruncate(t *testing.T) {
	m := NewMemFS(3)
	f := create(t, m, "data")
	write(t, f, fill('A', 4*BlockSize), 0)
	require.NoError(t, f.Sync())
	require.NoError(t, f.Truncate(BlockSize+BlockSize/2))
	size, err := m.Crash().Stat("data")
	require.NoError(t, err)
	require.Equal(t, int64(4*BlockSize), size, "an unsynced shrink is lost")

	m = NewMemFS(3)
	f = create(t, m, "data")
	write(t, f, fill('A', 4*BlockSize), 0)
	require.NoError(t, f.Truncate(BlockSize+BlockSize/2))
	require.NoError(t, f.Sync())
	require.NoError(t, f.Truncate(4*BlockSize))
	got, err := m.Crash().ReadFile("data")
	require.NoError(t, err)
	require.Equal(t, fill('A', BlockSize+BlockSize/2), got, "a synced shrink is kept; an unsynced growth is lost")
}

func TestMemFSSameSeedSameImage(t *testing.T) {
	image := func(seed int64) map[string][]byte {
		m := NewMemFS(seed)
		require.NoError(t, workload(m))
		// Leave blocks dirty so that the crash has choices to make.
		f, err := m.Open("a")
		require.NoError(t, err)
		write(t, f, fill('6', 8*BlockSize), 0)
		return dump(t, m.Crash())
	}
	want := image(7)
	require.Equal(t, want, image(7))
	differs := false
	for seed := range int64(20) {
		differs = differs || !equalDumps(want, image(seed))
	}
	require.True(t, differs, "the seed should matter")
}

func equalDumps(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !bytes.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func TestMemFSDeadAfterCrash(t *testing.T) {
	m := NewMemFS(1)
	f := create(t, m, "a")
	write(t, f, fill('A', BlockSize), 0)
	lock, err := m.Lock("LOCK")
	require.NoError(t, err)
	require.Nil(t, m.CrashImage())

	img := m.Crash()
	require.Same(t, img, m.CrashImage())
	require.Same(t, img, m.Crash(), "a dead FS keeps its image")

	p := make([]byte, BlockSize)
	_, err = f.WriteAt(p, 0)
	require.ErrorIs(t, err, ErrCrashed)
	_, err = f.ReadAt(p, 0)
	require.ErrorIs(t, err, ErrCrashed)
	require.ErrorIs(t, f.Sync(), ErrCrashed)
	_, err = f.Size()
	require.ErrorIs(t, err, ErrCrashed)
	require.ErrorIs(t, f.Truncate(0), ErrCrashed)
	require.ErrorIs(t, f.Punch(0, BlockSize), ErrCrashed)
	require.ErrorIs(t, f.Close(), ErrCrashed)
	require.ErrorIs(t, lock.Close(), ErrCrashed)
	_, err = m.Create("b")
	require.ErrorIs(t, err, ErrCrashed)
	_, err = m.Open("a")
	require.ErrorIs(t, err, ErrCrashed)
	_, err = m.Stat("a")
	require.ErrorIs(t, err, ErrCrashed)
	require.ErrorIs(t, m.MkdirAll("d"), ErrCrashed)
	require.ErrorIs(t, m.Remove("a"), ErrCrashed)
	require.ErrorIs(t, m.SyncDir("."), ErrCrashed)
	_, err = m.Lock("other")
	require.ErrorIs(t, err, ErrCrashed)

	got, err := m.ReadFile("a")
	require.NoError(t, err, "the test helpers still see the frozen state")
	require.Equal(t, fill('A', BlockSize), got)

	// The image is a live FS without the old locks.
	lock2, err := img.Lock("LOCK")
	require.NoError(t, err)
	require.NoError(t, lock2.Close())
	f2, err := img.Open("a")
	require.NoError(t, err)
	write(t, f2, fill('Z', BlockSize), 0)
	require.NoError(t, f2.Sync())
}

func TestMemFSCrashAfter(t *testing.T) {
	m := NewMemFS(1)
	f := create(t, m, "a")
	m.CrashAfter(3)
	write(t, f, fill('A', BlockSize), 0) // 1
	require.NoError(t, f.Sync())         // 2
	require.Nil(t, m.CrashImage())

	n, err := f.WriteAt(fill('B', BlockSize), BlockSize) // 3: the power is cut first
	require.ErrorIs(t, err, ErrCrashed)
	require.Contains(t, err.Error(), "write a at 4096")
	require.Zero(t, n)
	mut, syncs := m.Ops()
	require.Equal(t, 3, mut)
	require.Equal(t, 1, syncs)

	img := m.CrashImage()
	require.NotNil(t, img)
	got, err := img.ReadFile("a")
	require.NoError(t, err)
	require.Equal(t, fill('A', BlockSize), got)
	require.ErrorIs(t, f.Sync(), ErrCrashed)
	_, err = f.ReadAt(make([]byte, BlockSize), 0)
	require.ErrorIs(t, err, ErrCrashed)
	got, err = m.ReadFile("a")
	require.NoError(t, err)
	require.Equal(t, fill('A', BlockSize), got, "the crashing write never happened")
}

func TestMemFSCrashAfterMatchesCrash(t *testing.T) {
	m := NewMemFS(0)
	require.NoError(t, workload(m))
	total, _ := m.Ops()
	require.Equal(t, 11, total, "every workload step is one mutation")
	for seed := range int64(10) {
		for k := 1; k <= total; k++ {
			frozen := NewMemFS(seed)
			frozen.CrashAfter(k)
			require.ErrorIs(t, workload(frozen), ErrCrashed)
			mut, _ := frozen.Ops()
			require.Equal(t, k, mut)

			ref := NewMemFS(seed)
			require.ErrorIs(t, workloadUntil(ref, k), errStop)
			require.Equal(t, dump(t, ref.Crash()), dump(t, frozen.CrashImage()), "seed %d, mutation %d", seed, k)
		}
	}
}

func TestMemFSCrashAtSync(t *testing.T) {
	const steps = 4
	run := func(m *MemFS) error {
		f, err := m.Create("log")
		if err != nil {
			return err
		}
		for i := range steps {
			if _, err := f.WriteAt(fill('a'+byte(i), BlockSize), int64(i)*BlockSize); err != nil {
				return err
			}
			if err := f.Sync(); err != nil {
				return err
			}
		}
		return nil
	}
	m := NewMemFS(0)
	require.NoError(t, run(m))
	mut, syncs := m.Ops()
	require.Equal(t, 2*steps, mut)
	require.Equal(t, steps, syncs)

	for i := 1; i <= syncs; i++ {
		for seed := range int64(20) {
			m := NewMemFS(seed)
			m.CrashAtSync(i)
			err := run(m)
			require.ErrorIs(t, err, ErrCrashed)
			require.Contains(t, err.Error(), "sync log")
			mut, syncs := m.Ops()
			require.Equal(t, 2*i, mut)
			require.Equal(t, i, syncs)

			got, err := m.CrashImage().ReadFile("log")
			require.NoError(t, err)
			want := []byte{}
			for j := range i - 1 {
				want = append(want, fill('a'+byte(j), BlockSize)...)
			}
			if len(got) > len(want) { // the unsynced block survived
				want = append(want, fill('a'+byte(i-1), BlockSize)...)
			}
			require.Equal(t, want, got, "sync %d, seed %d", i, seed)
		}
	}
}

func TestMemFSInjectWriteError(t *testing.T) {
	m := NewMemFS(0)
	f := create(t, m, "a")
	m.Inject(OpWrite, 2, syscall.EIO)
	write(t, f, fill('A', BlockSize), 0)
	n, err := f.WriteAt(fill('B', BlockSize), BlockSize)
	require.ErrorIs(t, err, syscall.EIO)
	require.EqualError(t, err, "blob: write a at 4096: input/output error")
	require.Zero(t, n)
	got, err := m.ReadFile("a")
	require.NoError(t, err)
	require.Equal(t, fill('A', BlockSize), got, "the failed write changed nothing")
	write(t, f, fill('C', BlockSize), BlockSize) // spent
	mut, _ := m.Ops()
	require.Equal(t, 3, mut, "failed operations count")
}

// A failed sync drops what it could not write, as Linux writeback does: the
// changed blocks read as before, the size is the durable one, and a later
// sync that succeeds makes none of them durable (retrying a failed fsync
// and believing it is the mistake this catches).
func TestMemFSFailedSyncDropsUnsyncedBlocks(t *testing.T) {
	m := NewMemFS(0)
	f := create(t, m, "a")
	write(t, f, fill('A', BlockSize), 0)
	require.NoError(t, f.Sync())
	write(t, f, fill('B', BlockSize), 0)
	write(t, f, fill('C', BlockSize), BlockSize)
	m.Inject(OpSync, 1, syscall.ENOSPC)
	err := f.Sync()
	require.ErrorIs(t, err, syscall.ENOSPC)
	require.EqualError(t, err, "blob: sync a: no space left on device")
	got, err := m.ReadFile("a")
	require.NoError(t, err)
	require.Equal(t, fill('A', BlockSize), got, "the unsynced blocks are gone, the size is the durable one")
	require.NoError(t, f.Sync(), "the retry succeeds")
	got, err = m.Crash().ReadFile("a")
	require.NoError(t, err)
	require.Equal(t, fill('A', BlockSize), got, "and made nothing of the dropped writes durable")
}

// A failed sync drops only the file it failed on.
func TestMemFSFailedSyncDropsOnlyItsFile(t *testing.T) {
	m := NewMemFS(0)
	a, b := create(t, m, "a"), create(t, m, "b")
	write(t, a, fill('A', BlockSize), 0)
	write(t, b, fill('B', BlockSize), 0)
	m.InjectFile("a", OpSync, 1, syscall.EIO)
	require.ErrorIs(t, a.Sync(), syscall.EIO)
	require.NoError(t, b.Sync())
	img := m.Crash()
	got, err := img.ReadFile("a")
	require.NoError(t, err)
	require.Empty(t, got)
	got, err = img.ReadFile("b")
	require.NoError(t, err)
	require.Equal(t, fill('B', BlockSize), got)
}

func TestMemFSInjectShortWrite(t *testing.T) {
	for _, tc := range []struct{ blocks, written int }{{4, 2}, {3, 1}, {1, 0}} {
		m := NewMemFS(0)
		f := create(t, m, "a")
		m.Inject(OpWrite, 1, ErrShortWrite)
		p := append(fill('A', (tc.blocks-1)*BlockSize), fill('B', BlockSize)...)
		n, err := f.WriteAt(p, BlockSize)
		require.ErrorIs(t, err, ErrShortWrite)
		require.Equal(t, tc.written*BlockSize, n)
		size, err := f.Size()
		require.NoError(t, err)
		if tc.written == 0 {
			require.Zero(t, size)
			continue
		}
		require.Equal(t, int64(tc.written+1)*BlockSize, size)
		got, err := m.ReadFile("a")
		require.NoError(t, err)
		require.Equal(t, append(fill(0, BlockSize), p[:n]...), got)
	}
}

func TestMemFSInjectOtherOps(t *testing.T) {
	m := NewMemFS(0)
	f := create(t, m, "a")
	write(t, f, fill('A', 2*BlockSize), 0)
	m.Inject(OpRead, 1, syscall.EIO)
	m.Inject(OpTruncate, 1, syscall.EIO)
	m.Inject(OpPunch, 1, syscall.EIO)

	p := make([]byte, BlockSize)
	n, err := f.ReadAt(p, BlockSize)
	require.ErrorIs(t, err, syscall.EIO)
	require.Zero(t, n)
	require.ErrorIs(t, f.Truncate(0), syscall.EIO)
	err = f.Punch(0, BlockSize)
	require.ErrorIs(t, err, syscall.EIO)
	require.EqualError(t, err, "blob: punch a at 0+4096: input/output error")
	got, err := m.ReadFile("a")
	require.NoError(t, err)
	require.Equal(t, fill('A', 2*BlockSize), got)

	_, err = f.ReadAt(p, BlockSize)
	require.NoError(t, err, "spent")
	require.Equal(t, fill('A', BlockSize), p)
}

func TestMemFSInjectFile(t *testing.T) {
	m := NewMemFS(0)
	a, b := create(t, m, "dir/a"), create(t, m, "dir/b")
	m.InjectFile("dir/./b", OpWrite, 2, syscall.EIO)
	write(t, a, fill('A', BlockSize), 0)
	write(t, b, fill('B', BlockSize), 0)
	write(t, a, fill('A', BlockSize), BlockSize)
	_, err := b.WriteAt(fill('B', BlockSize), BlockSize)
	require.ErrorIs(t, err, syscall.EIO)
	require.Contains(t, err.Error(), "dir/b")
	write(t, b, fill('B', BlockSize), BlockSize)
}

func TestMemFSLock(t *testing.T) {
	m := NewMemFS(0)
	l, err := m.Lock("pool/LOCK")
	require.NoError(t, err)
	_, err = m.Lock("pool/LOCK")
	require.ErrorIs(t, err, ErrLocked)
	require.EqualError(t, err, "blob: lock pool/LOCK: locked by another process")
	other, err := m.Lock("pool/OTHER")
	require.NoError(t, err)
	require.NoError(t, other.Close())

	require.NoError(t, l.Close())
	require.ErrorIs(t, l.Close(), os.ErrClosed)
	l2, err := m.Lock("pool/LOCK")
	require.NoError(t, err)
	require.ErrorIs(t, l.Close(), os.ErrClosed, "a stale closer does not release the new holder")
	_, err = m.Lock("pool/LOCK")
	require.ErrorIs(t, err, ErrLocked)
	require.NoError(t, l2.Close())
	_, err = m.Stat("pool/LOCK")
	require.NoError(t, err, "Lock creates the file, as OSFS does")
}

func TestMemFSFiles(t *testing.T) {
	m := NewMemFS(0)
	f := create(t, m, "b")
	_, err := m.Create("./b")
	require.ErrorIs(t, err, fs.ErrExist)
	_, err = m.Open("missing")
	require.ErrorIs(t, err, fs.ErrNotExist)
	_, err = m.Stat("missing")
	require.ErrorIs(t, err, fs.ErrNotExist)
	require.ErrorIs(t, m.Remove("missing"), fs.ErrNotExist)
	create(t, m, "a")
	require.Equal(t, []string{"a", "b"}, m.Files())

	// Handles share contents; removal is durable and leaves handles working.
	write(t, f, fill('B', BlockSize), 0)
	g, err := m.Open("b")
	require.NoError(t, err)
	require.Equal(t, "b", g.Name())
	p := make([]byte, BlockSize)
	_, err = g.ReadAt(p, 0)
	require.NoError(t, err)
	require.Equal(t, fill('B', BlockSize), p)
	require.NoError(t, m.Remove("b"))
	require.Equal(t, []string{"a"}, m.Files())
	write(t, f, fill('C', BlockSize), 0)
	require.Equal(t, []string{"a"}, m.Crash().Files())
}

func TestMemFSFileOps(t *testing.T) {
	m := NewMemFS(0)
	f := create(t, m, "a")

	// Bytes are copied in and out.
	p := fill('A', 2*BlockSize)
	write(t, f, p, 0)
	p[0] = 'X'
	got, err := m.ReadFile("a")
	require.NoError(t, err)
	got[1] = 'Y'
	got, err = m.ReadFile("a")
	require.NoError(t, err)
	require.Equal(t, fill('A', 2*BlockSize), got)

	// Reading past the end returns what there is and io.EOF.
	q := make([]byte, BlockSize)
	n, err := f.ReadAt(q, BlockSize+BlockSize/2)
	require.ErrorIs(t, err, io.EOF)
	require.Equal(t, BlockSize/2, n)
	n, err = f.ReadAt(q, 10*BlockSize)
	require.ErrorIs(t, err, io.EOF)
	require.Zero(t, n)

	// Punch zeroes within the size and does not grow it.
	require.NoError(t, f.Punch(BlockSize/2, 10*BlockSize))
	got, err = m.ReadFile("a")
	require.NoError(t, err)
	require.Equal(t, append(fill('A', BlockSize/2), fill(0, BlockSize+BlockSize/2)...), got)

	// Shrink then grow reads zeros in the regrown part.
	write(t, f, fill('B', 2*BlockSize), 0)
	require.NoError(t, f.Truncate(100))
	require.NoError(t, f.Truncate(2*BlockSize))
	got, err = m.ReadFile("a")
	require.NoError(t, err)
	require.Equal(t, append(fill('B', 100), fill(0, 2*BlockSize-100)...), got)

	// Huge sparse files cost nothing.
	require.NoError(t, f.Truncate(1<<40))
	write(t, f, fill('C', BlockSize), 1<<39)
	require.NoError(t, f.Punch(0, 1<<40))
	n, err = f.ReadAt(q, 1<<39)
	require.NoError(t, err)
	require.Equal(t, BlockSize, n)
	require.Equal(t, fill(0, BlockSize), q)
	require.NoError(t, f.Sync())
	size, err := m.Crash().Stat("a")
	require.NoError(t, err)
	require.Equal(t, int64(1<<40), size)

	// Invalid arguments and closed files.
	m = NewMemFS(0)
	f = create(t, m, "a")
	_, err = f.WriteAt(q, -1)
	require.ErrorIs(t, err, fs.ErrInvalid)
	require.ErrorIs(t, f.Truncate(-1), fs.ErrInvalid)
	require.NoError(t, f.Close())
	require.ErrorIs(t, f.Close(), os.ErrClosed)
	_, err = f.WriteAt(q, 0)
	require.ErrorIs(t, err, os.ErrClosed)
	mut, _ := m.Ops()
	require.Zero(t, mut, "refused calls are not operations")
}

func TestMemFSConcurrent(t *testing.T) {
	m := NewMemFS(0)
	f := create(t, m, "a")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			p, q := fill(byte('a'+g), BlockSize), make([]byte, BlockSize)
			for i := range 50 {
				off := int64(i*8+g) * BlockSize
				if _, err := f.WriteAt(p, off); err != nil {
					t.Error(err)
					return
				}
				if _, err := f.ReadAt(q, off); err != nil || !bytes.Equal(p, q) {
					t.Error("read back", err)
					return
				}
				if err := f.Sync(); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	got, err := m.Crash().ReadFile("a")
	require.NoError(t, err)
	require.Len(t, got, 400*BlockSize)
	for b := range 400 {
		require.Equal(t, fill(byte('a'+b%8), BlockSize), got[b*BlockSize:(b+1)*BlockSize])
	}
}

// errStop ends workloadUntil.
var errStop = errors.New("stop")

// workload issues a fixed mix of operations, one mutation per step, over two
// files and returns the first error.
func workload(m *MemFS) error { return workloadUntil(m, 0) }

// workloadUntil is workload returning errStop just before the stop-th
// mutation (1-based; 0 runs it all).
func workloadUntil(m *MemFS, stop int) error {
	a, err := m.Create("a")
	if err != nil {
		return err
	}
	b, err := m.Create("b")
	if err != nil {
		return err
	}
	writeAt := func(f File, c byte, blocks, at int) func() error {
		return func() error {
			_, err := f.WriteAt(fill(c, blocks*BlockSize), int64(at)*BlockSize)
			return err
		}
	}
	steps := []func() error{
		writeAt(a, '1', 3, 0),
		writeAt(b, '2', 2, 1),
		a.Sync,
		writeAt(a, '3', 4, 2),
		func() error { return a.Punch(0, BlockSize) },
		b.Sync,
		func() error { return b.Truncate(BlockSize + 10) },
		writeAt(b, '4', 2, 4),
		a.Sync,
		writeAt(a, '5', 2, 1),
		writeAt(b, '6', 3, 0),
	}
	for i, step := range steps {
		if i+1 == stop {
			return errStop
		}
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}
