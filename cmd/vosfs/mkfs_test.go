package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"vosfs/internal/fusetest"
	"vosfs/pool"
)

// slowPool is a geometry whose zero-filled creation takes seconds: long
// enough to be interrupted.
var slowPool = []string{"--fill", "zero", "--size", "8G", "--meta-size", "16M", "--wal-size", "16M"}

// startedCreating waits until the creation run by s has made the data
// blob (its first file) and is writing zeros.
func startedCreating(t *testing.T, s *started, dir string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, pool.DataFile)); err == nil {
			break
		}
		require.True(t, s.running(10*time.Millisecond), "ended before making the pool: %s", s.stderr.String())
		require.False(t, time.Now().After(deadline), "no data blob after 30 s")
	}
	require.True(t, s.running(200*time.Millisecond), "the creation ended before it could be interrupted: %s", s.stderr.String())
}

func assertNoPoolFiles(t *testing.T, dir string) {
	t.Helper()
	for _, name := range poolFiles {
		assert.NoFileExists(t, filepath.Join(dir, name))
	}
}

// TestMkfsInterrupted: SIGINT, SIGTERM or SIGHUP during mkfs removes what
// it made; the next mkfs needs no --force.
func TestMkfsInterrupted(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "pool")
			s := start(t, append(append([]string{"mkfs"}, slowPool...), dir)...)
			startedCreating(t, s, dir)
			require.NoError(t, s.cmd.Process.Signal(sig))
			code := s.wait(t, 30*time.Second)
			assert.Equal(t, 128+int(sig), code, s.stderr.String())
			assert.Equal(t, "vosfs: "+sig.String()+": creation of the pool in "+dir+" interrupted; removed what it made\n", s.stderr.String())
			assert.Empty(t, s.stdout.String())
			assertNoPoolFiles(t, dir)
			r := vosfs(t, append(append([]string{"mkfs"}, smallPool...), dir)...)
			require.Equal(t, 0, r.code, "%v", r)
			assert.Empty(t, r.stderr)
		})
	}
}

// TestMkfsKilledHalfMade: a mkfs killed (SIGKILL, a crash) leaves a
// half-made pool, which the next mkfs replaces without --force, saying
// so; a whole pool with a damaged log header is not taken for one.
func TestMkfsKilledHalfMade(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pool")
	s := start(t, append(append([]string{"mkfs"}, slowPool...), dir)...)
	startedCreating(t, s, dir)
	require.NoError(t, s.cmd.Process.Kill())
	s.wait(t, 30*time.Second)
	assert.FileExists(t, filepath.Join(dir, pool.DataFile))
	assert.True(t, halfMadePool(dir))

	r := vosfs(t, "fsck", dir)
	assert.Equal(t, 1, r.code, "%v", r)
	r = vosfs(t, append(append([]string{"mkfs"}, smallPool...), dir)...)
	require.Equal(t, 0, r.code, "%v", r)
	assert.Equal(t, "vosfs: "+dir+" holds a half-made pool (its creation was interrupted before the log was written); replacing it\n", r.stderr)
	assert.Contains(t, r.stdout, "created pool "+dir+": data 64 MiB")
	assert.False(t, halfMadePool(dir))
	r = vosfs(t, "fsck", dir)
	require.Equal(t, 0, r.code, "%v", r)

	// A log header that was written and then damaged is a whole pool.
	walPath := filepath.Join(dir, pool.WALFile)
	f, err := os.OpenFile(walPath, os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte{0xff}, 100)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	assert.False(t, halfMadePool(dir))
	r = vosfs(t, "mkfs", dir)
	assert.Equal(t, 1, r.code, "%v", r)
	assert.Contains(t, r.stderr, "already holds a pool; use --force")

	// A log file cut before its header: half-made again.
	require.NoError(t, os.Truncate(walPath, 0))
	assert.True(t, halfMadePool(dir))
	require.NoError(t, os.Remove(walPath))
	assert.True(t, halfMadePool(dir))
}

// TestMountMkfsInterrupted: mount --mkfs interrupted while it creates the
// pool removes it and mounts nothing; killed, the next mount --mkfs
// replaces the half-made pool and mounts.
func TestMountMkfsInterrupted(t *testing.T) {
	fusetest.Require(t)
	base := t.TempDir()
	dir, mp := filepath.Join(base, "pool"), filepath.Join(base, "mnt")
	cleanupMount(t, dir, mp)
	s := start(t, append(append([]string{"mount", "--mkfs"}, slowPool...), dir, mp)...)
	startedCreating(t, s, dir)
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGINT))
	assert.Equal(t, 130, s.wait(t, 30*time.Second), s.stderr.String())
	assert.Contains(t, s.stderr.String(), "creation of the pool in "+dir+" interrupted; removed what it made")
	assertNoPoolFiles(t, dir)
	_, ok := mounted(t, mp)
	assert.False(t, ok)

	s = start(t, append(append([]string{"mount", "--mkfs"}, slowPool...), dir, mp)...)
	startedCreating(t, s, dir)
	require.NoError(t, s.cmd.Process.Kill())
	s.wait(t, 30*time.Second)
	r := vosfs(t, append(append([]string{"mount", "--mkfs"}, smallPool...), dir, mp)...)
	require.Equal(t, 0, r.code, "%v", r)
	assert.Equal(t, "vosfs: "+dir+" holds a half-made pool (its creation was interrupted before the log was written); replacing it\n", r.stderr)
	assert.Empty(t, r.stdout)
	_, ok = mounted(t, mp)
	require.True(t, ok)
	require.NoError(t, os.WriteFile(filepath.Join(mp, "f"), []byte("x"), 0o644))
	r = vosfs(t, "umount", mp)
	require.Equal(t, 0, r.code, "%v", r)
	r = vosfs(t, "fsck", dir)
	require.Equal(t, 0, r.code, "%v", r)
	assert.Contains(t, r.stdout, "data 0 B used / 64 MiB free")
}

// TestMkfsSparseIsQuick: the default (sparse) mkfs of a large pool takes
// well under a second and little disk space; --fill zero takes it all.
func TestMkfsSparseIsQuick(t *testing.T) {
	for _, size := range []string{"8G", "1T"} {
		dir := filepath.Join(t.TempDir(), "pool")
		began := time.Now()
		r := vosfs(t, "mkfs", "--size", size, dir)
		took := time.Since(began)
		require.Equal(t, 0, r.code, "%v", r)
		t.Logf("mkfs --size %s: %s", size, took)
		assert.Less(t, took, 5*time.Second, "a sparse mkfs of %s", size)
		var used int64
		for _, name := range poolFiles {
			var st syscall.Stat_t
			require.NoError(t, syscall.Stat(filepath.Join(dir, name), &st))
			used += st.Blocks * 512
		}
		assert.Less(t, used, int64(96<<20), "a sparse pool of %s takes %d bytes on disk", size, used)
	}
}
