package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/stretchr/testify/require"

	"vosfs/internal/fusetest"
)

// TestMount: files written, renamed across directories and read back
// through the mount, with and without passthrough; without it every node
// is an fdNode, whose files decline passthrough.
func TestMount(t *testing.T) {
	fusetest.Require(t)
	for _, pt := range []bool{true, false} {
		t.Run(map[bool]string{true: "passthrough", false: "no-passthrough"}[pt], func(t *testing.T) {
			orig, mnt := t.TempDir(), t.TempDir()
			srv, root, err := mount(orig, mnt, 1<<20, pt)
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, srv.Unmount()) })
			require.NoError(t, srv.WaitMount())

			data := bytes.Repeat([]byte("0123456789abcdef"), 100000)
			require.NoError(t, os.Mkdir(filepath.Join(mnt, "a"), 0o755))
			require.NoError(t, os.Mkdir(filepath.Join(mnt, "b"), 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(mnt, "a", "f"), data, 0o644))
			require.NoError(t, os.Rename(filepath.Join(mnt, "a", "f"), filepath.Join(mnt, "b", "g")))
			got, err := os.ReadFile(filepath.Join(mnt, "b", "g"))
			require.NoError(t, err)
			require.Equal(t, data, got)
			got, err = os.ReadFile(filepath.Join(orig, "b", "g"))
			require.NoError(t, err)
			require.Equal(t, data, got)
			_, err = os.Stat(filepath.Join(orig, "a", "f"))
			require.ErrorIs(t, err, os.ErrNotExist)

			want := any(&gofs.LoopbackNode{})
			if !pt {
				want = &fdNode{}
			}
			require.IsType(t, want, root)
			b := root.EmbeddedInode().GetChild("b")
			require.NotNil(t, b)
			require.IsType(t, want, b.Operations())
			require.NotNil(t, b.GetChild("g"))
			require.IsType(t, want, b.GetChild("g").Operations())
		})
	}
}

func TestNoPassthrough(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "f")
	require.NoError(t, err)
	defer f.Close()
	fh := noPassthrough(gofs.NewLoopbackFileFromOS(f))
	pt, ok := fh.(gofs.FilePassthroughFder)
	require.True(t, ok)
	_, ok = pt.PassthroughFd()
	require.False(t, ok, "an fdFile declines passthrough")
	require.IsType(t, &fdFile{}, fh)
}
