package blob

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// hostBytes reads name as the host holds it, as a process opening the
// files after the kill would.
func hostBytes(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	require.NoError(t, err)
	return b
}

// readAll reads the whole of f through the File interface.
func readAll(t *testing.T, f File) []byte {
	t.Helper()
	size, err := f.Size()
	require.NoError(t, err)
	p := make([]byte, size)
	n, err := f.ReadAt(p, 0)
	require.NoError(t, err)
	require.Equal(t, int(size), n)
	return p
}

func randBytes(rng *rand.Rand, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
	return p
}

func newQuietPowerCutFS(t *testing.T, seed int64) *PowerCutFS {
	p := NewPowerCutFS(seed)
	p.SetTrickle(0)
	t.Cleanup(func() { p.Close() })
	return p
}

func TestPowerCutSyncedSurvives(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "blob")
	rng := rand.New(rand.NewPCG(1, 2))

	p := NewPowerCutFS(1) // with the trickle: synced data survive regardless
	defer p.Close()
	f, err := p.Create(name)
	require.NoError(t, err)
	want := randBytes(rng, 5*BlockSize+123)
	_, err = f.WriteAt(want, 0)
	require.NoError(t, err)
	_, err = f.WriteAt(want[:700], 3*BlockSize+17) // an unaligned overwrite
	require.NoError(t, err)
	copy(want[3*BlockSize+17:], want[:700])
	require.NoError(t, f.Sync())
	// The process dies here: no Close.

	require.Equal(t, want, hostBytes(t, name))
	p2 := newQuietPowerCutFS(t, 2)
	g, err := p2.Open(name)
	require.NoError(t, err)
	require.Equal(t, want, readAll(t, g))
	size, err := p2.Stat(name)
	require.NoError(t, err)
	require.Equal(t, int64(len(want)), size)
	require.NoError(t, g.Close())
}

func TestPowerCutUnsyncedLost(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "blob")
	rng := rand.New(rand.NewPCG(3, 4))

	p := newQuietPowerCutFS(t, 3)
	f, err := p.Create(name)
	require.NoError(t, err)
	synced := randBytes(rng, 4*BlockSize)
	_, err = f.WriteAt(synced, 0)
	require.NoError(t, err)
	require.NoError(t, f.Sync())

	// Unsynced: an overwrite, a growth, a punch and a cut.
	_, err = f.WriteAt(randBytes(rng, 1000), 100)
	require.NoError(t, err)
	_, err = f.WriteAt(randBytes(rng, 3*BlockSize), 6*BlockSize)
	require.NoError(t, err)
	require.NoError(t, f.Punch(2*BlockSize, BlockSize))
	require.NoError(t, f.Truncate(9*BlockSize))
	require.NoError(t, f.Truncate(BlockSize+5))
	size, err := f.Size()
	require.NoError(t, err)
	require.Equal(t, int64(BlockSize+5), size)

	// Killed: the host holds the synced bytes only.
	require.Equal(t, synced, hostBytes(t, name))
	o, err := NewOSFS(false).Open(name)
	require.NoError(t, err)
	require.Equal(t, synced, readAll(t, o))
	require.NoError(t, o.Close())
}

func TestPowerCutTruncateStaged(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "blob")
	p := newQuietPowerCutFS(t, 5)
	f, err := p.Create(name)
	require.NoError(t, err)
	ones := bytes.Repeat([]byte{1}, 3*BlockSize)
	_, err = f.WriteAt(ones, 0)
	require.NoError(t, err)
	require.NoError(t, f.Sync())

	// Cut into the middle of a block, then grow again: the bytes cut off
	// read as zeros before and after Sync.
	require.NoError(t, f.Truncate(BlockSize+10))
	require.NoError(t, f.Truncate(3*BlockSize))
	want := make([]byte, 3*BlockSize)
	copy(want, ones[:BlockSize+10])
	require.Equal(t, want, readAll(t, f))
	require.Equal(t, ones, hostBytes(t, name), "the cut reached the host before Sync")
	require.NoError(t, f.Sync())
	require.Equal(t, want, hostBytes(t, name))
	require.Equal(t, want, readAll(t, f))

	require.NoError(t, f.Truncate(10))
	require.NoError(t, f.Sync())
	require.Equal(t, ones[:10], hostBytes(t, name))
	require.NoError(t, f.Close())
}

