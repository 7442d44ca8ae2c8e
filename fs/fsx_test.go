package fs

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// fsxModel is the expected contents of the file under test.
type fsxModel struct {
	data []byte
}

func (m *fsxModel) resize(n int) {
	if n <= len(m.data) {
		m.data = m.data[:n]
		return
	}
	m.data = append(m.data, make([]byte, n-len(m.data))...)
}

func (m *fsxModel) write(off int, b []byte) {
	if off+len(b) > len(m.data) {
		m.resize(off + len(b))
	}
	copy(m.data[off:], b)
}

func (m *fsxModel) zero(off, end int) {
	end = min(end, len(m.data))
	for i := off; i < end; i++ {
		m.data[i] = 0
	}
}

// fsxMaxLen bounds the file of TestFsx; fsxMaxOp one operation's length.
const (
	fsxMaxLen = 1 << 20
	fsxMaxOp  = 96 << 10
)

// TestFsx is a file exerciser in the manner of fsx: random reads, writes
// (plain, O_DIRECT, through a shared mapping), truncates, fallocates
// (every mode the filesystem takes; the others must fail with
// EOPNOTSUPP), copy_file_range, fsync, close and reopen, and remounts, on
// one file, each checked against a model of its bytes; the whole file is
// compared after every operation that changes it. VOSFS_FSX_OPS sets the
// number of operations (default 3,000), VOSFS_FSX_SEED the seed.
func TestFsx(t *testing.T) {
	ops := 3000
	if testing.Short() {
		ops = 600
	}
	if s := os.Getenv("VOSFS_FSX_OPS"); s != "" {
		n, err := strconv.Atoi(s)
		require.NoError(t, err)
		ops = n
	}
	seed := uint64(rand.Int64())
	if s := os.Getenv("VOSFS_FSX_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err)
		seed = n
	}
	t.Logf("seed %d (VOSFS_FSX_SEED=%d to repeat)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0x667378))

	m := mountTest(t, DefaultOptions())
	path := m.path("fsx")
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT, 0o644)
	require.NoError(t, err)
	defer func() { unix.Close(fd) }()
	var model fsxModel
	var log []string
	fail := func(format string, args ...any) {
		t.Helper()
		from := max(0, len(log)-20)
		t.Fatalf("seed %d, op %d: %s\nlast operations:\n  %s", seed, len(log), fmt.Sprintf(format, args...),
			bytes.Join(func() [][]byte {
				var out [][]byte
				for _, l := range log[from:] {
					out = append(out, []byte(l))
				}
				return out
			}(), []byte("\n  ")))
	}
	check := func(what string, err error) {
		t.Helper()
		if err != nil {
			fail("%s: %v", what, err)
		}
	}
	compare := func(off int, got []byte) {
		t.Helper()
		want := model.data[min(off, len(model.data)):min(off+len(got), len(model.data))]
		if !bytes.Equal(want, got) {
			i := 0
			for i < len(want) && i < len(got) && want[i] == got[i] {
				i++
			}
			fail("bytes differ at %d (read of %d at %d, file %d): got %d bytes, want %d; first difference: got %v, want %v",
				off+i, len(got), off, len(model.data), len(got), len(want),
				got[i:min(i+8, len(got))], want[i:min(i+8, len(want))])
		}
	}
	verifyAll := func() {
		t.Helper()
		var st unix.Stat_t
		check("fstat", unix.Fstat(fd, &st))
		if st.Size != int64(len(model.data)) {
			fail("size %d, want %d", st.Size, len(model.data))
		}
		buf := make([]byte, len(model.data)+1)
		n, err := unix.Pread(fd, buf, 0)
		check("pread of the whole file", err)
		compare(0, buf[:n])
	}
	randRange := func(maxLen int) (int, int) {
		n := 1 + rng.IntN(maxLen)
		off := rng.IntN(fsxMaxLen - n)
		return off, n
	}
	fill := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.IntN(255) + 1)
		}
		return b
	}
	const page = 4096
	for i := 0; i < ops; i++ {
		changed := true
		switch op := rng.IntN(16); op {
		case 0, 1, 2: // write
			off, n := randRange(fsxMaxOp)
			b := fill(n)
			log = append(log, fmt.Sprintf("write %d+%d", off, n))
			w, err := unix.Pwrite(fd, b, int64(off))
			check("pwrite", err)
			if w != n {
				fail("pwrite wrote %d of %d", w, n)
			}
			model.write(off, b)
		case 3, 4: // read
			changed = false
			off, n := randRange(fsxMaxOp)
			log = append(log, fmt.Sprintf("read %d+%d", off, n))
			buf := make([]byte, n)
			r, err := unix.Pread(fd, buf, int64(off))
			check("pread", err)
			compare(off, buf[:r])
			if want := max(0, min(n, len(model.data)-off)); r != want {
				fail("pread returned %d, want %d", r, want)
			}
		case 5: // truncate
			n := rng.IntN(fsxMaxLen)
			log = append(log, fmt.Sprintf("truncate %d", n))
			check("ftruncate", unix.Ftruncate(fd, int64(n)))
			model.resize(n)
		case 6, 7: // fallocate
			off, n := randRange(fsxMaxOp * 2)
			modes := []uint32{0, unix.FALLOC_FL_KEEP_SIZE, unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE,
				unix.FALLOC_FL_ZERO_RANGE, unix.FALLOC_FL_ZERO_RANGE | unix.FALLOC_FL_KEEP_SIZE,
				unix.FALLOC_FL_COLLAPSE_RANGE, unix.FALLOC_FL_INSERT_RANGE}
			mode := modes[rng.IntN(len(modes))]
			if mode == unix.FALLOC_FL_COLLAPSE_RANGE || mode == unix.FALLOC_FL_INSERT_RANGE {
				off, n = off&^(page-1), max(page, n&^(page-1))
			}
			log = append(log, fmt.Sprintf("fallocate mode %#x %d+%d", mode, off, n))
			err := unix.Fallocate(fd, mode, int64(off), int64(n))
			switch mode {
			case unix.FALLOC_FL_COLLAPSE_RANGE, unix.FALLOC_FL_INSERT_RANGE:
				if err != unix.EOPNOTSUPP {
					fail("fallocate mode %#x: %v, want EOPNOTSUPP", mode, err)
				}
				changed = false
				continue
			}
			check("fallocate", err)
			if mode&(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_ZERO_RANGE) != 0 {
				model.zero(off, off+n)
			}
			if mode&unix.FALLOC_FL_KEEP_SIZE == 0 && off+n > len(model.data) {
				model.resize(off + n)
			}
		case 8: // write through a shared mapping
			if len(model.data) == 0 {
				changed = false
				continue
			}
			off := rng.IntN(len(model.data))
			n := 1 + rng.IntN(min(fsxMaxOp, len(model.data)-off))
			log = append(log, fmt.Sprintf("mapwrite %d+%d", off, n))
			pgoff := off &^ (page - 1)
			mem, err := unix.Mmap(fd, int64(pgoff), off+n-pgoff, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
			check("mmap", err)
			b := fill(n)
			copy(mem[off-pgoff:], b)
			check("msync", unix.Msync(mem, unix.MS_SYNC))
			check("munmap", unix.Munmap(mem))
			model.write(off, b)
		case 9: // read through a mapping
			changed = false
			if len(model.data) == 0 {
				continue
			}
			off := rng.IntN(len(model.data))
			n := 1 + rng.IntN(min(fsxMaxOp, len(model.data)-off))
			log = append(log, fmt.Sprintf("mapread %d+%d", off, n))
			pgoff := off &^ (page - 1)
			mem, err := unix.Mmap(fd, int64(pgoff), off+n-pgoff, unix.PROT_READ, unix.MAP_SHARED)
			check("mmap", err)
			got := append([]byte(nil), mem[off-pgoff:]...)
			check("munmap", unix.Munmap(mem))
			compare(off, got)
		case 10: // O_DIRECT write and read, block aligned
			off, n := randRange(fsxMaxOp)
			off, n = off&^(page-1), max(page, n&^(page-1))
			log = append(log, fmt.Sprintf("direct write+read %d+%d", off, n))
			dfd, err := unix.Open(path, unix.O_RDWR|unix.O_DIRECT, 0)
			check("open O_DIRECT", err)
			buf := alignedBuf(t, n)
			b := fill(n)
			copy(buf, b)
			w, err := unix.Pwrite(dfd, buf, int64(off))
			if err != nil || w != n {
				unix.Close(dfd)
				fail("direct pwrite %d+%d: %d, %v", off, n, w, err)
			}
			model.write(off, b)
			r, err := unix.Pread(dfd, buf, int64(off))
			unix.Close(dfd)
			check("direct pread", err)
			compare(off, buf[:r])
		case 11: // copy_file_range within the file, ranges apart
			if len(model.data) < 2 {
				changed = false
				continue
			}
			n := 1 + rng.IntN(min(fsxMaxOp, len(model.data)/2))
			src := rng.IntN(len(model.data) - n + 1)
			dst := rng.IntN(fsxMaxLen - n)
			if dst < src+n && src < dst+n {
				changed = false
				continue
			}
			log = append(log, fmt.Sprintf("copy_file_range %d+%d -> %d", src, n, dst))
			soff, doff := int64(src), int64(dst)
			c, err := unix.CopyFileRange(fd, &soff, fd, &doff, n, 0)
			check("copy_file_range", err)
			if c != n {
				fail("copy_file_range copied %d of %d", c, n)
			}
			model.write(dst, append([]byte(nil), model.data[src:src+n]...))
		case 12: // fsync or fdatasync
			changed = false
			log = append(log, "fsync")
			if rng.IntN(2) == 0 {
				check("fsync", unix.Fsync(fd))
			} else {
				check("fdatasync", unix.Fdatasync(fd))
			}
		case 13: // close and reopen
			changed = false
			log = append(log, "close, open")
			check("close", unix.Close(fd))
			fd, err = unix.Open(path, unix.O_RDWR, 0)
			check("open", err)
		case 14: // remount, now and then
			if rng.IntN(20) != 0 {
				changed = false
				continue
			}
			log = append(log, "remount")
			check("close", unix.Close(fd))
			m.remount()
			fd, err = unix.Open(path, unix.O_RDWR, 0)
			check("open", err)
		case 15: // lseek SEEK_DATA / SEEK_HOLE: a hole must read as zeros
			changed = false
			if len(model.data) == 0 {
				continue
			}
			off := rng.IntN(len(model.data))
			log = append(log, fmt.Sprintf("seek hole/data from %d", off))
			h, err := unix.Seek(fd, int64(off), unix.SEEK_HOLE)
			check("SEEK_HOLE", err)
			if h < int64(off) || h > int64(len(model.data)) {
				fail("SEEK_HOLE from %d gave %d (size %d)", off, h, len(model.data))
			}
			if h < int64(len(model.data)) && model.data[h] != 0 {
				fail("SEEK_HOLE from %d gave %d, where the byte is %d", off, h, model.data[h])
			}
			d, err := unix.Seek(fd, int64(off), unix.SEEK_DATA)
			if err == unix.ENXIO {
				d = int64(len(model.data))
			} else {
				check("SEEK_DATA", err)
			}
			if d < int64(off) || d > int64(len(model.data)) {
				fail("SEEK_DATA from %d gave %d (size %d)", off, d, len(model.data))
			}
			// What SEEK_DATA skipped is a hole: zeros.
			if z := model.data[off:d]; !bytes.Equal(z, make([]byte, len(z))) {
				fail("SEEK_DATA from %d skipped to %d over bytes that are not zero", off, d)
			}
		}
		if changed {
			verifyAll()
		}
	}
	verifyAll()
	check("close", unix.Close(fd))
	fd = -1
	m.remount()
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	if !bytes.Equal(model.data, got) {
		fail("after the last remount the file differs from the model")
	}
}
