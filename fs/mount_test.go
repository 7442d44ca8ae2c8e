package fs

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/stretchr/testify/require"

	"vosfs/blob"
	"vosfs/internal/fusetest"
	"vosfs/pool"
)

// mounted is a filesystem mounted for a test.
type mounted struct {
	t    testing.TB
	dir  string // pool directory
	mnt  string // mount point
	opts Options
	cfg  pool.Config
	p    *pool.Pool
	f    *FS
	srv  *fuse.Server
}

func testPoolConfig() pool.Config {
	return pool.Config{DataSize: 1 << 30, MetaSize: 64 << 20, WALSize: 16 << 20}
}

// mountTest creates a pool in a temporary directory and mounts it; it is
// unmounted, checked and closed on cleanup.
func mountTest(t testing.TB, opts Options) *mounted {
	return mountTestConfig(t, opts, testPoolConfig())
}

// mountTestConfig is mountTest on a pool made with cfg.
func mountTestConfig(t testing.TB, opts Options, cfg pool.Config) *mounted {
	fusetest.Require(t)
	// VOSFS_TEST_COMMIT=async runs the suite's default mounts with
	// commit=async.
	if os.Getenv("VOSFS_TEST_COMMIT") == "async" {
		opts.Commit = CommitAsync
	}
	// VOSFS_TEST_WRITEBACK=1 runs them with the kernel writeback cache.
	if os.Getenv("VOSFS_TEST_WRITEBACK") == "1" {
		opts.WritebackCache = true
	}
	base := t.TempDir()
	m := &mounted{t: t, dir: filepath.Join(base, "pool"), mnt: filepath.Join(base, "mnt"), opts: opts, cfg: cfg}
	require.NoError(t, os.Mkdir(m.mnt, 0o755))
	require.NoError(t, pool.Create(blob.NewOSFS(true), m.dir, cfg))
	m.mount()
	t.Cleanup(func() {
		if m.srv != nil {
			m.unmount()
		}
	})
	return m
}

func (m *mounted) mount() {
	p, err := pool.Open(blob.NewOSFS(true), m.dir, pool.Options{})
	require.NoError(m.t, err)
	f, err := New(p, m.opts)
	require.NoError(m.t, err)
	srv, err := f.Mount(m.mnt)
	require.NoError(m.t, err)
	require.NoError(m.t, srv.WaitMount())
	m.p, m.f, m.srv = p, f, srv
}

// unmount unmounts, checks the filesystem and closes the pool.
func (m *mounted) unmount() {
	require.NoError(m.t, m.srv.Unmount())
	m.srv.Wait()
	m.srv = nil
	require.NoError(m.t, m.f.Check(), "fsck after unmount")
	require.NoError(m.t, m.f.Close())
	require.NoError(m.t, m.p.Close())
}

func (m *mounted) remount() {
	m.unmount()
	m.mount()
}

func (m *mounted) path(name string) string { return filepath.Join(m.mnt, name) }

func TestMountSmoke(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	require.NoError(t, os.WriteFile(m.path("hello"), []byte("hello, world\n"), 0o644))
	b, err := os.ReadFile(m.path("hello"))
	require.NoError(t, err)
	require.Equal(t, "hello, world\n", string(b))
	require.NoError(t, os.Mkdir(m.path("dir"), 0o755))
	require.NoError(t, os.Rename(m.path("hello"), m.path("dir/moved")))
	ents, err := os.ReadDir(m.path("dir"))
	require.NoError(t, err)
	require.Len(t, ents, 1)
	require.Equal(t, "moved", ents[0].Name())
	m.remount()
	b, err = os.ReadFile(m.path("dir/moved"))
	require.NoError(t, err)
	require.Equal(t, "hello, world\n", string(b))
}