// TestPowerCutModel checks reads, and the host after each Sync, against a
// plain byte slice through random writes, punches and truncates.
func TestPowerCutModel(t *testing.T) {
	for _, trickle := range []float64{0, 0.5} {
		t.Run(fmt.Sprintf("trickle=%v", trickle), func(t *testing.T) {
			dir := t.TempDir()
			name := filepath.Join(dir, "blob")
			seed := rand.Int64()
			t.Logf("seed %d", seed)
			rng := rand.New(rand.NewPCG(uint64(seed), 0))
			p := NewPowerCutFS(seed)
			defer p.Close()
			p.SetTrickle(trickle)
			f, err := p.Create(name)
			require.NoError(t, err)
			model := []byte{}
			synced := []byte{}
			for i := 0; i < 400; i++ {
				switch k := rng.IntN(10); {
				case k < 5:
					off := rng.Int64N(12 * BlockSize)
					data := randBytes(rng, 1+rng.IntN(3*BlockSize))
					_, err := f.WriteAt(data, off)
					require.NoError(t, err)
					if end := off + int64(len(data)); end > int64(len(model)) {
						model = append(model, make([]byte, end-int64(len(model)))...)
					}
					copy(model[off:], data)
				case k == 5:
					off, n := rng.Int64N(12*BlockSize), rng.Int64N(4*BlockSize)
					require.NoError(t, f.Punch(off, n))
					if off < int64(len(model)) {
						clear(model[off:min(off+n, int64(len(model)))])
					}
				case k == 6:
					size := rng.Int64N(14 * BlockSize)
					require.NoError(t, f.Truncate(size))
					if size < int64(len(model)) {
						model = model[:size]
					} else {
						model = append(model, make([]byte, size-int64(len(model)))...)
					}
				case k == 7:
					require.NoError(t, f.Sync())
					synced = bytes.Clone(model)
					require.Equal(t, synced, hostBytes(t, name), "op %d: host after sync", i)
				default:
					off := rng.Int64N(14 * BlockSize)
					buf := make([]byte, rng.IntN(4*BlockSize))
					n, err := f.ReadAt(buf, off)
					want := 0
					if off < int64(len(model)) {
						want = min(len(buf), len(model)-int(off))
						require.Equal(t, model[off:off+int64(want)], buf[:n], "op %d: read at %d", i, off)
					}
					require.Equal(t, want, n)
					if want < len(buf) {
						require.ErrorIs(t, err, io.EOF)
					} else {
						require.NoError(t, err)
					}
				}
			}
			require.Equal(t, model, readAll(t, f))
			if trickle == 0 {
				require.Equal(t, synced, hostBytes(t, name))
			}
			require.NoError(t, f.Sync())
			require.Equal(t, model, hostBytes(t, name))
			require.NoError(t, f.Close())
		})
	}
}

// TestPowerCutTrickle checks that the trickle writes unsynced blocks
// through.
func TestPowerCutTrickle(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "blob")
	p := NewPowerCutFS(7)
	defer p.Close()
	p.SetTrickle(1)
	f, err := p.Create(name)
	require.NoError(t, err)
	data := bytes.Repeat([]byte{7}, 8*BlockSize)
	_, err = f.WriteAt(data, 0)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return bytes.Equal(hostBytes(t, name), data)
	}, 5e9, 1e6)
	require.NoError(t, f.Close())
}

// TestPowerCutShared checks that handles of one path share the overlay,
// which outlives the last Close.
func TestPowerCutShared(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "blob")
	p := newQuietPowerCutFS(t, 8)
	f, err := p.Create(name)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("hello"), 0)
	require.NoError(t, err)
	g, err := p.Open(name)
	require.NoError(t, err)
	require.Equal(t, []byte("hello"), readAll(t, g))
	require.NoError(t, f.Close())
	require.NoError(t, g.Close())
	require.Empty(t, hostBytes(t, name))
	h, err := p.Open(name)
	require.NoError(t, err)
	require.Equal(t, []byte("hello"), readAll(t, h))
	require.NoError(t, h.Sync())
	require.NoError(t, h.Close())
	require.Equal(t, []byte("hello"), hostBytes(t, name))
	_, err = h.ReadAt(make([]byte, 1), 0)
	require.ErrorIs(t, err, os.ErrClosed)
	require.Error(t, h.Close())
}

