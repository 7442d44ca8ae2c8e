package fs

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestRename(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	p := m.path
	// setup builds a fresh tree under dir: files hold their own name.
	n := 0
	setup := func(files []string, dirs []string) string {
		n++
		base := p("case" + string(rune('a'+n)))
		require.NoError(t, os.Mkdir(base, 0o755))
		for _, d := range dirs {
			require.NoError(t, os.MkdirAll(base+"/"+d, 0o755))
		}
		for _, f := range files {
			writeFile(t, base+"/"+f, []byte(f))
		}
		return base
	}

	cases := []struct {
		name     string
		files    []string
		dirs     []string
		from, to string
		err      syscall.Errno
		// after a success: the names that exist and what they hold ("" for
		// a directory), and the names that are gone
		exist map[string]string
		gone  []string
	}{
		{name: "file to new name", files: []string{"a"}, from: "a", to: "b",
			exist: map[string]string{"b": "a"}, gone: []string{"a"}},
		{name: "file over file", files: []string{"a", "b"}, from: "a", to: "b",
			exist: map[string]string{"b": "a"}, gone: []string{"a"}},
		{name: "file across dirs over file", files: []string{"x/a", "y/b"}, dirs: []string{"x", "y"}, from: "x/a", to: "y/b",
			exist: map[string]string{"y/b": "x/a"}, gone: []string{"x/a"}},
		{name: "file over empty dir", files: []string{"a"}, dirs: []string{"d"}, from: "a", to: "d", err: syscall.EISDIR},
		{name: "dir over file", files: []string{"a"}, dirs: []string{"d"}, from: "d", to: "a", err: syscall.ENOTDIR},
		{name: "dir over empty dir", files: []string{"d/in"}, dirs: []string{"d", "e"}, from: "d", to: "e",
			exist: map[string]string{"e": "", "e/in": "d/in"}, gone: []string{"d"}},
		{name: "dir over empty dir across", files: []string{"x/d/in"}, dirs: []string{"x/d", "y/e"}, from: "x/d", to: "y/e",
			exist: map[string]string{"y/e/in": "x/d/in"}, gone: []string{"x/d"}},
		{name: "dir over non-empty dir", dirs: []string{"d", "e/sub"}, from: "d", to: "e", err: syscall.ENOTEMPTY},
		{name: "dir into own subdir", dirs: []string{"d/sub"}, from: "d", to: "d/sub/x", err: syscall.EINVAL},
		{name: "dir onto itself deeper", dirs: []string{"d/sub/subsub"}, from: "d", to: "d/sub/subsub/d", err: syscall.EINVAL},
		{name: "missing source", from: "nope", to: "b", err: syscall.ENOENT},
		{name: "missing target dir", files: []string{"a"}, from: "a", to: "nodir/b", err: syscall.ENOENT},
		{name: "dir to new name across", files: []string{"x/d/f"}, dirs: []string{"x/d", "y"}, from: "x/d", to: "y/d2",
			exist: map[string]string{"y/d2/f": "x/d/f"}, gone: []string{"x/d"}},
		{name: "same name", files: []string{"a"}, from: "a", to: "a", exist: map[string]string{"a": "a"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := setup(c.files, c.dirs)
			err := unix.Rename(base+"/"+c.from, base+"/"+c.to)
			if c.err != 0 {
				requireErrno(t, c.err, err)
				for _, f := range c.files {
					requireContent(t, []byte(f), base+"/"+f)
				}
				return
			}
			require.NoError(t, err)
			for name, content := range c.exist {
				if content == "" {
					require.True(t, lstat(t, base+"/"+name).Mode&syscall.S_IFDIR != 0)
					continue
				}
				requireContent(t, []byte(content), base+"/"+name)
			}
			for _, name := range c.gone {
				requireErrno(t, syscall.ENOENT, unix.Access(base+"/"+name, unix.F_OK), name)
			}
		})
	}

	t.Run("link counts", func(t *testing.T) {
		base := setup(nil, []string{"x/d/sub", "y/e"})
		require.EqualValues(t, 3, lstat(t, base+"/x").Nlink)
		require.EqualValues(t, 3, lstat(t, base+"/y").Nlink)
		// Move a directory across: the parents' counts follow.
		require.NoError(t, unix.Rename(base+"/x/d", base+"/y/d"))
		require.EqualValues(t, 2, lstat(t, base+"/x").Nlink)
		require.EqualValues(t, 4, lstat(t, base+"/y").Nlink)
		require.EqualValues(t, 3, lstat(t, base+"/y/d").Nlink)
		// ".." of the moved directory is its new parent.
		require.Equal(t, lstat(t, base+"/y").Ino, lstat(t, base+"/y/d/..").Ino)
		require.Equal(t, lstat(t, base+"/y").Ino, direntInos(t, base+"/y/d")[".."])
		// Over an empty directory in the same parent: one fewer.
		require.NoError(t, unix.Rename(base+"/y/d", base+"/y/e"))
		require.EqualValues(t, 3, lstat(t, base+"/y").Nlink)
		// Over an empty directory in another parent.
		require.NoError(t, os.Mkdir(base+"/x/f", 0o755))
		require.NoError(t, unix.Rename(base+"/y/e", base+"/x/f"))
		require.EqualValues(t, 3, lstat(t, base+"/x").Nlink)
		require.EqualValues(t, 2, lstat(t, base+"/y").Nlink)
		require.EqualValues(t, 3, lstat(t, base+"/x/f").Nlink)
	})

	t.Run("replaced file keeps open descriptors", func(t *testing.T) {
		base := setup([]string{"a", "b"}, nil)
		fd, err := unix.Open(base+"/b", unix.O_RDWR, 0)
		require.NoError(t, err)
		require.NoError(t, unix.Rename(base+"/a", base+"/b"))
		requireContent(t, []byte("a"), base+"/b")
		buf := make([]byte, 10)
		got, err := unix.Pread(fd, buf, 0)
		require.NoError(t, err)
		require.Equal(t, "b", string(buf[:got]))
		require.EqualValues(t, 0, fstat(t, fd).Nlink)
		require.Len(t, m.orphans(), 1)
		require.NoError(t, unix.Close(fd))
		eventually(t, func() bool { return len(m.orphans()) == 0 }, "replaced file reaped at its close")
	})

	t.Run("hard link onto its other link", func(t *testing.T) {
		base := setup([]string{"a"}, []string{"d"})
		require.NoError(t, os.Link(base+"/a", base+"/d/b"))
		before := lstat(t, base+"/a")
		require.NoError(t, unix.Rename(base+"/a", base+"/d/b"))
		// POSIX: nothing happens; both names stay.
		requireContent(t, []byte("a"), base+"/a")
		requireContent(t, []byte("a"), base+"/d/b")
		st := lstat(t, base+"/a")
		require.EqualValues(t, 2, st.Nlink)
		require.Equal(t, before.Ino, st.Ino)
	})

	t.Run("times", func(t *testing.T) {
		base := setup([]string{"x/a"}, []string{"x", "y"})
		before := map[string]unix.Stat_t{"x": lstat(t, base+"/x"), "y": lstat(t, base+"/y"), "x/a": lstat(t, base+"/x/a")}
		time.Sleep(2 * time.Millisecond)
		require.NoError(t, unix.Rename(base+"/x/a", base+"/y/a"))
		for _, d := range []string{"x", "y"} {
			st := lstat(t, base+"/"+d)
			require.Greater(t, tsNano(st.Mtim), tsNano(before[d].Mtim), d)
			require.Greater(t, tsNano(st.Ctim), tsNano(before[d].Ctim), d)
		}
		st := lstat(t, base+"/y/a")
		require.Greater(t, tsNano(st.Ctim), tsNano(before["x/a"].Ctim))
		require.Equal(t, before["x/a"].Mtim, st.Mtim)
	})

	t.Run("noreplace", func(t *testing.T) {
		base := setup([]string{"a", "b"}, []string{"d"})
		requireErrno(t, syscall.EEXIST, unix.Renameat2(unix.AT_FDCWD, base+"/a", unix.AT_FDCWD, base+"/b", unix.RENAME_NOREPLACE))
		requireErrno(t, syscall.EEXIST, unix.Renameat2(unix.AT_FDCWD, base+"/a", unix.AT_FDCWD, base+"/d", unix.RENAME_NOREPLACE))
		requireContent(t, []byte("a"), base+"/a")
		requireContent(t, []byte("b"), base+"/b")
		require.NoError(t, unix.Renameat2(unix.AT_FDCWD, base+"/a", unix.AT_FDCWD, base+"/d/c", unix.RENAME_NOREPLACE))
		requireContent(t, []byte("a"), base+"/d/c")
		requireErrno(t, syscall.ENOENT, unix.Access(base+"/a", unix.F_OK))
	})

	t.Run("exchange", func(t *testing.T) {
		base := setup([]string{"a", "b", "x/f", "y/d/in"}, []string{"x", "y/d/sub"})
		xch := func(from, to string) error {
			return unix.Renameat2(unix.AT_FDCWD, base+"/"+from, unix.AT_FDCWD, base+"/"+to, unix.RENAME_EXCHANGE)
		}
		// Two files in one directory.
		ia, ib := lstat(t, base+"/a").Ino, lstat(t, base+"/b").Ino
		require.NoError(t, xch("a", "b"))
		requireContent(t, []byte("b"), base+"/a")
		requireContent(t, []byte("a"), base+"/b")
		require.Equal(t, ib, lstat(t, base+"/a").Ino)
		require.Equal(t, ia, lstat(t, base+"/b").Ino)

		// A file and a directory across directories.
		xLinks, yLinks := lstat(t, base+"/x").Nlink, lstat(t, base+"/y").Nlink
		require.NoError(t, xch("x/f", "y/d"))
		require.True(t, lstat(t, base+"/x/f").Mode&syscall.S_IFMT == syscall.S_IFDIR)
		requireContent(t, []byte("y/d/in"), base+"/x/f/in")
		requireContent(t, []byte("x/f"), base+"/y/d")
		require.Equal(t, xLinks+1, lstat(t, base+"/x").Nlink)
		require.Equal(t, yLinks-1, lstat(t, base+"/y").Nlink)
		require.Equal(t, lstat(t, base+"/x").Ino, direntInos(t, base+"/x/f")[".."])
		require.Equal(t, []string{".", "..", "f"}, names(t, base+"/x"))
		require.Equal(t, []string{".", "..", "d"}, names(t, base+"/y"))

		// Target missing.
		requireErrno(t, syscall.ENOENT, xch("a", "missing"))
		requireErrno(t, syscall.ENOENT, xch("missing", "a"))
		requireContent(t, []byte("b"), base+"/a")
		// A directory with its own subdirectory.
		requireErrno(t, syscall.EINVAL, xch("x/f", "x/f/sub"))
		// Two non-empty directories.
		require.NoError(t, os.MkdirAll(base+"/y/e/deep", 0o755))
		require.NoError(t, xch("x/f", "y/e"))
		requireContent(t, []byte("y/d/in"), base+"/y/e/in")
		require.DirExists(t, base+"/x/f/deep")
		require.Equal(t, lstat(t, base+"/x").Ino, direntInos(t, base+"/x/f")[".."])
		require.Equal(t, lstat(t, base+"/y").Ino, direntInos(t, base+"/y/e")[".."])
		// Both flags: invalid.
		requireErrno(t, syscall.EINVAL, unix.Renameat2(unix.AT_FDCWD, base+"/a", unix.AT_FDCWD, base+"/b", unix.RENAME_EXCHANGE|unix.RENAME_NOREPLACE))
	})
}

