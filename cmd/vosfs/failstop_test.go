package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"vosfs/internal/fusetest"
)

// startForeground runs `vosfs mount --foreground dir mp` and waits until
// the mount is live; the returned channel gets the command's exit.
func startForeground(t *testing.T, dir, mp string) (*exec.Cmd, <-chan error, *bytes.Buffer) {
	t.Helper()
	return startForegroundCmd(t, exec.Command(vosfsBin, "mount", "--foreground", dir, mp), mp)
}

// startForegroundCmd starts cmd, a foreground mount on mp, and waits until
// the mount is live.
func startForegroundCmd(t *testing.T, cmd *exec.Cmd, mp string) (*exec.Cmd, <-chan error, *bytes.Buffer) {
	t.Helper()
	stderr := new(bytes.Buffer)
	cmd.Stderr = stderr
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, ok := mounted(t, mp); ok {
			return cmd, done, stderr
		}
		select {
		case err := <-done:
			t.Fatalf("foreground mount ended: %v\n%s", err, stderr)
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("not mounted after 30 s\n%s", stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// writeSynced writes b to name and fsyncs it: a nil error is the
// filesystem's acknowledgement that b is durable.
func writeSynced(name string, b []byte) error {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// A sparse pool on a host filesystem that fills up: the first write the
// host refuses (ENOSPC) stops the pool — that write and every later
// operation, reads included, get EIO, the daemon logs the failure once with
// blob, offset and errno, `vosfs stat` shows it, and on unmount the daemon
// exits 1 saying so. Once the host has room again, the pool mounts and every
// file whose write and fsync succeeded reads back exactly.
func TestMountHostDiskFull(t *testing.T) {
	fusetest.Require(t)
	host := filepath.Join(t.TempDir(), "host")
	require.NoError(t, os.Mkdir(host, 0o755))
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", host).CombinedOutput()
	require.NoError(t, err, "mount a small tmpfs: %s", out)
	t.Cleanup(func() { exec.Command("umount", "-l", host).Run() })

	dir := filepath.Join(host, "pool")
	r := vosfs(t, "mkfs", "--size", "1GiB", "--meta-size", "16MiB", "--wal-size", "16MiB", dir)
	require.Equal(t, 0, r.code, "%v", r)
	mp := filepath.Join(t.TempDir(), "mnt")
	require.NoError(t, os.Mkdir(mp, 0o755))
	cleanupMount(t, dir, mp)
	cmd, done, stderr := startForeground(t, dir, mp)

	// Fill: 1 MiB files, each written and fsync'd, until the host is full.
	acked := map[string][]byte{}
	var failed error
	for i := 0; i < 200 && failed == nil; i++ {
		b := make([]byte, 1<<20)
		rand.Read(b)
		name := fmt.Sprintf("f%03d", i)
		if err := writeSynced(filepath.Join(mp, name), b); err != nil {
			failed = err
			break
		}
		acked[name] = b
	}
	require.Error(t, failed, "200 MiB fitted on a 40 MiB host filesystem")
	require.ErrorIs(t, failed, syscall.EIO, "the write the host refused gets EIO: the pool is stopped, not full")
	require.NotEmpty(t, acked)

	// Everything after it gets EIO too, reads included.
	for name := range acked {
		_, err := os.ReadFile(filepath.Join(mp, name))
		require.ErrorIs(t, err, syscall.EIO, "read %s of a stopped pool", name)
		break
	}
	require.ErrorIs(t, os.WriteFile(filepath.Join(mp, "small"), []byte("x"), 0o644), syscall.EIO)
	require.ErrorIs(t, os.Mkdir(filepath.Join(mp, "d"), 0o755), syscall.EIO)

	r = vosfs(t, "stat", mp)
	require.Equal(t, 0, r.code, "%v", r)
	assert.Regexp(t, `state +STOPPED at \S+ \(fail-stop, every operation gets EIO\): write of data\.blob at offset \d+ \(\d+ bytes\) failed: errno 28 \(ENOSPC\)`, r.stdout)
	assert.Regexp(t, `blob errors +1 failed writes or syncs, 0 failed reads`, r.stdout)
	r = vosfs(t, "stat", "--json", mp)
	require.Equal(t, 0, r.code, "%v", r)
	var rep statReport
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), r.stdout)
	require.NotNil(t, rep.Stats.Pool.Failure)
	assert.Equal(t, "data.blob", rep.Stats.Pool.Failure.Blob)
	assert.Equal(t, syscall.ENOSPC, rep.Stats.Pool.Failure.Errno)

	unmount(t, mp)
	select {
	case err := <-done:
		var exit *exec.ExitError
		require.True(t, errors.As(err, &exit), "the daemon of a stopped pool exits non-zero: %v\n%s", err, stderr)
		assert.Equal(t, 1, exit.ExitCode())
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		t.Fatalf("daemon did not exit after unmount\n%s", stderr)
	}
	log := stderr.String()
	assert.Equal(t, 1, strings.Count(log, "FAIL-STOP"), "the failure is logged once:\n%s", log)
	assert.Contains(t, log, "FAIL-STOP: write of data.blob at offset")
	assert.Contains(t, log, "stopped while mounted and was not closed cleanly")
	assert.NotContains(t, log, "closed clean in")
	assert.Contains(t, log, "the pool is stopped: nothing is written back")

	// Room again: the pool recovers, and every acknowledged file is there.
	out, err = exec.Command("mount", "-o", "remount,size=200m", host).CombinedOutput()
	require.NoError(t, err, "grow the tmpfs: %s", out)
	r = vosfs(t, "mount", dir, mp)
	require.Equal(t, 0, r.code, "%v\nlog:\n%s", r, logTail(filepath.Join(dir, logName), 0, 30))
	pid := daemonPID(t, dir)
	for name, want := range acked {
		got, err := os.ReadFile(filepath.Join(mp, name))
		require.NoError(t, err, name)
		require.True(t, bytes.Equal(want, got), "%s differs after recovery", name)
	}
	require.NoError(t, writeSynced(filepath.Join(mp, "after"), []byte("works again\n")))
	unmount(t, mp)
	waitExit(t, dir, pid)
	r = vosfs(t, "fsck", dir)
	assert.Equal(t, 0, r.code, "%v", r)
}

// Real-mount fault injection (faultinject=, over the power-cut simulator):
// a failed sync of the log, write of the data blob or write of the
// metadata blob (at the unmount's checkpoint) stops the pool; the failing
// operation and every later one get EIO, the daemon logs it once and exits
// 1, and the next mount — with what the simulator's synced blocks left —
// holds every file whose write and fsync succeeded.
func TestMountFaultInjection(t *testing.T) {
	fusetest.Require(t)
	for _, fault := range []string{"wal.blob:sync:4", "data.blob:write:3", "meta.blob:write:1"} {
		t.Run(fault, func(t *testing.T) {
			dir := mkfsSmall(t)
			mp := filepath.Join(t.TempDir(), "mnt")
			require.NoError(t, os.Mkdir(mp, 0o755))
			cleanupMount(t, dir, mp)
			cmd := exec.Command(vosfsBin, "mount", "--foreground", "-o", "powercut=1,faultinject="+fault, dir, mp)
			_, done, stderr := startForegroundCmd(t, cmd, mp)

			acked := map[string][]byte{}
			var failed error
			for i := 0; i < 10; i++ {
				b := make([]byte, 64<<10)
				rand.Read(b)
				name := fmt.Sprintf("f%d", i)
				if failed = writeSynced(filepath.Join(mp, name), b); failed != nil {
					break
				}
				acked[name] = b
			}
			if !strings.HasPrefix(fault, "meta.blob") {
				require.Error(t, failed, "ten fsync'd writes passed the fault")
			}
			if failed != nil {
				require.ErrorIs(t, failed, syscall.EIO)
				require.ErrorIs(t, os.WriteFile(filepath.Join(mp, "later"), []byte("x"), 0o644), syscall.EIO)
			}
			unmount(t, mp)
			select {
			case err := <-done:
				var exit *exec.ExitError
				require.True(t, errors.As(err, &exit), "the daemon of a stopped pool exits non-zero: %v\n%s", err, stderr)
				assert.Equal(t, 1, exit.ExitCode())
			case <-time.After(time.Minute):
				cmd.Process.Kill()
				t.Fatalf("daemon did not exit after unmount\n%s", stderr)
			}
			log := stderr.String()
			blobName, op, _ := strings.Cut(fault, ":")
			op, _, _ = strings.Cut(op, ":")
			assert.Equal(t, 1, strings.Count(log, "FAIL-STOP"), "the failure is logged once:\n%s", log)
			assert.Contains(t, log, "FAIL-STOP: "+op+" of "+blobName)
			assert.Contains(t, log, "errno 5 (EIO)")

			r := vosfs(t, "mount", dir, mp)
			require.Equal(t, 0, r.code, "%v\nlog:\n%s", r, logTail(filepath.Join(dir, logName), 0, 30))
			pid := daemonPID(t, dir)
			for name, want := range acked {
				got, err := os.ReadFile(filepath.Join(mp, name))
				require.NoError(t, err, name)
				require.True(t, bytes.Equal(want, got), "%s differs after recovery", name)
			}
			unmount(t, mp)
			waitExit(t, dir, pid)
			r = vosfs(t, "fsck", dir)
			assert.Equal(t, 0, r.code, "%v", r)
		})
	}
}