// TestPowerCutConcurrent runs writers to disjoint ranges, syncs and the
// trickle together (for the race detector), then checks the result.
func TestPowerCutConcurrent(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "blob")
	p := NewPowerCutFS(9)
	defer p.Close()
	p.SetTrickle(0.3)
	f, err := p.Create(name)
	require.NoError(t, err)
	const writers, region = 4, 16 * BlockSize
	want := make([]byte, writers*region)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for range 200 {
				off := rng.Int64N(region - 3000)
				data := randBytes(rng, 1+rng.IntN(3000))
				if _, err := f.WriteAt(data, int64(w*region)+off); err != nil {
					t.Error(err)
					return
				}
				copy(want[int64(w*region)+off:], data)
				if rng.IntN(20) == 0 {
					if err := f.Sync(); err != nil {
						t.Error(err)
						return
					}
				}
				got := make([]byte, len(data))
				if _, err := f.ReadAt(got, int64(w*region)+off); err != nil || !bytes.Equal(got, data) {
					t.Errorf("writer %d: read back differs (%v)", w, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	require.NoError(t, f.Sync())
	got := hostBytes(t, name)
	require.Equal(t, want[:len(got)], got)
	require.NoError(t, f.Close())
}

// An injected sync failure drops the staged blocks, as a failed writeback
// does: reads see the host's (old) bytes, and a later sync that succeeds
// writes none of the dropped ones.
func TestPowerCutFailedSyncDropsStagedBlocks(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "blob")
	p := newQuietPowerCutFS(t, 5)
	f, err := p.Create(name)
	require.NoError(t, err)
	old := bytes.Repeat([]byte{'A'}, 2*BlockSize)
	_, err = f.WriteAt(old, 0)
	require.NoError(t, err)
	require.NoError(t, f.Sync())

	_, err = f.WriteAt(bytes.Repeat([]byte{'B'}, BlockSize), BlockSize)
	require.NoError(t, err)
	p.InjectFile(filepath.Join(dir, ".", "blob"), OpSync, 1, syscall.EIO)
	err = f.Sync()
	require.ErrorIs(t, err, syscall.EIO)
	require.Contains(t, err.Error(), "blob: sync "+name)
	require.Equal(t, old, readAll(t, f), "the staged block is gone")
	require.NoError(t, f.Sync(), "the retry succeeds")
	require.Equal(t, old, hostBytes(t, name), "and wrote nothing of the dropped block")
	require.NoError(t, f.Close())
}

// Injected write, read, truncate and punch failures change nothing; an
// injected short write stages the first half, rounded down to a block.
func TestPowerCutInject(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "blob")
	p := newQuietPowerCutFS(t, 6)
	f, err := p.Create(name)
	require.NoError(t, err)
	a := bytes.Repeat([]byte{'A'}, 4*BlockSize)
	_, err = f.WriteAt(a, 0)
	require.NoError(t, err)

	p.Inject(OpWrite, 2, syscall.EIO)
	_, err = f.WriteAt([]byte("x"), 0) // the first write counts, succeeds
	require.NoError(t, err)
	n, err := f.WriteAt(bytes.Repeat([]byte{'B'}, BlockSize), BlockSize)
	require.ErrorIs(t, err, syscall.EIO)
	require.Zero(t, n)
	a[0] = 'x'
	require.Equal(t, a, readAll(t, f))

	p.Inject(OpWrite, 1, ErrShortWrite)
	n, err = f.WriteAt(bytes.Repeat([]byte{'C'}, 3*BlockSize), 0)
	require.ErrorIs(t, err, ErrShortWrite)
	require.Equal(t, BlockSize, n)
	copy(a, bytes.Repeat([]byte{'C'}, BlockSize))
	require.Equal(t, a, readAll(t, f))

	p.Inject(OpRead, 1, syscall.EIO)
	p.Inject(OpTruncate, 1, syscall.EIO)
	p.Inject(OpPunch, 1, syscall.EIO)
	_, err = f.ReadAt(make([]byte, BlockSize), 0)
	require.ErrorIs(t, err, syscall.EIO)
	require.ErrorIs(t, f.Truncate(0), syscall.EIO)
	require.ErrorIs(t, f.Punch(0, BlockSize), syscall.EIO)
	require.Equal(t, a, readAll(t, f), "spent, and nothing changed")
	require.NoError(t, f.Sync())
	require.Equal(t, a, hostBytes(t, name))
	require.NoError(t, f.Close())
}