// TestSnapshotNamespaceIsolation: nothing moves or links between the live
// tree and a snapshot, and the live root cannot get an entry that the
// snapshots directory would hide.
func TestSnapshotNamespaceIsolation(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	require.NoError(t, os.Mkdir(m.path("d"), 0o755))
	writeFile(t, m.path("d/f"), []byte("old"))
	require.NoError(t, os.Mkdir(m.path(SnapshotDir+"/s"), 0o755))
	writeFile(t, m.path("g"), []byte("live"))
	snap := m.path(SnapshotDir + "/s/d")

	err := unix.Rename(m.path("g"), snap+"/g")
	require.Error(t, err)
	requireContent(t, []byte("live"), m.path("g"))
	requireErrno(t, syscall.ENOENT, unix.Access(m.path("d/g"), unix.F_OK), "a rename into a snapshot must not land in the live tree")
	err = unix.Rename(snap+"/f", m.path("d/f2"))
	require.Error(t, err)
	requireErrno(t, syscall.ENOENT, unix.Access(m.path("d/f2"), unix.F_OK))

	// A link of a snapshot's file into the live tree, even of one the live
	// tree still has unchanged.
	requireErrno(t, syscall.EXDEV, os.Link(snap+"/f", m.path("d/f5")))
	requireErrno(t, syscall.ENOENT, unix.Access(m.path("d/f5"), unix.F_OK))
	require.EqualValues(t, 1, lstat(t, m.path("d/f")).Nlink)
	require.NoError(t, os.Remove(m.path("d/f")))
	err = os.Link(snap+"/f", m.path("d/f3"))
	require.Error(t, err)
	requireErrno(t, syscall.ENOENT, unix.Access(m.path("d/f3"), unix.F_OK))
	writeFile(t, m.path("d/f"), []byte("new"))
	err = os.Link(snap+"/f", m.path("d/f4"))
	require.Error(t, err)

	// The name of the snapshots directory is taken at the root.
	for _, op := range []func() error{
		func() error { return os.WriteFile(m.path(SnapshotDir), nil, 0o644) },
		func() error { return unix.Symlink("x", m.path(SnapshotDir)) },
		func() error { return unix.Link(m.path("g"), m.path(SnapshotDir)) },
		func() error { return unix.Rename(m.path("g"), m.path(SnapshotDir)) },
	} {
		require.Error(t, op())
	}
	requireContent(t, []byte("live"), m.path("g"))
	// Elsewhere the name is an ordinary one.
	writeFile(t, m.path("d/"+SnapshotDir), []byte("plain"))
	requireContent(t, []byte("plain"), m.path("d/"+SnapshotDir))
}
