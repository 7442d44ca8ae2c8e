package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"vosfs/internal/fusetest"
)

// TestStatsLive: vosfs stats on a real mount under writes prints the
// header and --count rows, whose rates move with the work.
func TestStatsLive(t *testing.T) {
	fusetest.Require(t)
	dir, mp, _ := mountSmall(t)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = os.WriteFile(filepath.Join(mp, fmt.Sprintf("f%d", i%100)), []byte("some bytes"), 0o644)
		}
	}()
	r := vosfs(t, "stats", "--count", "2", "--interval", "300ms", mp)
	close(stop)
	<-done
	require.Equal(t, 0, r.code, "%v", r)
	assert.Empty(t, r.stderr)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	require.Len(t, lines, 3, r.stdout)
	assert.Equal(t, statsColumns, strings.Fields(lines[0]))
	col := func(name string) int {
		for i, c := range statsColumns {
			if c == name {
				return i
			}
		}
		t.Fatalf("no column %s", name)
		return -1
	}
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		require.Len(t, f, len(statsColumns), line)
		_, err := time.Parse("15:04:05", f[0])
		assert.NoError(t, err, line)
		ops, err := strconv.Atoi(f[col("ops/s")])
		require.NoError(t, err, line)
		assert.Positive(t, ops, "no operations seen under writes: %s", line)
		commits, err := strconv.Atoi(f[col("commit/s")])
		require.NoError(t, err, line)
		assert.Positive(t, commits, line)
		assert.Equal(t, "0", f[col("err/s")], line)
		assert.True(t, strings.HasSuffix(f[col("log/s")], "iB/s"), line)
		assert.True(t, strings.HasSuffix(f[col("log-fill")], "%"), line)
		assert.Equal(t, "ok", f[col("state")], line)
	}

	// By pool directory, once; then refused once unmounted.
	r = vosfs(t, "stats", "--count", "1", "--interval", "50ms", dir)
	require.Equal(t, 0, r.code, "%v", r)
	assert.Len(t, strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n"), 2)
	r = vosfs(t, "umount", mp)
	require.Equal(t, 0, r.code, "%v", r)
	r = vosfs(t, "stats", "--count", "1", dir)
	assert.Equal(t, 1, r.code, "%v", r)
	assert.Contains(t, r.stderr, "vosfs: pool "+dir+" is not mounted: 'vosfs stats' shows a daemon's activity")
}

func TestStatsUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"stats"}, "vosfs stats: missing MOUNTPOINT or POOLDIR"},
		{[]string{"stats", "--count", "-1", "/x"}, "vosfs stats: --count -1 is negative"},
		{[]string{"stats", "--interval", "1ms", "/x"}, "vosfs stats: --interval 1ms is below 10ms"},
		{[]string{"stats", "--count", "x", "/x"}, `vosfs stats: invalid argument "x" for "--count" flag`},
	} {
		r := vosfs(t, tc.args...)
		assert.Equal(t, 2, r.code, "%v", r)
		assert.Contains(t, r.stderr, tc.msg)
		assert.Contains(t, r.stderr, "Usage:\n  vosfs stats [flags] MOUNTPOINT|POOLDIR\n")
	}
}
