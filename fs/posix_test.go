package fs

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestCreateOpenReadWrite(t *testing.T) {
	m := mountTest(t, DefaultOptions())

	t.Run("roundtrip", func(t *testing.T) {
		for _, n := range []int{0, 1, 4095, 4096, 4097, 100000, 1 << 20, 3<<20 + 17} {
			p := m.path(fmt.Sprintf("rt%d", n))
			data := pattern(byte(n), n)
			writeFile(t, p, data)
			requireContent(t, data, p)
			require.EqualValues(t, n, lstat(t, p).Size)
		}
	})

	t.Run("overwrite middle", func(t *testing.T) {
		p := m.path("mid")
		data := pattern(1, 200000)
		writeFile(t, p, data)
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		require.NoError(t, err)
		patch := pattern(9, 70001)
		_, err = f.WriteAt(patch, 12345)
		require.NoError(t, err)
		require.NoError(t, f.Close())
		copy(data[12345:], patch)
		requireContent(t, data, p)
	})

	t.Run("O_TRUNC", func(t *testing.T) {
		p := m.path("trunc")
		writeFile(t, p, []byte("hello, world"))
		before := lstat(t, p)
		tick()
		fd, err := unix.Open(p, unix.O_WRONLY|unix.O_TRUNC, 0)
		require.NoError(t, err)
		require.EqualValues(t, 0, fstat(t, fd).Size)
		_, err = unix.Write(fd, []byte("xy"))
		require.NoError(t, err)
		require.NoError(t, unix.Close(fd))
		requireContent(t, []byte("xy"), p)
		after := lstat(t, p)
		require.Greater(t, tsNano(after.Mtim), tsNano(before.Mtim))
		require.Greater(t, tsNano(after.Ctim), tsNano(before.Ctim))

		// O_TRUNC of an empty file still marks it modified.
		fd, err = unix.Open(p, unix.O_WRONLY|unix.O_TRUNC, 0)
		require.NoError(t, err)
		require.NoError(t, unix.Close(fd))
		empty := lstat(t, p)
		tick()
		fd, err = unix.Open(p, unix.O_WRONLY|unix.O_TRUNC, 0)
		require.NoError(t, err)
		require.NoError(t, unix.Close(fd))
		require.Greater(t, tsNano(lstat(t, p).Mtim), tsNano(empty.Mtim))
	})

	t.Run("O_APPEND", func(t *testing.T) {
		p := m.path("append")
		writeFile(t, p, []byte("abc"))
		fd, err := unix.Open(p, unix.O_WRONLY|unix.O_APPEND, 0)
		require.NoError(t, err)
		_, err = unix.Write(fd, []byte("def"))
		require.NoError(t, err)
		_, err = unix.Seek(fd, 0, 0)
		require.NoError(t, err)
		_, err = unix.Write(fd, []byte("ghi"))
		require.NoError(t, err)
		// pwrite on an O_APPEND file appends on Linux.
		_, err = unix.Pwrite(fd, []byte("jk"), 1)
		require.NoError(t, err)
		require.NoError(t, unix.Close(fd))
		requireContent(t, []byte("abcdefghijk"), p)
	})

	t.Run("O_EXCL", func(t *testing.T) {
		p := m.path("excl")
		fd, err := unix.Open(p, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o600)
		require.NoError(t, err)
		require.NoError(t, unix.Close(fd))
		_, err = unix.Open(p, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o600)
		requireErrno(t, syscall.EEXIST, err)
		st := lstat(t, p)
		require.EqualValues(t, syscall.S_IFREG|0o600, st.Mode)
		require.EqualValues(t, 1, st.Nlink)
		require.EqualValues(t, 0, st.Uid)
		require.EqualValues(t, 0, st.Gid)
	})

	t.Run("errors", func(t *testing.T) {
		require.NoError(t, os.Mkdir(m.path("adir"), 0o755))
		_, err := unix.Open(m.path("missing/file"), unix.O_CREAT|unix.O_WRONLY, 0o644)
		requireErrno(t, syscall.ENOENT, err)
		_, err = unix.Open(m.path("missing"), unix.O_RDONLY, 0)
		requireErrno(t, syscall.ENOENT, err)
		for _, fl := range []int{unix.O_WRONLY, unix.O_RDWR} {
			_, err = unix.Open(m.path("adir"), fl, 0)
			requireErrno(t, syscall.EISDIR, err)
		}
		writeFile(t, m.path("plain"), nil)
		_, err = unix.Open(m.path("plain/x"), unix.O_CREAT|unix.O_WRONLY, 0o644)
		requireErrno(t, syscall.ENOTDIR, err)
		_, err = unix.Open(m.path("plain"), unix.O_RDONLY|unix.O_DIRECTORY, 0)
		requireErrno(t, syscall.ENOTDIR, err)
	})

	t.Run("name length", func(t *testing.T) {
		require.NoError(t, os.Mkdir(m.path("names"), 0o755))
		writeFile(t, m.path("names/target"), []byte("t"))
		long := strings.Repeat("n", 255)
		tooLong := strings.Repeat("n", 256)
		ops := []struct {
			name string
			op   func(name string) error
		}{
			{"create", func(n string) error {
				fd, err := unix.Open(m.path("names/"+n), unix.O_CREAT|unix.O_WRONLY, 0o644)
				if err == nil {
					unix.Close(fd)
				}
				return err
			}},
			{"mkdir", func(n string) error { return unix.Mkdir(m.path("names/d"+n[1:]), 0o755) }},
			{"symlink", func(n string) error { return unix.Symlink("target", m.path("names/s"+n[1:])) }},
			{"link", func(n string) error { return unix.Link(m.path("names/target"), m.path("names/l"+n[1:])) }},
			{"mknod", func(n string) error { return unix.Mkfifo(m.path("names/f"+n[1:]), 0o644) }},
		}
		for _, op := range ops {
			require.NoError(t, op.op(long), op.name)
			requireErrno(t, syscall.ENAMETOOLONG, op.op(tooLong), op.name)
		}
		var st unix.Stat_t
		requireErrno(t, syscall.ENAMETOOLONG, unix.Lstat(m.path("names/"+tooLong), &st))
		require.NoError(t, unix.Lstat(m.path("names/"+long), &st))
		requireErrno(t, syscall.ENAMETOOLONG, unix.Rename(m.path("names/"+long), m.path("names/"+tooLong)))
		require.NoError(t, unix.Rename(m.path("names/"+long), m.path("names/r"+long[1:])))
		got := names(t, m.path("names"))
		require.Equal(t, []string{".", "..", "d" + long[1:], "f" + long[1:], "l" + long[1:], "r" + long[1:], "s" + long[1:], "target"}, got)
		st = lstat(t, m.path("names/f"+long[1:]))
		require.EqualValues(t, syscall.S_IFIFO, st.Mode&syscall.S_IFMT)
		require.EqualValues(t, 2, lstat(t, m.path("names/target")).Nlink)
	})
}

