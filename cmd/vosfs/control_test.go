package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"vosfs/fs"
)

func TestControlSocket(t *testing.T) {
	short := t.TempDir()
	long := filepath.Join(t.TempDir(), strings.Repeat("a-long-directory-name/", 6))
	require.NoError(t, os.MkdirAll(long, 0o700))
	require.Greater(t, len(filepath.Join(long, sockName)), maxSockPath)

	for _, dir := range []string{short, long} {
		var want fs.Stats
		want.Ops, want.Errors = 42, 3
		want.Store.Conflicts = 7
		want.Pool.Commits = 99
		want.Pool.Log.ThrottleWait = 1500
		want.Pool.Heap.Total = 1 << 20

		// A stale socket of a dead daemon is replaced.
		require.NoError(t, os.WriteFile(filepath.Join(dir, sockName), nil, 0o600))
		d := &fakeDaemon{stats: want}
		ctl, err := listenControl(dir, d, log.New(io.Discard, "", 0))
		require.NoError(t, err, dir)
		fi, err := os.Stat(filepath.Join(dir, sockName))
		require.NoError(t, err)
		assert.Equal(t, os.ModeSocket|0o600, fi.Mode()&(os.ModeType|os.ModePerm))

		got, err := queryStats(dir)
		require.NoError(t, err)
		assert.Equal(t, want, got)

		// A remount's switch reaches the filesystem, and its refusal
		// comes back.
		require.NoError(t, setReadOnly(dir, true))
		assert.True(t, d.readOnly())
		require.NoError(t, setReadOnly(dir, false))
		assert.False(t, d.readOnly())
		d.mu.Lock()
		d.err = errors.New("orphans: input/output error")
		d.mu.Unlock()
		assert.EqualError(t, setReadOnly(dir, false), "daemon: orphans: input/output error")

		// Anything but "stats" gets an error line.
		addr, release, err := sockAddr(dir)
		require.NoError(t, err)
		conn, err := net.Dial("unix", addr)
		require.NoError(t, err)
		_, err = io.WriteString(conn, "shutdown\n")
		require.NoError(t, err)
		line, err := bufio.NewReader(conn).ReadString('\n')
		require.NoError(t, err)
		assert.Equal(t, "error unknown command \"shutdown\"\n", line)
		conn.Close()
		release()

		require.NoError(t, ctl.Close())
		assert.NoFileExists(t, filepath.Join(dir, sockName))
		_, err = queryStats(dir)
		assert.Error(t, err)
	}
}

// fakeDaemon is what the control socket reaches in a test.
type fakeDaemon struct {
	stats fs.Stats
	mu    sync.Mutex
	ro    bool  // guarded by mu
	err   error // guarded by mu: SetReadOnly's
}

func (d *fakeDaemon) Stats() fs.Stats { return d.stats }

func (d *fakeDaemon) readOnly() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ro
}

func (d *fakeDaemon) SetReadOnly(ro bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return d.err
	}
	d.ro = ro
	return nil
}

func TestControlProfile(t *testing.T) {
	dir := t.TempDir()
	ctl, err := listenControl(dir, &fakeDaemon{}, log.New(io.Discard, "", 0))
	require.NoError(t, err)
	defer ctl.Close()

	for _, kind := range []string{"cpu", "mutex", "block", "heap", "goroutine"} {
		var buf bytes.Buffer
		n, err := queryProfile(dir, kind, time.Second, &buf)
		require.NoError(t, err, kind)
		require.Equal(t, int64(buf.Len()), n)
		// A pprof profile is a gzipped protocol buffer.
		zr, err := gzip.NewReader(&buf)
		require.NoError(t, err, kind)
		body, err := io.ReadAll(zr)
		require.NoError(t, err, kind)
		require.NotEmpty(t, body, kind)
	}

	var buf bytes.Buffer
	_, err = queryProfile(dir, "wall", time.Second, &buf)
	require.EqualError(t, err, `daemon: unknown profile kind "wall" (cpu, mutex, block, heap, goroutine)`)
	_, err = queryProfile(dir, "cpu", 0, &buf)
	require.EqualError(t, err, `daemon: profile duration "0" is not 1..600 seconds`)
	require.Zero(t, buf.Len())

	// One at a time: the profiler is process-wide.
	done := make(chan error)
	go func() {
		_, err := queryProfile(dir, "cpu", 2*time.Second, io.Discard)
		done <- err
	}()
	time.Sleep(500 * time.Millisecond)
	_, err = queryProfile(dir, "mutex", time.Second, &buf)
	require.EqualError(t, err, "daemon: another profile is running")
	require.NoError(t, <-done)
}
