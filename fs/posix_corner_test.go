package fs

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestRewinddir: a read at offset 0 of an open directory (after the open,
// after a rewinddir) lists the names created and removed since the open,
// also when they change while the stream is being read (POSIX rewinddir;
// Linux's filesystems do the same).
func TestRewinddir(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	dir := m.path("d")
	require.NoError(t, os.Mkdir(dir, 0o755))
	want := map[string]bool{".": true, "..": true}
	for i := 0; i < 50; i++ {
		name := fmt.Sprintf("old-%02d", i)
		writeFile(t, filepath.Join(dir, name), nil)
		want[name] = true
	}
	set := func() []string {
		var out []string
		for n := range want {
			out = append(out, n)
		}
		sort.Strings(out)
		return out
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	require.NoError(t, err)
	defer unix.Close(fd)

	// Changes between the open and the first read are seen by it, and
	// by a read after a rewind that comes before any read.
	writeFile(t, filepath.Join(dir, "after-open"), nil)
	want["after-open"] = true
	require.NoError(t, os.Remove(filepath.Join(dir, "old-00")))
	delete(want, "old-00")
	_, err = unix.Seek(fd, 0, 0)
	require.NoError(t, err)
	require.Equal(t, set(), readNames(t, fd))

	// Concurrent creates and removes while the stream is read in small
	// pieces; once they are done, a rewind sees exactly their result.
	for round := 0; round < 3; round++ {
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("new-%d-%02d", round, i)), nil, 0o644); err != nil {
					errs <- err
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for i := 1 + round*15; i < 1+(round+1)*15; i++ {
				if err := os.Remove(filepath.Join(dir, fmt.Sprintf("old-%02d", i))); err != nil {
					errs <- err
					return
				}
			}
		}()
		_, err = unix.Seek(fd, 0, 0)
		require.NoError(t, err)
		_ = direntOffsets(t, fd, 0) // a listing racing with them: any mix is allowed
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		for i := 0; i < 40; i++ {
			want[fmt.Sprintf("new-%d-%02d", round, i)] = true
		}
		for i := 1 + round*15; i < 1+(round+1)*15; i++ {
			delete(want, fmt.Sprintf("old-%02d", i))
		}
		_, err = unix.Seek(fd, 0, 0)
		require.NoError(t, err)
		require.Equal(t, set(), readNames(t, fd), "round %d", round)
	}
	require.Len(t, want, 2+50-46+1+120)

	// A removed directory's open stream reads as Linux's do: ENOENT.
	require.NoError(t, os.Mkdir(m.path("gone"), 0o755))
	gfd, err := unix.Open(m.path("gone"), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	require.NoError(t, err)
	defer unix.Close(gfd)
	require.NoError(t, os.Remove(m.path("gone")))
	_, err = unix.Getdents(gfd, make([]byte, 4096))
	requireErrno(t, unix.ENOENT, err)
}

// TestMmapODirect: a file opened with O_DIRECT can be mapped (the kernel's
// FUSE_DIRECT_IO_ALLOW_MMAP), and the mapping, direct reads and writes and
// the page cache agree byte for byte.
func TestMmapODirect(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	p := m.path("f")
	const n = 64 << 10
	writeFile(t, p, pattern(3, n))
	fd, err := unix.Open(p, unix.O_RDWR|unix.O_DIRECT, 0)
	require.NoError(t, err)
	defer unix.Close(fd)
	mem, err := unix.Mmap(fd, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	require.NoError(t, err)
	defer unix.Munmap(mem)
	want := pattern(3, n)
	requireBytes(t, want, mem, "mapping of an O_DIRECT file")

	copy(mem[4096:], "through the mapping")
	copy(want[4096:], "through the mapping")
	require.NoError(t, unix.Msync(mem, unix.MS_SYNC))
	r := alignedBuf(t, n)
	got, err := unix.Pread(fd, r, 0)
	require.NoError(t, err)
	require.Equal(t, n, got)
	requireBytes(t, want, r, "direct read after the mapping's write-back")

	w := alignedBuf(t, 4096)
	copy(w, pattern(9, 4096))
	_, err = unix.Pwrite(fd, w, 8192)
	require.NoError(t, err)
	copy(want[8192:], w)
	requireBytes(t, want, mem, "mapping after a direct write")
	requireContent(t, want, p)

	// A private mapping too.
	priv, err := unix.Mmap(fd, 0, n, unix.PROT_READ, unix.MAP_PRIVATE)
	require.NoError(t, err)
	requireBytes(t, want, priv, "private mapping")
	require.NoError(t, unix.Munmap(priv))
}

// TestSeekDirtyPages: SEEK_DATA and SEEK_HOLE see data written through a
// mapping (and, with the writeback cache, by write) that the kernel has
// not written back yet, at the offsets ext4 gives.
func TestSeekDirtyPages(t *testing.T) {
	for _, wb := range []bool{false, true} {
		t.Run(fmt.Sprintf("writeback_cache=%v", wb), func(t *testing.T) {
			opts := DefaultOptions()
			opts.WritebackCache = wb
			m := mountTest(t, opts)
			p := m.path("f")
			fd, err := unix.Open(p, unix.O_RDWR|unix.O_CREAT, 0o644)
			require.NoError(t, err)
			defer unix.Close(fd)
			const size = 1 << 20
			require.NoError(t, unix.Ftruncate(fd, size))
			_, err = unix.Pwrite(fd, pattern(1, 4096), 0)
			require.NoError(t, err)
			seek := func(off int64, whence int) (int64, error) { return unix.Seek(fd, off, whence) }

			mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
			require.NoError(t, err)
			defer unix.Munmap(mem)
			copy(mem[512<<10:], pattern(2, 100)) // dirty page, no msync
			got, err := seek(4096, unix.SEEK_DATA)
			require.NoError(t, err)
			require.EqualValues(t, 512<<10, got, "SEEK_DATA finds the mapped write")
			got, err = seek(512<<10, unix.SEEK_HOLE)
			require.NoError(t, err)
			require.EqualValues(t, 512<<10+4096, got, "SEEK_HOLE after the written page")
			_, err = seek(512<<10+4096, unix.SEEK_DATA)
			requireErrno(t, unix.ENXIO, err, "no data after it")

			// The mapping still works, and its bytes are the file's.
			copy(mem[900<<10:], pattern(3, 10))
			got, err = seek(600<<10, unix.SEEK_DATA)
			require.NoError(t, err)
			require.EqualValues(t, 900<<10, got)
			want := make([]byte, size)
			copy(want, pattern(1, 4096))
			copy(want[512<<10:], pattern(2, 100))
			copy(want[900<<10:], pattern(3, 10))
			requireBytes(t, want, mem, "mapping")
			requireContent(t, want, p)

			if wb {
				// A cached write past the daemon's end of file.
				_, err = unix.Pwrite(fd, pattern(4, 50), size+8192)
				require.NoError(t, err)
				got, err = seek(size, unix.SEEK_DATA)
				require.NoError(t, err)
				require.EqualValues(t, size+8192, got)
				got, err = seek(size+8192, unix.SEEK_HOLE)
				require.NoError(t, err)
				require.EqualValues(t, size+8192+50, got)
			}
		})
	}
}

// TestOpenByHandle: a handle (name_to_handle_at) opens its file by
// open_by_handle_at while the inode exists under any name, after the
// kernel forgot it and after an unmount and mount of the pool; a removed
// inode's handle, or one with another generation, gives ESTALE (as on
// ext4). Directories' handles reconnect to the tree.
func TestOpenByHandle(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	writeFile(t, m.path("a"), []byte("the file's bytes"))
	require.NoError(t, os.Link(m.path("a"), m.path("b")))
	require.NoError(t, os.MkdirAll(m.path("d/e"), 0o755))
	writeFile(t, m.path("d/e/f"), []byte("deep"))
	writeFile(t, m.path("gone"), []byte("x"))
	handle := func(p string) unix.FileHandle {
		t.Helper()
		h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, p, 0)
		require.NoError(t, err, p)
		return h
	}
	ha, he, hg := handle(m.path("a")), handle(m.path("d/e")), handle(m.path("gone"))
	inoA := lstat(t, m.path("a")).Ino
	open := func(h unix.FileHandle, flags int) (int, error) {
		mfd, err := unix.Open(m.mnt, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		require.NoError(t, err)
		defer unix.Close(mfd)
		return unix.OpenByHandleAt(mfd, h, flags)
	}
	readAll := func(fd int) string {
		t.Helper()
		defer unix.Close(fd)
		buf := make([]byte, 100)
		n, err := unix.Pread(fd, buf, 0)
		require.NoError(t, err)
		return string(buf[:n])
	}
	check := func(when string) {
		t.Helper()
		fd, err := open(ha, unix.O_RDONLY)
		require.NoError(t, err, when)
		require.Equal(t, inoA, fstat(t, fd).Ino, when)
		require.Equal(t, "the file's bytes", readAll(fd), when)
		fd, err = open(he, unix.O_RDONLY|unix.O_DIRECTORY)
		require.NoError(t, err, when)
		require.Equal(t, []string{".", "..", "f"}, readNames(t, fd), when)
		g, err := unix.Openat(fd, "f", unix.O_RDONLY, 0)
		require.NoError(t, err, when)
		require.Equal(t, "deep", readAll(g), when)
		unix.Close(fd)
		_, err = open(hg, unix.O_RDONLY)
		requireErrno(t, unix.ESTALE, err, when)
	}
	require.NoError(t, os.Remove(m.path("a"))) // b still names it
	require.NoError(t, os.Remove(m.path("gone")))
	check("mounted")
	m.remount()
	check("after a remount")

	// The handle of another generation (of another pool) is refused.
	bad := unix.NewFileHandle(ha.Type(), append([]byte(nil), ha.Bytes()...))
	bad.Bytes()[8] ^= 0x80
	_, err := open(bad, unix.O_RDONLY)
	requireErrno(t, unix.ESTALE, err)

	// Once its last name goes, the inode's handle is stale too.
	require.NoError(t, os.Remove(m.path("b")))
	_, err = open(ha, unix.O_RDONLY)
	requireErrno(t, unix.ESTALE, err)
	m.remount()
	_, err = open(ha, unix.O_RDONLY)
	requireErrno(t, unix.ESTALE, err)
}

// TestKillPrivEveryPath: every way of writing a file as an unprivileged
// user (here its owner, without CAP_FSETID) drops set-user-ID, and
// set-group-ID when group execute is set, as the kernel's
// file_remove_privs does on Linux's filesystems: write, O_DIRECT write,
// mmap write-back, copy_file_range, each fallocate mode, ftruncate.
func TestKillPrivEveryPath(t *testing.T) {
	opts := DefaultOptions()
	opts.AllowOther = true
	m := mountTest(t, opts)
	root, err := unix.Open(m.mnt, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	require.NoError(t, err)
	defer unix.Close(root)
	writeFile(t, m.path("src"), pattern(5, 8192))
	require.NoError(t, os.Chmod(m.path("src"), 0o644))

	direct := func(fd int) error {
		buf, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
		if err != nil {
			return err
		}
		defer unix.Munmap(buf)
		_, err = unix.Pwrite(fd, buf, 0)
		return err
	}
	falloc := func(mode uint32) func(int) error {
		return func(fd int) error { return unix.Fallocate(fd, mode, 0, 4096) }
	}
	ops := []struct {
		name string
		flag int
		op   func(fd int) error
	}{
		{"write", 0, func(fd int) error { _, err := unix.Pwrite(fd, []byte("x"), 2); return err }},
		{"O_DIRECT write", unix.O_DIRECT, direct},
		{"mmap write-back", 0, func(fd int) error {
			mem, err := unix.Mmap(fd, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
			if err != nil {
				return err
			}
			defer unix.Munmap(mem)
			mem[7] = 'm'
			return unix.Msync(mem, unix.MS_SYNC)
		}},
		{"copy_file_range", 0, func(fd int) error {
			src, err := unix.Openat(root, "src", unix.O_RDONLY, 0)
			if err != nil {
				return err
			}
			defer unix.Close(src)
			off := int64(0)
			_, err = unix.CopyFileRange(src, nil, fd, &off, 100, 0)
			return err
		}},
		{"fallocate", 0, falloc(0)},
		{"fallocate keep size", 0, falloc(unix.FALLOC_FL_KEEP_SIZE)},
		{"fallocate punch hole", 0, falloc(unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE)},
		{"fallocate zero range", 0, falloc(unix.FALLOC_FL_ZERO_RANGE)},
		{"ftruncate", 0, func(fd int) error { return unix.Ftruncate(fd, 5000) }},
	}
	// -rwSr-Sr-- becomes -rw-r-Sr--; -rwsr-sr-x becomes -rwxr-xr-x.
	modes := []struct{ mode, want uint32 }{{0o6644, 0o2644}, {0o6754, 0o754}, {0o4700, 0o700}}
	for i, op := range ops {
		for j, md := range modes {
			name := fmt.Sprintf("f%d-%d", i, j)
			what := fmt.Sprintf("%s, mode %o", op.name, md.mode)
			writeFile(t, m.path(name), pattern(1, 8192))
			require.NoError(t, os.Chown(m.path(name), 1000, 1000))
			require.NoError(t, unix.Chmod(m.path(name), md.mode))
			require.EqualValues(t, md.mode, lstat(t, m.path(name)).Mode&07777, what)
			require.NoError(t, asUser(1000, 1000, func() error {
				fd, err := unix.Openat(root, name, unix.O_RDWR|op.flag, 0)
				if err != nil {
					return err
				}
				defer unix.Close(fd)
				if err := op.op(fd); err != nil {
					return err
				}
				// What the writer's own fstat says, before any timeout.
				var st unix.Stat_t
				if err := unix.Fstat(fd, &st); err != nil {
					return err
				}
				if st.Mode&07777 != md.want {
					return fmt.Errorf("fstat after %s: mode %o, want %o", what, st.Mode&07777, md.want)
				}
				return nil
			}), what)
			require.EqualValues(t, md.want, lstat(t, m.path(name)).Mode&07777, what)
		}
	}
}

// TestFallocateENOSPC: fallocate (mode 0, KEEP_SIZE) of more than the
// free space fails with ENOSPC and changes nothing, as on ext4; one that
// fits, or that covers data already written, succeeds.
func TestFallocateENOSPC(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	p := m.path("f")
	writeFile(t, p, pattern(1, 64<<10))
	fd, err := unix.Open(p, unix.O_RDWR, 0)
	require.NoError(t, err)
	defer unix.Close(fd)
	st := statfs(t, m.mnt)
	free := int64(st.Bavail) * int64(st.Bsize)
	before := fstat(t, fd)
	for _, mode := range []uint32{0, unix.FALLOC_FL_KEEP_SIZE} {
		requireErrno(t, unix.ENOSPC, unix.Fallocate(fd, mode, 1<<20, free+(1<<20)), "mode %d", mode)
		requireErrno(t, unix.ENOSPC, unix.Fallocate(fd, mode, 0, 64<<10+free+4096), "mode %d: data plus more than free", mode)
		after := fstat(t, fd)
		require.Equal(t, before.Size, after.Size)
		require.Equal(t, before.Blocks, after.Blocks)
		require.Equal(t, before.Mtim, after.Mtim)
	}
	requireContent(t, pattern(1, 64<<10), p)
	// What fits is granted.
	require.NoError(t, unix.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE, 0, free/2))
	require.EqualValues(t, 64<<10, fstat(t, fd).Size)
	require.NoError(t, unix.Fallocate(fd, 0, 0, 64<<10+free-8192))
	require.EqualValues(t, 64<<10+free-8192, fstat(t, fd).Size)
	// Punching and zeroing need no space.
	require.NoError(t, unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, 2*free))
}

// TestAtimeModes: relatime moves the access time on a read when it is not
// after the last change either (a chmod), and leaves it otherwise;
// strictatime (norelatime on the command line) moves it on every read; noatime never.
func TestAtimeModes(t *testing.T) {
	read := func(t *testing.T, p string) { t.Helper(); requireContent(t, []byte("data"), p) }
	atime := func(t *testing.T, p string) int64 { t.Helper(); return tsNano(lstat(t, p).Atim) }
	for _, c := range []struct {
		opt                    string
		noAtime, strictAtime   bool
		afterRead, afterChange bool // does a second read move it; does a read after a chmod
	}{
		{"relatime", false, false, false, true},
		{"strictatime", false, true, true, true},
		{"noatime", true, false, false, false},
	} {
		t.Run(c.opt, func(t *testing.T) {
			opts := DefaultOptions()
			opts.NoAtime, opts.StrictAtime = c.noAtime, c.strictAtime
			m := mountTest(t, opts)
			p := m.path("f")
			writeFile(t, p, []byte("data"))
			read(t, p)
			a1 := atime(t, p)
			time.Sleep(5 * time.Millisecond)
			read(t, p)
			a2 := atime(t, p)
			require.Equal(t, c.afterRead, a2 > a1, "second read: %d then %d", a1, a2)
			time.Sleep(5 * time.Millisecond)
			require.NoError(t, os.Chmod(p, 0o600))
			ctime := tsNano(lstat(t, p).Ctim)
			require.Greater(t, ctime, a2)
			read(t, p)
			a3 := atime(t, p)
			require.Equal(t, c.afterChange, a3 > ctime, "read after a change: atime %d, ctime %d", a3, ctime)
		})
	}
}