// TestAppendAtomic: concurrent O_APPEND writers never overwrite or
// interleave each other's records.
func TestAppendAtomic(t *testing.T) {
	t.Parallel() // long: overlaps the other long tests
	m := mountTest(t, DefaultOptions())
	p := m.path("log")
	writeFile(t, p, nil)
	const writers, records, size = 8, 100, 1000
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				errs <- err
				return
			}
			defer f.Close()
			for r := 0; r < records; r++ {
				rec := bytes.Repeat([]byte{byte('a' + w)}, size)
				copy(rec, fmt.Sprintf("%d:%03d|", w, r))
				rec[size-1] = '\n'
				if n, err := f.Write(rec); err != nil || n != size {
					errs <- fmt.Errorf("writer %d record %d: %d, %v", w, r, n, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	b := readFile(t, p)
	require.Len(t, b, writers*records*size)
	seen := map[string]bool{}
	next := make([]int, writers)
	for off := 0; off < len(b); off += size {
		rec := b[off : off+size]
		var w, r int
		_, err := fmt.Sscanf(string(rec[:6]), "%d:%03d|", &w, &r)
		require.NoError(t, err, "record at %d: %q", off, rec[:8])
		want := bytes.Repeat([]byte{byte('a' + w)}, size)
		copy(want, fmt.Sprintf("%d:%03d|", w, r))
		want[size-1] = '\n'
		require.Equal(t, string(want), string(rec), "record at %d", off)
		key := string(rec[:6])
		require.False(t, seen[key], "record %s twice", key)
		seen[key] = true
		require.Equal(t, next[w], r, "writer %d out of order", w)
		next[w]++
	}
}

func TestSparseFiles(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	p := m.path("sparse")
	const far = 5<<30 + 12345
	data := pattern(3, 10000)
	f, err := os.Create(p)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("head"), 0)
	require.NoError(t, err)
	_, err = f.WriteAt(data, far)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.EqualValues(t, far+len(data), lstat(t, p).Size)

	f, err = os.Open(p)
	require.NoError(t, err)
	defer f.Close()
	check := func(off int64, want []byte) {
		t.Helper()
		got := make([]byte, len(want))
		n, err := f.ReadAt(got, off)
		require.NoError(t, err)
		require.Equal(t, len(want), n)
		requireBytes(t, want, got, fmt.Sprintf("at %d", off))
	}
	check(0, append([]byte("head"), make([]byte, 100000)...))
	check(1<<32-5000, make([]byte, 10000)) // across 4 GiB
	check(far-3000, append(make([]byte, 3000), data...))
	// Reads at and past the end return nothing.
	n, err := f.ReadAt(make([]byte, 10), far+int64(len(data)))
	require.Equal(t, 0, n)
	require.ErrorIs(t, err, io.EOF)

	// A small sparse file: holes read as zeros, exactly.
	q := m.path("small")
	g, err := os.Create(q)
	require.NoError(t, err)
	_, err = g.WriteAt([]byte{0xff}, 1<<20+3)
	require.NoError(t, err)
	require.NoError(t, g.Close())
	want := make([]byte, 1<<20+4)
	want[1<<20+3] = 0xff
	requireContent(t, want, q)
}

func TestTruncate(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	cases := []struct {
		name      string
		size      int
		cut, grow int64
		ftruncate bool
	}{
		{"small down and up", 10000, 5000, 20000, false},
		{"small to zero", 10000, 0, 4096, true},
		{"block aligned", 1 << 20, 65536, 1 << 20, false},
		{"large mid-block", 3<<20 + 100, 300001, 3 << 20, true},
		{"grow only", 100, 100, 1<<20 + 1, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := m.path(strings.ReplaceAll(c.name, " ", "_"))
			data := pattern(byte(c.size), c.size)
			writeFile(t, p, data)
			trunc := func(size int64) {
				t.Helper()
				before := lstat(t, p)
				tick()
				if c.ftruncate {
					f, err := os.OpenFile(p, os.O_WRONLY, 0)
					require.NoError(t, err)
					require.NoError(t, f.Truncate(size))
					st := fstat(t, int(f.Fd()))
					require.EqualValues(t, size, st.Size)
					require.NoError(t, f.Close())
				} else {
					require.NoError(t, os.Truncate(p, size))
				}
				after := lstat(t, p)
				require.EqualValues(t, size, after.Size)
				// A truncate to the size the file has need not change
				// its times (POSIX; the kernel's writeback cache, which
				// keeps the times, leaves them, as ext4 does).
				if size != before.Size || !m.opts.WritebackCache {
					require.Greater(t, tsNano(after.Mtim), tsNano(before.Mtim), "mtime on truncate")
					require.Greater(t, tsNano(after.Ctim), tsNano(before.Ctim), "ctime on truncate")
				}
			}
			trunc(c.cut)
			requireContent(t, data[:c.cut], p)
			trunc(c.grow)
			want := make([]byte, c.grow)
			copy(want, data[:c.cut])
			requireContent(t, want, p)
		})
	}
	t.Run("errors", func(t *testing.T) {
		require.NoError(t, os.Mkdir(m.path("d"), 0o755))
		requireErrno(t, syscall.EISDIR, unix.Truncate(m.path("d"), 0))
		writeFile(t, m.path("f"), []byte("x"))
		requireErrno(t, syscall.EINVAL, unix.Truncate(m.path("f"), -1))
		fd, err := unix.Open(m.path("f"), unix.O_RDONLY, 0)
		require.NoError(t, err)
		requireErrno(t, syscall.EINVAL, unix.Ftruncate(fd, 0)) // not open for writing
		require.NoError(t, unix.Close(fd))
	})
}

