package fs

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// treeState is everything observable about a tree without reading files
// (reads may move access times): stat fields, symlink targets, xattrs.
type treeState map[string]nodeState

type nodeState struct {
	st     unix.Stat_t
	target string
	xattrs map[string]string
}

func captureTree(t testing.TB, root string) treeState {
	t.Helper()
	out := treeState{}
	require.NoError(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == SnapshotDir {
			return filepath.SkipDir
		}
		ns := nodeState{st: lstat(t, p), xattrs: map[string]string{}}
		ns.st.Dev = 0 // the device number is the mount's
		if d.Type()&fs.ModeSymlink != 0 {
			ns.target, err = os.Readlink(p)
			require.NoError(t, err)
		}
		for _, name := range listXattrs(t, p) {
			buf := make([]byte, 1<<16)
			n, err := unix.Lgetxattr(p, name, buf)
			require.NoError(t, err)
			ns.xattrs[name] = string(buf[:n])
		}
		out[rel] = ns
		return nil
	}))
	return out
}

func TestRemount(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	contents := map[string][]byte{
		"empty":           nil,
		"small":           []byte("small file"),
		"d1/medium":       pattern(1, 100000),
		"d1/d2/large":     pattern(2, 5<<20+3),
		"d1/d2/d3/deep":   []byte("deep"),
		"sparse":          nil, // written below
		"links/original":  []byte("linked"),
		"mode/setuid":     []byte("#!/bin/sh\n"),
		"times/explicit":  []byte("t"),
		"xattrs/withattr": []byte("x"),
	}
	for name, data := range contents {
		require.NoError(t, os.MkdirAll(filepath.Dir(m.path(name)), 0o755))
		writeFile(t, m.path(name), data)
	}
	f, err := os.OpenFile(m.path("sparse"), os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("far"), 3<<30)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	contents["sparse"] = nil

	require.NoError(t, os.Link(m.path("links/original"), m.path("links/second")))
	require.NoError(t, os.Link(m.path("links/original"), m.path("d1/third")))
	require.NoError(t, os.Symlink("../links/original", m.path("d1/symlink")))
	require.NoError(t, unix.Chown(m.path("mode/setuid"), 123, 456))
	require.NoError(t, unix.Chmod(m.path("mode/setuid"), 0o4751))
	require.NoError(t, os.Mkdir(m.path("mode/sticky"), 0o755))
	require.NoError(t, unix.Chmod(m.path("mode/sticky"), 0o1777))
	require.NoError(t, unix.Mkfifo(m.path("mode/fifo"), 0o640))
	require.NoError(t, unix.Mknod(m.path("mode/chr"), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))))
	ts := []unix.Timespec{
		unix.NsecToTimespec(time.Date(2010, 1, 2, 3, 4, 5, 6, time.UTC).UnixNano()),
		unix.NsecToTimespec(time.Date(2011, 1, 2, 3, 4, 5, 7, time.UTC).UnixNano()),
	}
	require.NoError(t, unix.UtimesNano(m.path("times/explicit"), ts))
	require.NoError(t, unix.Setxattr(m.path("xattrs/withattr"), "user.one", []byte("1"), 0))
	require.NoError(t, unix.Setxattr(m.path("xattrs/withattr"), "user.bin", []byte{0, 1, 2}, 0))
	require.NoError(t, unix.Setxattr(m.path("xattrs"), "user.dir", []byte("on dir"), 0))
	require.NoError(t, os.Mkdir(m.path(SnapshotDir+"/before"), 0o755))
	writeFile(t, m.path("small"), []byte("changed after the snapshot"))
	contents["small"] = []byte("changed after the snapshot")

	captureTree(t, m.mnt) // walking reads the directories: settle their access times
	before := captureTree(t, m.mnt)
	m.remount()
	after := captureTree(t, m.mnt)
	require.Equal(t, len(before), len(after))
	for name, b := range before {
		a, ok := after[name]
		require.True(t, ok, name)
		require.Equal(t, b, a, name)
	}
	require.EqualValues(t, 3, after["links/second"].st.Nlink)
	require.Equal(t, after["links/original"].st.Ino, after["d1/third"].st.Ino)
	require.EqualValues(t, 0o4751|unix.S_IFREG, after["mode/setuid"].st.Mode)
	require.EqualValues(t, unix.Mkdev(1, 3), after["mode/chr"].st.Rdev)
	require.Equal(t, ts[1], after["times/explicit"].st.Mtim)
	require.Equal(t, ts[0], after["times/explicit"].st.Atim)

	for name, data := range contents {
		if name == "sparse" {
			continue
		}
		requireContent(t, data, m.path(name))
	}
	b := make([]byte, 3)
	sf, err := os.Open(m.path("sparse"))
	require.NoError(t, err)
	_, err = sf.ReadAt(b, 3<<30)
	require.NoError(t, err)
	require.Equal(t, "far", string(b))
	_, err = sf.ReadAt(b, 1<<30)
	require.NoError(t, err)
	require.Equal(t, []byte{0, 0, 0}, b)
	require.NoError(t, sf.Close())
	requireContent(t, []byte("linked"), m.path("d1/symlink"))
	requireContent(t, []byte("small file"), m.path(SnapshotDir+"/before/small"))
	requireContent(t, pattern(2, 5<<20+3), m.path(SnapshotDir+"/before/d1/d2/large"))

	// An orphan is gone after its close and a remount.
	fd, err := unix.Open(m.path("d1/medium"), unix.O_RDONLY, 0)
	require.NoError(t, err)
	require.NoError(t, os.Remove(m.path("d1/medium")))
	require.Len(t, m.orphans(), 1)
	require.NoError(t, unix.Close(fd))
	m.remount()
	require.Empty(t, m.orphans())
}

// TestOrphanAfterCrash: a file unlinked while open whose close never
// arrives (the filesystem went away first) is removed by the next mount.
func TestOrphanAfterCrash(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	writeFile(t, m.path("f"), pattern(1, 1<<20))
	ino := lstat(t, m.path("f")).Ino
	// Mark it open from the filesystem's side only, as a handle the
	// kernel never released would.
	m.f.mu.Lock()
	m.f.open[ino]++
	m.f.mu.Unlock()
	require.NoError(t, os.Remove(m.path("f")))
	require.Equal(t, []uint64{ino}, m.orphans())
	m.remount()
	require.Empty(t, m.orphans())
	require.False(t, m.objectExists(ino))
}

// TestAggregatesAtMount: the first pass of aggregation starts with the
// mount, not an interval later, so a daemon that never lives a whole
// interval still frees the versions nobody can see.
func TestAggregatesAtMount(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	for i := 0; i < 50; i++ {
		writeFile(t, m.path("f"), pattern(byte(i), 4096))
	}
	m.remount()
	require.Eventually(t, func() bool { return m.f.Stats().Store.VersionsDropped > 0 },
		aggregateInterval/2, 10*time.Millisecond, "versions dropped within half an interval of the mount")
	requireContent(t, pattern(49, 4096), m.path("f"))
}
