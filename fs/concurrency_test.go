package fs

import (
	"context"
	"errors"
	"fmt"
	"log"
	"math/rand"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"vosfs/vos"
)

// parallel runs fn(0..n-1) in goroutines and returns their errors.
func parallel(n int, fn func(i int) error) error {
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(i)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// entries lists directory dir from the store: name -> object.
func (m *mounted) entries(dir uint64) map[string]uint64 {
	m.t.Helper()
	out := map[string]uint64{}
	v := m.f.Store().Latest()
	defer v.Close()
	var names []string
	require.NoError(m.t, v.ListDkeys(dir|entriesBit, nil, false, 0, func(k []byte) bool {
		names = append(names, string(k))
		return true
	}))
	for _, n := range names {
		b, ok, err := v.Get(entryPath(dir, n))
		require.NoError(m.t, err)
		require.True(m.t, ok)
		e, err := decodeEntry(b)
		require.NoError(m.t, err)
		out[n] = e.oid
	}
	return out
}

// lookupNode finds the node of a path below the root without the kernel.
func (m *mounted) lookupNode(path ...string) *node {
	m.t.Helper()
	n := m.f.root
	for _, p := range path {
		var out fuse.EntryOut
		ch, errno := n.Lookup(context.Background(), p, &out)
		require.Equal(m.t, syscall.Errno(0), errno, p)
		n = ch.Operations().(*node)
	}
	return n
}

func TestParallelWritersOneFile(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	p := m.path("shared")
	writeFile(t, p, nil)
	const writers, chunks, chunk = 8, 16, 64 << 10
	require.NoError(t, parallel(writers, func(w int) error {
		flags := unix.O_WRONLY
		if w%2 == 1 {
			flags |= unix.O_DIRECT // no page cache: truly parallel requests
		}
		fd, err := unix.Open(p, flags, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		buf, err := unix.Mmap(-1, 0, chunk, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
		if err != nil {
			return err
		}
		defer unix.Munmap(buf)
		for c := 0; c < chunks; c++ {
			idx := c*writers + w
			copy(buf, pattern(byte(idx), chunk))
			if n, err := unix.Pwrite(fd, buf, int64(idx)*chunk); err != nil || n != chunk {
				return fmt.Errorf("writer %d chunk %d: %d, %v", w, c, n, err)
			}
		}
		return nil
	}))
	want := make([]byte, 0, writers*chunks*chunk)
	for idx := 0; idx < writers*chunks; idx++ {
		want = append(want, pattern(byte(idx), chunk)...)
	}
	require.EqualValues(t, len(want), lstat(t, p).Size)
	requireContent(t, want, p)
	m.remount()
	requireContent(t, want, p)
}

func TestParallelCreates(t *testing.T) {
	t.Parallel() // long: overlaps the other long tests
	m := mountTest(t, DefaultOptions())
	require.NoError(t, os.Mkdir(m.path("d"), 0o755))
	const goroutines, perG = 8, 25

	// Through the kernel.
	require.NoError(t, parallel(goroutines, func(g int) error {
		for i := 0; i < perG; i++ {
			name := m.path(fmt.Sprintf("d/f-%d-%d", g, i))
			if i%5 == 0 {
				if err := os.Mkdir(name, 0o755); err != nil {
					return err
				}
				continue
			}
			if err := os.WriteFile(name, []byte(name), 0o644); err != nil {
				return err
			}
		}
		return nil
	}))
	ents, err := os.ReadDir(m.path("d"))
	require.NoError(t, err)
	require.Len(t, ents, goroutines*perG)
	for g := 0; g < goroutines; g++ {
		for i := 0; i < perG; i++ {
			name := m.path(fmt.Sprintf("d/f-%d-%d", g, i))
			if i%5 != 0 {
				requireContent(t, []byte(name), name)
			}
		}
	}
	require.EqualValues(t, 2+goroutines*perG/5, lstat(t, m.path("d")).Nlink)

	// Straight into the filesystem, which the kernel would serialize per
	// directory: the transactions of one directory run concurrently.
	require.NoError(t, os.Mkdir(m.path("direct"), 0o755))
	dir := m.lookupNode("direct")
	ctx := context.Background()
	require.NoError(t, parallel(goroutines, func(g int) error {
		for i := 0; i < perG; i++ {
			var out fuse.EntryOut
			name := fmt.Sprintf("n-%d-%d", g, i)
			if i%5 == 0 {
				if _, errno := dir.Mkdir(ctx, name, 0o755, &out); errno != 0 {
					return fmt.Errorf("mkdir %s: %w", name, errno)
				}
				continue
			}
			ch, fh, _, errno := dir.Create(ctx, name, unix.O_WRONLY, 0o644, &out)
			if errno != 0 {
				return fmt.Errorf("create %s: %w", name, errno)
			}
			cn := ch.Operations().(*node)
			if _, errno := cn.Write(ctx, fh, []byte(name), 0); errno != 0 {
				return fmt.Errorf("write %s: %w", name, errno)
			}
			if errno := cn.Release(ctx, fh); errno != 0 {
				return fmt.Errorf("release %s: %w", name, errno)
			}
		}
		return nil
	}))
	got := m.entries(dir.oid)
	require.Len(t, got, goroutines*perG)
	// (The kernel's cached attributes of the directory predate all this.)
	v := m.f.Store().Latest()
	a, err := loadAttrs(v, dir.oid)
	v.Close()
	require.NoError(t, err)
	require.EqualValues(t, 2+goroutines*perG/5, a.nlink)
	for g := 0; g < goroutines; g++ {
		requireContent(t, []byte(fmt.Sprintf("n-%d-1", g)), m.path(fmt.Sprintf("direct/n-%d-1", g)))
	}
	require.NoError(t, m.f.Check())
}

// TestRenameStorm: goroutines move files among a few names in two
// directories, never replacing one; every file is there exactly once
// afterwards.
func TestRenameStorm(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	const files, goroutines, ops = 5, 8, 150
	var slots []string
	for _, d := range []string{"x", "y"} {
		require.NoError(t, os.Mkdir(m.path(d), 0o755))
		for _, n := range []string{"a", "b", "c", "d", "e", "f"} {
			slots = append(slots, d+"/"+n)
		}
	}
	for i := 0; i < files; i++ {
		writeFile(t, m.path(slots[i*2]), []byte(fmt.Sprintf("file %d", i)))
	}
	// A directory moves around too.
	require.NoError(t, os.Mkdir(m.path(slots[1]), 0o755))
	writeFile(t, m.path(slots[1]+"/inside"), []byte("inside"))

	check := func(contents func(slot string) (string, bool)) {
		t.Helper()
		seen := map[string]int{}
		for _, s := range slots {
			if c, ok := contents(s); ok {
				seen[c]++
			}
		}
		for i := 0; i < files; i++ {
			require.Equal(t, 1, seen[fmt.Sprintf("file %d", i)], "file %d", i)
		}
		require.Equal(t, 1, seen["dir"])
		require.Len(t, seen, files+1)
	}

	t.Run("kernel", func(t *testing.T) {
		require.NoError(t, parallel(goroutines, func(g int) error {
			r := rand.New(rand.NewSource(int64(g)))
			for i := 0; i < ops; i++ {
				from, to := slots[r.Intn(len(slots))], slots[r.Intn(len(slots))]
				flags := uint(unix.RENAME_NOREPLACE)
				if r.Intn(3) == 0 {
					flags = unix.RENAME_EXCHANGE
				}
				err := unix.Renameat2(unix.AT_FDCWD, m.path(from), unix.AT_FDCWD, m.path(to), flags)
				switch {
				case err == nil, errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.EEXIST):
				case from == to && errors.Is(err, syscall.EINVAL):
				default:
					return fmt.Errorf("rename %s %s (%d): %w", from, to, flags, err)
				}
			}
			return nil
		}))
		check(func(s string) (string, bool) {
			st := unix.Stat_t{}
			if err := unix.Lstat(m.path(s), &st); err != nil {
				return "", false
			}
			if st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
				requireContent(t, []byte("inside"), m.path(s+"/inside"))
				return "dir", true
			}
			return string(readFile(t, m.path(s))), true
		})
		require.EqualValues(t, 2+2+1, lstat(t, m.path("x")).Nlink+lstat(t, m.path("y")).Nlink, "one subdirectory between them")
	})

	t.Run("direct", func(t *testing.T) {
		// The same storm straight into the filesystem, where nothing
		// serializes renames; checked through the store.
		dirs := map[string]*node{"x": m.lookupNode("x"), "y": m.lookupNode("y")}
		split := func(s string) (*node, string) { return dirs[s[:1]], s[2:] }
		ctx := context.Background()
		var mu sync.Mutex
		retried := 0
		require.NoError(t, parallel(goroutines, func(g int) error {
			r := rand.New(rand.NewSource(int64(100 + g)))
			for i := 0; i < ops; i++ {
				from, to := slots[r.Intn(len(slots))], slots[r.Intn(len(slots))]
				flags := uint32(renameNoReplace)
				if r.Intn(3) == 0 {
					flags = renameExchange
				}
				fd, fn := split(from)
				td, tn := split(to)
				errno := fd.Rename(ctx, fn, td, tn, flags)
				switch errno {
				case 0, syscall.ENOENT, syscall.EEXIST:
				case syscall.EAGAIN:
					mu.Lock()
					retried++
					mu.Unlock()
				default:
					return fmt.Errorf("rename %s %s (%d): %w", from, to, flags, errno)
				}
			}
			return nil
		}))
		require.Zero(t, retried, "renames that ran out of retries")
		ents := map[string]map[string]uint64{"x": m.entries(dirs["x"].oid), "y": m.entries(dirs["y"].oid)}
		v := m.f.Store().Latest()
		defer v.Close()
		check(func(s string) (string, bool) {
			oid, ok := ents[s[:1]][s[2:]]
			if !ok {
				return "", false
			}
			a, err := loadAttrs(v, oid)
			require.NoError(t, err)
			if a.isDir() {
				require.Contains(t, m.entries(oid), "inside")
				return "dir", true
			}
			buf := make([]byte, a.size)
			require.NoError(t, v.ReadArray(dataPath(oid), 0, buf))
			return string(buf), true
		})
		require.NoError(t, m.f.Check())
	})
}

// TestAggregateUnderLoad: aggregation (run continuously here) never
// changes what readers see while writers overwrite files, snapshots come
// and go, and files are replaced.
func TestAggregateUnderLoad(t *testing.T) {
	t.Parallel() // long: overlaps the other long tests
	dbgo := DefaultOptions()
	if os.Getenv("VOSFS_DEBUG") != "" {
		dbgo.Debug = true
		dbgo.Logger = log.New(os.Stderr, "", log.Lmicroseconds)
	}
	m := mountTest(t, dbgo)
	const files, size, rounds = 4, 256 << 10, 40
	version := func(v int) []byte {
		b := pattern(byte(v), size)
		copy(b, fmt.Sprintf("v%06d", v))
		return b
	}
	for i := 0; i < files; i++ {
		writeFile(t, m.path(fmt.Sprintf("f%d", i)), version(0))
	}
	stop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Add(1)
	go func() {
		defer bg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := m.f.aggregate(context.Background()); err != nil {
				t.Errorf("aggregate: %v", err)
				return
			}
		}
	}()
	// checkVersion reads a whole file in one request and checks that it
	// is one complete version.
	checkVersion := func(path string, buf []byte) error {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECT, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", path, err)
		}
		defer unix.Close(fd)
		n, err := unix.Pread(fd, buf, 0)
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		var v int
		if _, err := fmt.Sscanf(string(buf[:7]), "v%06d", &v); err != nil {
			return fmt.Errorf("%s: bad header %q", path, buf[:7])
		}
		if n != size || string(buf[:n]) != string(version(v)) {
			return fmt.Errorf("%s: %d bytes, not version %d", path, n, v)
		}
		return nil
	}
	err := parallel(files+2, func(g int) error {
		buf, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
		if err != nil {
			return err
		}
		defer unix.Munmap(buf)
		switch {
		case g < files: // writer of one file: overwrite in place, or replace by rename
			p := m.path(fmt.Sprintf("f%d", g))
			for r := 1; r <= rounds; r++ {
				if r%4 == 0 {
					tmp := p + ".tmp"
					if err := os.WriteFile(tmp, version(r), 0o644); err != nil {
						return err
					}
					if err := unix.Rename(tmp, p); err != nil {
						return fmt.Errorf("rename %s: %w", tmp, err)
					}
					continue
				}
				fd, err := unix.Open(p, unix.O_WRONLY|unix.O_DIRECT, 0)
				if err != nil {
					return fmt.Errorf("open %s for writing: %w", p, err)
				}
				copy(buf, version(r))
				_, err = unix.Pwrite(fd, buf, 0)
				unix.Close(fd)
				if err != nil {
					return err
				}
			}
		case g == files: // reader of the live files
			for r := 0; r < rounds*2; r++ {
				if err := checkVersion(m.path(fmt.Sprintf("f%d", r%files)), buf); err != nil {
					return err
				}
			}
		default: // snapshots: made, read, deleted
			for r := 0; r < rounds/4; r++ {
				s := m.path(fmt.Sprintf("%s/s%d", SnapshotDir, r))
				if err := os.Mkdir(s, 0o755); err != nil {
					return err
				}
				for i := 0; i < files; i++ {
					if err := checkVersion(fmt.Sprintf("%s/f%d", s, i), buf); err != nil {
						return err
					}
				}
				if r%2 == 0 {
					if err := unix.Rmdir(s); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	close(stop)
	bg.Wait()
	require.NoError(t, err)
	for i := 0; i < files; i++ {
		requireContent(t, version(rounds), m.path(fmt.Sprintf("f%d", i)))
	}
	m.aggregate()
	for r := 1; r < rounds/4; r += 2 {
		s := m.path(fmt.Sprintf("%s/s%d", SnapshotDir, r))
		buf := make([]byte, size)
		for i := 0; i < files; i++ {
			fd, err := unix.Open(fmt.Sprintf("%s/f%d", s, i), unix.O_RDONLY, 0)
			require.NoError(t, err)
			n, err := unix.Pread(fd, buf, 0)
			require.NoError(t, err)
			unix.Close(fd)
			require.Equal(t, size, n)
			var v int
			_, err = fmt.Sscanf(string(buf[:7]), "v%06d", &v)
			require.NoError(t, err)
			requireBytes(t, version(v), buf, s)
		}
	}
	m.remount()
	for i := 0; i < files; i++ {
		requireContent(t, version(rounds), m.path(fmt.Sprintf("f%d", i)))
	}
}

// TestOpenRacingRemoval: an open that reaches the filesystem while a
// transaction removes the inode (its path was resolved before) waits for
// the removal and fails with ESTALE, so the kernel looks the name up
// again; when the removal does not happen after all, the open succeeds.
func TestOpenRacingRemoval(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	writeFile(t, m.path("f"), []byte("x"))
	writeFile(t, m.path("g"), []byte("y"))
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		remove bool
		want   syscall.Errno
	}{{"f", true, syscall.ESTALE}, {"g", false, 0}} {
		n := m.lookupNode(c.name)
		rm := &removal{f: m.f}
		require.True(t, rm.claim(n.oid))
		got := make(chan syscall.Errno, 1)
		go func() {
			fh, _, errno := n.openHandle(ctx, unix.O_RDONLY, nil)
			if errno == 0 {
				n.Release(ctx, fh)
			}
			got <- errno
		}()
		select {
		case errno := <-got:
			t.Fatalf("%s: open returned %v during the removal", c.name, errno)
		case <-time.After(50 * time.Millisecond):
		}
		if c.remove {
			require.Equal(t, syscall.Errno(0), m.f.update(ctx, nil, func(tx *vos.Tx) error {
				if err := tx.PunchDkey(RootOID|entriesBit, []byte(c.name)); err != nil {
					return err
				}
				return removeInode(tx, n.oid)
			}))
		}
		rm.done()
		require.Equal(t, c.want, <-got, c.name)
	}
}

// TestDirectoryRaces runs pairs of operations that the kernel would
// serialize straight into the filesystem at the same time: each pair must
// end as if one ran before the other.
func TestDirectoryRaces(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	root := m.f.root
	ctx := context.Background()
	race := func(a, b func() syscall.Errno) (syscall.Errno, syscall.Errno) {
		var ea, eb syscall.Errno
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); ea = a() }()
		go func() { defer wg.Done(); eb = b() }()
		wg.Wait()
		return ea, eb
	}
	mkdir := func(parent *node, name string) *node {
		var out fuse.EntryOut
		ch, errno := parent.Mkdir(ctx, name, 0o755, &out)
		require.Equal(t, syscall.Errno(0), errno)
		return ch.Operations().(*node)
	}

	t.Run("rmdir vs create inside", func(t *testing.T) {
		for i := 0; i < 50; i++ {
			name := fmt.Sprintf("r%d", i)
			d := mkdir(root, name)
			eRm, eCreate := race(
				func() syscall.Errno { return root.Rmdir(ctx, name) },
				func() syscall.Errno {
					var out fuse.EntryOut
					_, errno := d.Mknod(ctx, "x", syscall.S_IFREG|0o644, 0, &out)
					return errno
				})
			switch {
			case eRm == 0:
				require.Equal(t, syscall.ENOENT, eCreate, "created in a removed directory")
			case eRm == syscall.ENOTEMPTY:
				require.Equal(t, syscall.Errno(0), eCreate)
			default:
				t.Fatalf("rmdir: %v", eRm)
			}
		}
	})

	t.Run("link vs last unlink", func(t *testing.T) {
		for i := 0; i < 50; i++ {
			name := fmt.Sprintf("l%d", i)
			var out fuse.EntryOut
			ch, errno := root.Mknod(ctx, name, syscall.S_IFREG|0o644, 0, &out)
			require.Equal(t, syscall.Errno(0), errno)
			target := ch.Operations().(*node)
			eLink, eUnlink := race(
				func() syscall.Errno {
					var out fuse.EntryOut
					_, errno := root.Link(ctx, target, name+"-link", &out)
					return errno
				},
				func() syscall.Errno { return root.Unlink(ctx, name) })
			require.Equal(t, syscall.Errno(0), eUnlink)
			if eLink == 0 {
				require.Equal(t, syscall.Errno(0), root.Unlink(ctx, name+"-link"))
			} else {
				require.Equal(t, syscall.ENOENT, eLink)
			}
		}
	})

	t.Run("crossed directory moves", func(t *testing.T) {
		// Moving a into b and b into a at once must not make a loop
		// cut off from the root.
		for i := 0; i < 50; i++ {
			base := mkdir(root, fmt.Sprintf("x%d", i))
			mkdir(base, "a")
			mkdir(base, "b")
			a, b := m.lookupNode(fmt.Sprintf("x%d", i), "a"), m.lookupNode(fmt.Sprintf("x%d", i), "b")
			e1, e2 := race(
				func() syscall.Errno { return base.Rename(ctx, "a", b, "a", 0) },
				func() syscall.Errno { return base.Rename(ctx, "b", a, "b", 0) })
			require.True(t, (e1 == 0) != (e2 == 0), "exactly one move: %v, %v", e1, e2)
			for _, e := range []syscall.Errno{e1, e2} {
				if e != 0 {
					require.Contains(t, []syscall.Errno{syscall.EINVAL, syscall.ENOENT}, e)
				}
			}
		}
	})
	require.NoError(t, m.f.Check())
}

// TestCheckDuringAggregation: the checker and the filesystem's background
// aggregation exclude each other, so the checker never mistakes the frees
// of a pass running beside it for corruption.
func TestCheckDuringAggregation(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	for c := 0; c < 4; c++ {
		for i := 0; i < 100; i++ {
			writeFile(t, m.path(fmt.Sprintf("f%d", i)), []byte("some bytes, in the heap"))
		}
		for i := 0; i < 100; i++ {
			require.NoError(t, os.Remove(m.path(fmt.Sprintf("f%d", i))))
		}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := m.f.aggregate(context.Background())
			assert.NoError(t, err)
		}()
		for k := 0; k < 3; k++ {
			require.NoError(t, m.f.Check(), "cycle %d", c)
		}
		wg.Wait()
	}
}