func TestMkdirRmdir(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	rootLinks := lstat(t, m.mnt).Nlink
	require.NoError(t, os.Mkdir(m.path("a"), 0o750))
	st := lstat(t, m.path("a"))
	require.EqualValues(t, syscall.S_IFDIR|0o750, st.Mode)
	require.EqualValues(t, 2, st.Nlink)
	require.EqualValues(t, 0, st.Size&0) // size of a directory is not specified
	require.Equal(t, rootLinks+1, lstat(t, m.mnt).Nlink)

	requireErrno(t, syscall.EEXIST, unix.Mkdir(m.path("a"), 0o755))
	for i := 0; i < 3; i++ {
		require.NoError(t, os.Mkdir(m.path(fmt.Sprintf("a/sub%d", i)), 0o755))
	}
	writeFile(t, m.path("a/file"), []byte("x"))
	require.EqualValues(t, 5, lstat(t, m.path("a")).Nlink) // 2 + 3 subdirectories, files don't count

	requireErrno(t, syscall.ENOTEMPTY, unix.Rmdir(m.path("a")))
	requireErrno(t, syscall.ENOTDIR, unix.Rmdir(m.path("a/file")))
	requireErrno(t, syscall.EISDIR, unix.Unlink(m.path("a/sub0")))
	requireErrno(t, syscall.ENOTDIR, unix.Mkdir(m.path("a/file/x"), 0o755))
	requireErrno(t, syscall.ENOENT, unix.Rmdir(m.path("a/missing")))
	requireErrno(t, syscall.ENOENT, unix.Mkdir(m.path("missing/x"), 0o755))
	requireErrno(t, syscall.EINVAL, unix.Rmdir(m.mnt+"/a/sub0/."))
	requireErrno(t, syscall.ENOTEMPTY, unix.Rmdir(m.mnt+"/a/sub0/.."))

	before := lstat(t, m.path("a"))
	tick()
	require.NoError(t, unix.Rmdir(m.path("a/sub1")))
	after := lstat(t, m.path("a"))
	require.EqualValues(t, 4, after.Nlink)
	require.Greater(t, tsNano(after.Mtim), tsNano(before.Mtim))
	require.Greater(t, tsNano(after.Ctim), tsNano(before.Ctim))
	requireErrno(t, syscall.ENOENT, unix.Access(m.path("a/sub1"), unix.F_OK))

	// A directory whose subdirectory holds files.
	require.NoError(t, os.MkdirAll(m.path("a/sub0/x/y/z"), 0o755))
	requireErrno(t, syscall.ENOTEMPTY, unix.Rmdir(m.path("a/sub0")))
	require.NoError(t, os.RemoveAll(m.path("a")))
	require.Equal(t, rootLinks, lstat(t, m.mnt).Nlink)
	require.Equal(t, []string{".", "..", SnapshotDir}, names(t, m.mnt))
}

