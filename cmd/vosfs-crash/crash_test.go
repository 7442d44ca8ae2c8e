package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"vosfs/internal/fusetest"
)

// needFUSE skips a test that mounts unless it runs as root with /dev/fuse
// (fusetest.Require) and has umount to detach a killed daemon's mount.
func needFUSE(t *testing.T) {
	t.Helper()
	fusetest.Require(t)
	if _, err := exec.LookPath("umount"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("crash test cannot run under CI: no umount")
		}
		t.Skip("crash test needs umount")
	}
}

// lineWriter logs each line written to it.
type lineWriter struct {
	t   *testing.T
	mu  sync.Mutex
	buf strings.Builder
	all strings.Builder
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.all.Write(p)
	w.buf.Write(p)
	s := w.buf.String()
	for {
		line, rest, ok := strings.Cut(s, "\n")
		if !ok {
			break
		}
		w.t.Log(line)
		s = rest
	}
	w.buf.Reset()
	w.buf.WriteString(s)
	return len(p), nil
}

// TestCrashCycles runs three crash cycles against real mounts in each mode:
// commit=sync, commit=async, commit=sync over the power-cut FS,
// commit=sync with the kernel writeback cache, and commit=async ended by
// the shutdown ioctl (a flag drawn per cycle).
func TestCrashCycles(t *testing.T) {
	needFUSE(t)
	bin, err := buildVosfs(t.TempDir())
	require.NoError(t, err)
	for _, tc := range []struct {
		name      string
		commit    string
		powerCut  bool
		writeback bool
		shutdown  bool
	}{
		{"sync", "sync", false, false, false},
		{"async", "async", false, false, false},
		{"sync+powercut", "sync", true, false, false},
		{"sync+writeback", "sync", false, true, false},
		{"async+shutdown", "async", false, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seed := time.Now().UnixNano()
			w := &lineWriter{t: t}
			cfg := config{
				Cycles: 3, Seed: seed, Commit: tc.commit, Threads: 3, PowerCut: tc.powerCut, Writeback: tc.writeback,
				Shutdown: tc.shutdown, ShutdownFlag: -1,
				Vosfs: bin, Dir: filepath.Join(t.TempDir(), "run"), Duration: 800 * time.Millisecond, Out: w,
			}
			t.Logf("seed %d", seed)
			cycles, violations, err := run(cfg)
			require.NoError(t, err)
			require.Equal(t, 3, cycles)
			require.Zero(t, violations, "violations (rerun: go run ./cmd/vosfs-crash --cycles 3 --threads 3 --commit %s --seed %d%s%s)",
				tc.commit, seed, map[bool]string{true: " --powercut"}[tc.powerCut], map[bool]string{true: " --writeback-cache"}[tc.writeback]+map[bool]string{true: " --shutdown"}[tc.shutdown])
			out := w.all.String()
			require.Contains(t, out, "cycle 3/3:")
			require.Contains(t, out, "space: data blob ")
			require.Contains(t, out, "final unmount and fsck:")
		})
	}
}
