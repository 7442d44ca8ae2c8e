package fs

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"vosfs/blob"
	"vosfs/internal/fusetest"
	"vosfs/pool"
)

// Exhaustive small workloads, in the manner of ACE: every operation (and,
// in long runs, every pair) from a fixed set over two directories holding
// two files each, followed by a persistence call, run on a pool whose blob
// layer simulates a power cut at each of the workload's sync points in
// turn. After each cut the pool is recovered and its namespace must equal
// the state after the operations that returned (sync mode), or after one
// more: never anything else.

// aceOp is one operation of the workload, run on the mount.
type aceOp struct {
	name string
	run  func(mnt string) error
	// torn names the file of a write(2) that the kernel may send as
	// several FUSE writes (it splits at pages it has to read first): cut
	// in the middle, the write may be partly there, so after a crash
	// during it that file's content is not checked (the rest is).
	torn string
}

func acePath(mnt, p string) string { return filepath.Join(mnt, p) }

func aceWrite(mnt, p string, off int64, n int, flags int) error {
	f, err := os.OpenFile(acePath(mnt, p), os.O_WRONLY|flags, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, n)
	for i := range buf {
		buf[i] = byte(i*7 + n)
	}
	_, err = f.WriteAt(buf, off)
	return err
}

// aceOps are the operations: creat, mkdir, write (small, large, unaligned),
// fallocate, truncate, link, unlink, rename, symlink, setxattr,
// removexattr, over A/{f,g} and B/{f,g}.
func aceOps() []aceOp {
	var ops []aceOp
	add := func(name string, run func(string) error) { ops = append(ops, aceOp{name: name, run: run}) }
	addWrite := func(name, file string, run func(string) error) {
		ops = append(ops, aceOp{name: name, run: run, torn: file})
	}
	for _, d := range []string{"A", "B"} {
		d := d
		add("creat "+d+"/new", func(m string) error {
			f, err := os.OpenFile(acePath(m, d+"/new"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
			if err == nil {
				err = f.Close()
			}
			return err
		})
		add("mkdir "+d+"/sub", func(m string) error { return os.Mkdir(acePath(m, d+"/sub"), 0o755) })
	}
	for _, f := range []string{"A/f", "B/g"} {
		f := f
		addWrite("write small "+f, f, func(m string) error { return aceWrite(m, f, 100, 300, 0) })
		addWrite("write large "+f, f, func(m string) error { return aceWrite(m, f, 8192, 64<<10, 0) })
		addWrite("write unaligned "+f, f, func(m string) error { return aceWrite(m, f, 5000, 10000, 0) })
		addWrite("append "+f, f, func(m string) error { return aceWrite(m, f, 0, 5000, os.O_APPEND) })
		add("fallocate "+f, func(m string) error {
			fd, err := unix.Open(acePath(m, f), unix.O_RDWR, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			return unix.Fallocate(fd, 0, 0, 1<<20)
		})
		add("punch "+f, func(m string) error {
			fd, err := unix.Open(acePath(m, f), unix.O_RDWR, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			return unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 4096, 8192)
		})
		add("truncate down "+f, func(m string) error { return os.Truncate(acePath(m, f), 10) })
		add("truncate up "+f, func(m string) error { return os.Truncate(acePath(m, f), 300000) })
		add("setxattr "+f, func(m string) error { return unix.Setxattr(acePath(m, f), "user.k", []byte("v1"), 0) })
		add("removexattr "+f, func(m string) error { return unix.Removexattr(acePath(m, f), "user.a") })
		add("unlink "+f, func(m string) error { return os.Remove(acePath(m, f)) })
	}
	add("link A/f B/l", func(m string) error { return os.Link(acePath(m, "A/f"), acePath(m, "B/l")) })
	add("rename A/f B/g", func(m string) error { return os.Rename(acePath(m, "A/f"), acePath(m, "B/g")) })
	add("rename A/g A/h", func(m string) error { return os.Rename(acePath(m, "A/g"), acePath(m, "A/h")) })
	add("rename A B/A2", func(m string) error { return os.Rename(acePath(m, "A"), acePath(m, "B/A2")) })
	add("exchange A/f B/f", func(m string) error {
		return unix.Renameat2(unix.AT_FDCWD, acePath(m, "A/f"), unix.AT_FDCWD, acePath(m, "B/f"), unix.RENAME_EXCHANGE)
	})
	add("symlink A/s", func(m string) error { return os.Symlink("../B/g", acePath(m, "A/s")) })
	add("rmdir B/e", func(m string) error { return os.Remove(acePath(m, "B/e")) })
	return ops
}

// acePersist are the persistence calls that follow each workload.
var acePersist = []aceOp{
	{name: "fsync file", run: func(m string) error {
		f, err := os.OpenFile(acePath(m, "B/g"), os.O_RDWR, 0)
		if err != nil {
			return nil // the workload removed it
		}
		defer f.Close()
		return f.Sync()
	}},
	{name: "fsync dir", run: func(m string) error {
		f, err := os.Open(acePath(m, "B"))
		if err != nil {
			return nil
		}
		defer f.Close()
		return f.Sync()
	}},
	{name: "fdatasync", run: func(m string) error {
		f, err := os.OpenFile(acePath(m, "A/f"), os.O_RDWR, 0)
		if err != nil {
			return nil
		}
		defer f.Close()
		return unix.Fdatasync(int(f.Fd()))
	}},
	{name: "sync", run: func(m string) error { unix.Sync(); return nil }},
}

// aceSetup makes the initial tree: A/{f,g}, B/{f,g}, an empty B/e, xattr
// user.a on every file.
func aceSetup(m string) error {
	for _, d := range []string{"A", "B", "B/e"} {
		if err := os.Mkdir(acePath(m, d), 0o755); err != nil {
			return err
		}
	}
	for i, f := range []string{"A/f", "A/g", "B/f", "B/g"} {
		if err := os.WriteFile(acePath(m, f), []byte(strings.Repeat(string(rune('a'+i)), 6000)), 0o644); err != nil {
			return err
		}
		if err := unix.Setxattr(acePath(m, f), "user.a", []byte("x"), 0); err != nil {
			return err
		}
	}
	return nil
}

// aceState renders the namespace of a filesystem (read through the store,
// not the mount): every path with its type, mode, link count, size, content
// hash, symlink target and xattrs.
func aceState(f *FS) (string, error) {
	v := f.s.Latest()
	defer v.Close()
	var lines []string
	var walk func(dir uint64, prefix string) error
	walk = func(dir uint64, prefix string) error {
		var names []string
		if err := v.ListDkeys(dir|entriesBit, nil, false, 0, func(k []byte) bool { names = append(names, string(k)); return true }); err != nil {
			return err
		}
		for _, name := range names {
			b, ok, err := v.Get(entryPath(dir, name))
			if err != nil || !ok {
				return fmt.Errorf("entry %s%s: %v", prefix, name, err)
			}
			e, err := decodeEntry(b)
			if err != nil {
				return err
			}
			a, err := loadAttrs(v, e.oid)
			if err != nil {
				return fmt.Errorf("%s%s: %w", prefix, name, err)
			}
			line := fmt.Sprintf("%s%s ino=%d mode=%o nlink=%d size=%d", prefix, name, e.oid, a.mode, a.nlink, a.size)
			switch a.mode & syscall.S_IFMT {
			case syscall.S_IFREG:
				data := make([]byte, a.size)
				if err := v.ReadArray(dataPath(e.oid), 0, data); err != nil {
					return err
				}
				line += fmt.Sprintf(" data=%x", sha256.Sum256(data))
			case syscall.S_IFLNK:
				t, _, err := v.Get(linkPath(e.oid))
				if err != nil {
					return err
				}
				line += " target=" + string(t)
			}
			var xs []string
			if err := v.ListDkeys(e.oid|xattrBit, nil, false, 0, func(k []byte) bool { xs = append(xs, string(k)); return true }); err != nil {
				return err
			}
			for _, x := range xs {
				val, _, err := v.Get(xattrPath(e.oid, x))
				if err != nil {
					return err
				}
				line += fmt.Sprintf(" xattr:%s=%q", x, val)
			}
			lines = append(lines, line)
			if a.isDir() {
				if err := walk(e.oid, prefix+name+"/"); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(RootOID, "/"); err != nil {
		return "", err
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n"), nil
}

// aceMount mounts a filesystem on a pool in fsys.
type aceMount struct {
	p   *pool.Pool
	f   *FS
	srv *fuse.Server
	mnt string
}

func aceOpen(t testing.TB, fsys blob.FS, mnt string) (*aceMount, error) {
	p, err := pool.Open(fsys, "pool", pool.Options{})
	if err != nil {
		return nil, err
	}
	f, err := New(p, DefaultOptions())
	if err != nil {
		p.Close()
		return nil, err
	}
	srv, err := f.Mount(mnt)
	if err != nil {
		f.Close()
		p.Close()
		return nil, err
	}
	if err := srv.WaitMount(); err != nil {
		return nil, err
	}
	return &aceMount{p: p, f: f, srv: srv, mnt: mnt}, nil
}

func (a *aceMount) close() {
	_ = a.srv.Unmount()
	a.srv.Wait()
	_ = a.f.Close()
	_ = a.p.Close()
}

// aceRun runs setup, the ops and the persistence call on a fresh pool,
// crashing at sync point crashAt (0: never). It returns the states after
// setup and after each completed op, how many ops completed before the
// crash, the crash image, and the number of sync points the run passed.
func aceRun(t testing.TB, mnt string, ops []aceOp, crashAt int) (states []string, done int, img *blob.MemFS, syncs int) {
	mfs := blob.NewMemFS(int64(crashAt) + 1)
	require.NoError(t, pool.Create(mfs, "pool", pool.Config{DataSize: pool.DataOffset + 64<<20, MetaSize: 8 << 20, WALSize: 8192 + 1<<20, RecordLimit: 64 << 10}))
	m, err := aceOpen(t, mfs, mnt)
	require.NoError(t, err)
	require.NoError(t, aceSetup(mnt))
	st, err := aceState(m.f)
	require.NoError(t, err)
	states = append(states, st)
	_, base := mfs.Ops()
	if crashAt > 0 {
		mfs.CrashAtSync(crashAt)
	}
	for _, op := range ops {
		err := op.run(mnt)
		if mfs.CrashImage() != nil {
			break
		}
		if err == nil || !isEIO(err) {
			done++
			if crashAt == 0 {
				st, err := aceState(m.f)
				require.NoError(t, err)
				states = append(states, st)
			}
		}
	}
	_, s := mfs.Ops()
	m.close()
	img = mfs.CrashImage()
	if img == nil {
		img = mfs.Crash()
	}
	return states, done, img, s - base
}

func isEIO(err error) bool {
	var errno syscall.Errno
	return errors.As(err, &errno) && errno == syscall.EIO
}

// aceCheck runs one workload crashed at every one of its sync points.
func aceCheck(t *testing.T, mnt string, ops []aceOp) int {
	states, _, _, syncs := aceRun(t, mnt, ops, 0)
	names := make([]string, len(ops))
	for i, o := range ops {
		names[i] = o.name
	}
	for n := 1; n <= syncs; n++ {
		_, done, img, _ := aceRun(t, mnt, ops, n)
		m, err := aceOpen(t, img, mnt)
		require.NoError(t, err, "%v crashed at sync %d: recovery", names, n)
		got, err := aceState(m.f)
		require.NoError(t, err)
		require.NoError(t, m.f.Check(), "%v crashed at sync %d: fsck", names, n)
		m.close()
		ok := got == states[min(done, len(states)-1)] || done+1 < len(states) && got == states[done+1]
		if !ok && done < len(ops) && ops[done].torn != "" {
			// A write cut in the middle: everything but its file (under
			// every name) as before.
			ino := inoOf(states[done], "/"+ops[done].torn+" ")
			ok = ino != "" && withoutIno(got, ino) == withoutIno(states[done], ino)
		}
		if !ok {
			t.Fatalf("%v crashed at sync %d after %d ops:\n%s", names, n, done, aceDiff(got, states, done))
		}
	}
	return syncs
}

// inoOf returns the "ino=N " field of the line of path (with its trailing
// space) in a state.
func inoOf(state, path string) string {
	for _, l := range strings.Split(state, "\n") {
		if strings.HasPrefix(l, path) {
			f := strings.Fields(l)
			if len(f) > 1 {
				return f[1] + " "
			}
		}
	}
	return ""
}

func withoutIno(state, ino string) string {
	var keep []string
	for _, l := range strings.Split(state, "\n") {
		if !strings.Contains(l, " "+ino) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// aceDiff shows the lines of got that neither allowed state has.
func aceDiff(got string, states []string, done int) string {
	var out []string
	for i := done; i <= done+1 && i < len(states); i++ {
		want := map[string]bool{}
		for _, l := range strings.Split(states[i], "\n") {
			want[l] = true
		}
		have := map[string]bool{}
		for _, l := range strings.Split(got, "\n") {
			have[l] = true
			if !want[l] {
				out = append(out, fmt.Sprintf("state %d lacks: %s", i, l))
			}
		}
		for l := range want {
			if !have[l] {
				out = append(out, fmt.Sprintf("state %d has:   %s", i, l))
			}
		}
	}
	return strings.Join(out, "\n")
}

func TestACESingleOps(t *testing.T) {
	fusetest.Require(t)
	mnt := t.TempDir()
	states := 0
	for _, op := range aceOps() {
		for _, p := range acePersist {
			states += aceCheck(t, mnt, []aceOp{op, p})
		}
	}
	t.Logf("%d crash states checked", states)
}

func TestACEPairs(t *testing.T) {
	if os.Getenv("VOSFS_ACE_PAIRS") == "" {
		t.Skip("set VOSFS_ACE_PAIRS=1 for the two-operation enumeration (long)")
	}
	fusetest.Require(t)
	mnt := t.TempDir()
	states := 0
	ops := aceOps()
	for _, a := range ops {
		for _, b := range ops {
			for _, p := range acePersist {
				states += aceCheck(t, mnt, []aceOp{a, b, p})
			}
		}
	}
	t.Logf("%d crash states checked", states)
}