func TestReaddir(t *testing.T) {
	t.Parallel() // long: overlaps the other long tests
	m := mountTest(t, DefaultOptions())
	dir := m.path("big")
	require.NoError(t, os.Mkdir(dir, 0o755))
	want := map[string]bool{".": true, "..": true}
	for i := 0; i < 1000; i++ {
		name := fmt.Sprintf("entry-%04d", i)
		if i%10 == 0 {
			require.NoError(t, os.Mkdir(filepath.Join(dir, name), 0o755))
		} else {
			writeFile(t, filepath.Join(dir, name), nil)
		}
		want[name] = true
	}
	sorted := func(set map[string]bool) []string {
		var out []string
		for n := range set {
			out = append(out, n)
		}
		return sortStrings(out)
	}
	require.Equal(t, sorted(want), names(t, dir))
	require.EqualValues(t, 2+100, lstat(t, dir).Nlink)

	// d_type and d_ino match lstat.
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, ents, 1000)
	for _, e := range ents[:20] {
		st := lstat(t, filepath.Join(dir, e.Name()))
		require.Equal(t, st.Mode&syscall.S_IFMT == syscall.S_IFDIR, e.IsDir(), e.Name())
	}

	// An open directory stream, rewound after deletes, sees the deletes.
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	require.NoError(t, err)
	defer unix.Close(fd)
	require.Equal(t, sorted(want), readNames(t, fd))
	for i := 0; i < 1000; i += 2 {
		name := fmt.Sprintf("entry-%04d", i)
		require.NoError(t, os.Remove(filepath.Join(dir, name)))
		delete(want, name)
	}
	_, err = unix.Seek(fd, 0, 0)
	require.NoError(t, err)
	require.Equal(t, sorted(want), readNames(t, fd))
	require.Equal(t, sorted(want), names(t, dir))
	require.EqualValues(t, 2, lstat(t, dir).Nlink) // every subdirectory had an even number

	// seekdir to an offset getdents reported continues after that entry.
	all := direntOffsets(t, fd, 0)
	require.Len(t, all, len(want))
	for _, i := range []int{0, 1, 10, 250, len(all) - 2, len(all) - 1} {
		rest := direntOffsets(t, fd, all[i].off)
		require.Equal(t, len(all)-i-1, len(rest), "after entry %d", i)
		if len(rest) > 0 {
			require.Equal(t, all[i+1].name, rest[0].name, "after entry %d", i)
		}
	}

	// Entries whose inode numbers come from readdir match stat's.
	var d unix.Stat_t
	require.NoError(t, unix.Lstat(filepath.Join(dir, "entry-0001"), &d))
	inos := direntInos(t, dir)
	require.Equal(t, d.Ino, inos["entry-0001"])
	require.Equal(t, lstat(t, dir).Ino, inos["."])
	require.Equal(t, lstat(t, m.mnt).Ino, inos[".."])
}

