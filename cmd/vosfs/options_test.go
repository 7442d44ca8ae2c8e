package main

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHelperArgs(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want []string
		err  string
	}{
		{in: []string{"/pool", "/mnt"}, want: []string{"--", "/pool", "/mnt"}},
		{in: []string{"/pool", "/mnt", "-o", "rw,commit=sync"}, want: []string{"-o", "rw,commit=sync", "--", "/pool", "/mnt"}},
		{in: []string{"-o", "commit=async", "/pool", "/mnt"}, want: []string{"-o", "commit=async", "--", "/pool", "/mnt"}},
		{in: []string{"/pool", "/mnt", "-ocommit=async"}, want: []string{"-o", "commit=async", "--", "/pool", "/mnt"}},
		{in: []string{"/pool", "/mnt", "-o", "rw", "-o", "noatime"}, want: []string{"-o", "rw,noatime", "--", "/pool", "/mnt"}},
		{in: []string{"/pool", "/mnt", "-n", "-s", "-v", "-o", "defaults"}, want: []string{"-o", "defaults", "--", "/pool", "/mnt"}},
		{in: []string{"--", "-pool", "/mnt"}, want: []string{"--", "-pool", "/mnt"}},
		{in: []string{"/pool", "/mnt", "-f", "-o", "rw"}, want: []string{"--fake", "-o", "rw", "--", "/pool", "/mnt"}},
		{in: []string{"/pool", "/mnt", "-fnv"}, want: []string{"--fake", "--", "/pool", "/mnt"}},
		{in: []string{"-sn", "/pool", "/mnt"}, want: []string{"--", "/pool", "/mnt"}},
		{in: []string{"/pool", "/mnt", "-t", "fuse.vosfs", "-o", "rw"}, want: []string{"-o", "rw", "--", "/pool", "/mnt"}},
		{in: []string{"/pool", "/mnt", "-t", "ext4"}, err: `mounts type fuse.vosfs, not "ext4"`},
		{in: []string{"/pool", "/mnt", "-t"}, err: "-t needs a type"},
		{in: []string{"/pool", "/mnt", "-fx"}, err: `unknown mount helper flag "-fx"`},
		{in: []string{"/pool"}, err: "got 1 argument"},
		{in: []string{"/pool", "/mnt", "/other"}, err: "got 3 argument"},
		{in: []string{"/pool", "/mnt", "-o"}, err: "-o needs a list"},
		{in: []string{"/pool", "/mnt", "-x"}, err: `unknown mount helper flag "-x"`},
	} {
		t.Run(fmt.Sprint(tc.in), func(t *testing.T) {
			got, err := helperArgs(tc.in)
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				var ue *usageError
				assert.True(t, errors.As(err, &ue), "not a usage error: %v", err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestHelperName(t *testing.T) {
	assert.True(t, isHelperName("/sbin/mount.fuse.vosfs"))
	assert.True(t, isHelperName("mount.fuse.vosfs"))
	assert.True(t, isHelperName("/usr/sbin/mount.vosfs"))
	assert.False(t, isHelperName("/usr/local/bin/vosfs"))
	assert.False(t, isHelperName("mount.fuse"))
}

func TestParseMountinfo(t *testing.T) {
	text := `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
97 22 0:45 / /mnt/my\040pool rw,nosuid,nodev,relatime shared:50 - fuse.vosfs /var/lib/vosfs/my\040pool rw,user_id=0,group_id=0
98 22 0:46 / /mnt/plain rw,relatime - fuse.vosfs /srv/pool rw
garbage line
`
	got := parseMountinfo(text)
	require.Len(t, got, 3)
	assert.Equal(t, mountEntry{mountpoint: "/", fstype: "ext4", source: "/dev/sda1"}, got[0])
	assert.Equal(t, mountEntry{mountpoint: "/mnt/my pool", fstype: "fuse.vosfs", source: "/var/lib/vosfs/my pool"}, got[1])
	assert.Equal(t, mountEntry{mountpoint: "/mnt/plain", fstype: "fuse.vosfs", source: "/srv/pool"}, got[2])

	m, ok := mountAt(got, "/mnt/my pool")
	assert.True(t, ok)
	assert.Equal(t, "/var/lib/vosfs/my pool", m.source)
	_, ok = mountAt(got, "/mnt/none")
	assert.False(t, ok)
	assert.Equal(t, `a\b`, unescapeMountinfo(`a\134b`))
	assert.Equal(t, `trailing\04`, unescapeMountinfo(`trailing\04`))
}

func TestFlattenErrors(t *testing.T) {
	a, b, c := errors.New("a broken"), errors.New("b broken"), errors.New("c broken")
	err := errors.Join(a, fmt.Errorf("allocator: %w", errors.Join(b, c)))
	assert.Equal(t, []string{"a broken", "allocator: b broken", "c broken"}, flattenErrors(err))
	// Two %w are one problem, not two.
	err = fmt.Errorf("%w: %w", errors.New("bad pool"), errors.New("short header"))
	assert.Equal(t, []string{"bad pool: short header"}, flattenErrors(err))
}

func TestSnapshotName(t *testing.T) {
	assert.NoError(t, checkSnapshotName("daily-2024-01-01"))
	for _, bad := range []string{"", ".", "..", "a/b", "nul\x00"} {
		assert.Error(t, checkSnapshotName(bad), "%q", bad)
	}
}