func sortStrings(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

type dirent struct {
	name string
	off  int64
}

// direntOffsets seeks the directory stream to off and reads the rest with
// small getdents calls.
func direntOffsets(t testing.TB, fd int, off int64) []dirent {
	t.Helper()
	_, err := unix.Seek(fd, off, 0)
	require.NoError(t, err)
	var out []dirent
	buf := make([]byte, 512)
	for {
		n, err := unix.Getdents(fd, buf)
		require.NoError(t, err)
		if n == 0 {
			return out
		}
		for o := 0; o < n; {
			d := (*unix.Dirent)(unsafe.Pointer(&buf[o]))
			name := buf[o+19 : o+int(d.Reclen)]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			out = append(out, dirent{string(name), d.Off})
			o += int(d.Reclen)
		}
	}
}

// direntInos maps the names of a directory to the inode numbers getdents
// reports.
func direntInos(t testing.TB, dir string) map[string]uint64 {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	require.NoError(t, err)
	defer unix.Close(fd)
	out := map[string]uint64{}
	buf := make([]byte, 8192)
	for {
		n, err := unix.Getdents(fd, buf)
		require.NoError(t, err)
		if n == 0 {
			return out
		}
		for off := 0; off < n; {
			d := (*unix.Dirent)(unsafe.Pointer(&buf[off]))
			name := buf[off+19 : off+int(d.Reclen)]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			out[string(name)] = d.Ino
			off += int(d.Reclen)
		}
	}
}

func TestHardLinks(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	require.NoError(t, os.Mkdir(m.path("d1"), 0o755))
	require.NoError(t, os.Mkdir(m.path("d2"), 0o755))
	a, b := m.path("d1/a"), m.path("d2/b")
	writeFile(t, a, []byte("shared data"))
	before := lstat(t, a)
	tick()
	require.NoError(t, os.Link(a, b))
	sa, sb := lstat(t, a), lstat(t, b)
	require.EqualValues(t, 2, sa.Nlink)
	require.Equal(t, sa, sb)
	require.Greater(t, tsNano(sa.Ctim), tsNano(before.Ctim), "ctime on link")
	require.Equal(t, tsNano(before.Mtim), tsNano(sa.Mtim), "mtime unchanged by link")
	require.EqualValues(t, 2, lstat(t, m.path("d1")).Nlink, "files don't add to a directory's links")

	requireErrno(t, syscall.EEXIST, unix.Link(a, b))
	requireErrno(t, syscall.EPERM, unix.Link(m.path("d1"), m.path("d2/dirlink")))
	requireErrno(t, syscall.ENOENT, unix.Link(m.path("d1/missing"), m.path("d2/x")))

	// Writes through one name show through the other.
	f, err := os.OpenFile(b, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.WriteString(", more")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	requireContent(t, []byte("shared data, more"), a)

	require.NoError(t, os.Link(b, m.path("d2/c")))
	require.EqualValues(t, 3, lstat(t, a).Nlink)
	require.NoError(t, os.Remove(a))
	require.EqualValues(t, 2, lstat(t, b).Nlink)
	requireContent(t, []byte("shared data, more"), b)
	require.NoError(t, os.Remove(b))
	st := lstat(t, m.path("d2/c"))
	require.EqualValues(t, 1, st.Nlink)
	require.EqualValues(t, len("shared data, more"), st.Size)
	requireContent(t, []byte("shared data, more"), m.path("d2/c"))
}

func TestUnlinkedOpenFile(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	p := m.path("victim")
	data := pattern(5, 8<<20)
	writeFile(t, p, data)
	oid := lstat(t, p).Ino

	f, err := os.OpenFile(p, os.O_RDWR, 0)
	require.NoError(t, err)
	before := fstat(t, int(f.Fd()))
	tick()
	require.NoError(t, os.Remove(p))
	requireErrno(t, syscall.ENOENT, unix.Access(p, unix.F_OK))
	require.Equal(t, []uint64{oid}, m.orphans())

	st := fstat(t, int(f.Fd()))
	require.EqualValues(t, 0, st.Nlink)
	require.Greater(t, tsNano(st.Ctim), tsNano(before.Ctim), "ctime on the last unlink")
	// No new name for it.
	requireErrno(t, syscall.ENOENT, unix.Linkat(int(f.Fd()), "", unix.AT_FDCWD, m.path("revived"), unix.AT_EMPTY_PATH))
	require.EqualValues(t, len(data), st.Size)
	got := make([]byte, len(data))
	_, err = f.ReadAt(got, 0)
	require.NoError(t, err)
	requireBytes(t, data, got, "unlinked file")
	_, err = f.WriteAt([]byte("still here"), 100)
	require.NoError(t, err)
	copy(data[100:], "still here")
	require.NoError(t, f.Truncate(1<<20))
	st = fstat(t, int(f.Fd()))
	require.EqualValues(t, 1<<20, st.Size)
	got = make([]byte, 1<<20)
	_, err = f.ReadAt(got, 0)
	require.NoError(t, err)
	requireBytes(t, data[:1<<20], got, "after truncate")
	require.NoError(t, f.Sync())

	// A new file of the same name is a different file.
	writeFile(t, p, []byte("new"))
	require.NotEqual(t, oid, lstat(t, p).Ino)
	require.NoError(t, os.Remove(p))

	m.aggregate()
	freeOpen := statfs(t, m.mnt).Bfree
	require.NoError(t, f.Close())
	// Release is asynchronous: wait for the orphan to go.
	eventually(t, func() bool { return len(m.orphans()) == 0 && !m.objectExists(oid) }, "orphan reaped")
	m.aggregate()
	require.GreaterOrEqual(t, statfs(t, m.mnt).Bfree, freeOpen+(1<<20)/4096, "space of the orphan freed")
}

func TestSymlinks(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	writeFile(t, m.path("file"), []byte("contents"))
	cases := []struct {
		name, target string
	}{
		{"rel", "file"},
		{"dotdot", "../x/./y/../file"},
		{"abs", "/nonexistent/absolute/path"},
		{"spaces", "a b\tc\nd"},
		{"max", strings.Repeat("t", 4095)},
		{"long path", strings.Repeat("abcdefg/", 500)},
	}
	for _, c := range cases {
		p := m.path("l-" + strings.ReplaceAll(c.name, " ", "_"))
		require.NoError(t, os.Symlink(c.target, p), c.name)
		got, err := os.Readlink(p)
		require.NoError(t, err)
		require.Equal(t, c.target, got, c.name)
		st := lstat(t, p)
		require.EqualValues(t, syscall.S_IFLNK|0o777, st.Mode, c.name)
		require.EqualValues(t, len(c.target), st.Size, c.name)
		require.EqualValues(t, 1, st.Nlink, c.name)
	}
	requireErrno(t, syscall.ENAMETOOLONG, unix.Symlink(strings.Repeat("t", 4096), m.path("toolong")))
	requireErrno(t, syscall.EEXIST, unix.Symlink("x", m.path("file")))
	requireContent(t, []byte("contents"), m.path("l-rel"))
	buf := make([]byte, 10)
	_, err := unix.Readlink(m.path("file"), buf)
	requireErrno(t, syscall.EINVAL, err)
	// A hard link to a symlink is a link to the symlink.
	require.NoError(t, unix.Linkat(unix.AT_FDCWD, m.path("l-rel"), unix.AT_FDCWD, m.path("hard"), 0))
	require.EqualValues(t, 2, lstat(t, m.path("l-rel")).Nlink)
	got, err := os.Readlink(m.path("hard"))
	require.NoError(t, err)
	require.Equal(t, "file", got)
}

// TestCloseThenUnlink: the release of a closed file reaches the filesystem
// asynchronously, racing with an unlink right after the close; no orphan
// may stay behind either way.
func TestCloseThenUnlink(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	require.NoError(t, parallel(4, func(g int) error {
		for i := 0; i < 50; i++ {
			p := m.path(fmt.Sprintf("f%d-%d", g, i))
			fd, err := unix.Open(p, unix.O_RDWR|unix.O_CREAT, 0o644)
			if err != nil {
				return err
			}
			if _, err := unix.Write(fd, []byte("x")); err != nil {
				return err
			}
			if err := unix.Close(fd); err != nil {
				return err
			}
			if err := unix.Unlink(p); err != nil {
				return err
			}
		}
		return nil
	}))
	eventually(t, func() bool { return len(m.orphans()) == 0 }, "no orphans left")
}

func TestFileSizeLimit(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	p := m.path("f")
	writeFile(t, p, []byte("x"))
	fd, err := unix.Open(p, unix.O_RDWR, 0)
	require.NoError(t, err)
	defer unix.Close(fd)
	_, err = unix.Pwrite(fd, []byte("abc"), MaxFileSize)
	requireErrno(t, syscall.EFBIG, err)
	_, err = unix.Pwrite(fd, []byte("abc"), MaxFileSize-3)
	require.NoError(t, err)
	require.EqualValues(t, MaxFileSize, fstat(t, fd).Size)
	// Across the limit: a short write up to it (when the kernel splits
	// the write there), or EFBIG.
	want := "abc"
	n, err := unix.Pwrite(fd, []byte("XYZ"), MaxFileSize-1)
	if err != nil {
		requireErrno(t, syscall.EFBIG, err)
	} else {
		require.Equal(t, 1, n)
		want = "abX"
	}
	buf := make([]byte, 3)
	_, err = unix.Pread(fd, buf, MaxFileSize-3)
	require.NoError(t, err)
	require.Equal(t, want, string(buf))
	require.EqualValues(t, MaxFileSize, fstat(t, fd).Size)
	requireErrno(t, syscall.EFBIG, unix.Ftruncate(fd, MaxFileSize+1))
	requireErrno(t, syscall.EFBIG, unix.Fallocate(fd, 0, MaxFileSize-10, 20))
	require.NoError(t, unix.Ftruncate(fd, 1))
	requireContent(t, []byte("x"), p)
}

// TestRemovedWhileOpen: a descriptor of a removed directory (or of a file
// the kernel serves itself, like a FIFO) still answers fstat, with no
// links.
func TestRemovedWhileOpen(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	require.NoError(t, os.Mkdir(m.path("d"), 0o750))
	fd, err := unix.Open(m.path("d"), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	require.NoError(t, err)
	defer unix.Close(fd)
	before := fstat(t, fd)
	require.NoError(t, unix.Rmdir(m.path("d")))
	st := fstat(t, fd)
	require.EqualValues(t, 0, st.Nlink)
	require.Equal(t, before.Ino, st.Ino)
	require.EqualValues(t, syscall.S_IFDIR|0o750, st.Mode)
	// Listing it finds nothing (the kernel refuses), creating in it fails.
	_, err = unix.Getdents(fd, make([]byte, 4096))
	requireErrno(t, syscall.ENOENT, err)
	_, err = unix.Openat(fd, "x", unix.O_CREAT|unix.O_WRONLY, 0o644)
	requireErrno(t, syscall.ENOENT, err)
	require.NoError(t, unix.Fsync(fd))

	// A FIFO is opened by the kernel alone: no handle keeps its inode.
	require.NoError(t, unix.Mkfifo(m.path("p"), 0o640))
	pfd, err := unix.Open(m.path("p"), unix.O_RDWR, 0)
	require.NoError(t, err)
	defer unix.Close(pfd)
	require.NoError(t, unix.Unlink(m.path("p")))
	st = fstat(t, pfd)
	require.EqualValues(t, 0, st.Nlink)
	require.EqualValues(t, syscall.S_IFIFO|0o640, st.Mode)
	_, err = unix.Write(pfd, []byte("through the pipe"))
	require.NoError(t, err)
	buf := make([]byte, 100)
	n, err := unix.Read(pfd, buf)
	require.NoError(t, err)
	require.Equal(t, "through the pipe", string(buf[:n]))
}
