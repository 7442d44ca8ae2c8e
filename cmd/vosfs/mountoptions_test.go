package main

import (
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"vosfs/fs"
)

var updateOptions = flag.Bool("update-options", false, "rewrite the table of mount options in README.md from the code's")

// TestMountOptionTable runs every option of the table: accepted with its
// effect on the options, accepted and ignored, or refused with its exact
// message.
func TestMountOptionTable(t *testing.T) {
	seed := int64(42)
	covered := map[string]bool{}
	for _, tc := range []struct {
		opt  string
		want func(c *mountConfig) // the change to the defaults; nil: none
	}{
		{"commit=sync", func(c *mountConfig) { c.fs.Commit = fs.CommitSync }},
		{"commit=async", func(c *mountConfig) { c.fs.Commit = fs.CommitAsync }},
		{"threshold=64KiB", func(c *mountConfig) { c.fs.Threshold = 64 << 10 }},
		{"threshold=512", func(c *mountConfig) { c.fs.Threshold = 512 }},
		{"threshold=1MiB", func(c *mountConfig) { c.fs.Threshold = 1 << 20 }},
		{"entry_timeout=0", func(c *mountConfig) { c.fs.EntryTimeout = 0 }},
		{"attr_timeout=0.5", func(c *mountConfig) { c.fs.AttrTimeout = 500 * time.Millisecond }},
		{"writeback_cache", func(c *mountConfig) { c.fs.WritebackCache = true }},
		{"writeback_cache=on", func(c *mountConfig) { c.fs.WritebackCache = true }},
		{"writeback_cache=1", func(c *mountConfig) { c.fs.WritebackCache = true }},
		{"writeback_cache,writeback_cache=off", nil},
		{"writeback_cache,nowriteback_cache", nil},
		{"max_write=4KiB", func(c *mountConfig) { c.fs.MaxWrite = 4 << 10 }},
		{"max_write=128KiB", func(c *mountConfig) { c.fs.MaxWrite = 128 << 10 }},
		{"noallow_other", func(c *mountConfig) { c.fs.AllowOther = false }},
		{"noallow_other,allow_other", func(c *mountConfig) { c.fs.AllowOther = true }},
		{"debug", func(c *mountConfig) { c.fs.Debug = true }},
		{"fsname=evalfs_test", func(c *mountConfig) { c.fs.FsName = "evalfs_test" }},
		{"default_permissions", nil},
		{"ro", func(c *mountConfig) { c.fs.ReadOnly = true }},
		{"ro,rw", nil},
		{"noatime", func(c *mountConfig) { c.fs.NoAtime = true }},
		{"noatime,atime", nil},
		{"noatime,relatime", nil},
		{"strictatime", func(c *mountConfig) { c.fs.StrictAtime = true }},
		{"norelatime", func(c *mountConfig) { c.fs.StrictAtime = true }},
		{"strictatime,noatime", func(c *mountConfig) { c.fs.NoAtime = true }},
		{"dev", nil}, {"nodev", nil}, {"suid", nil}, {"nosuid", nil}, {"exec", nil}, {"noexec", nil},
		{"diratime", nil}, {"nodiratime", nil}, {"lazytime", nil}, {"nolazytime", nil},
		{"silent", nil}, {"loud", nil},
		{"defaults", nil}, {"auto", nil}, {"noauto", nil}, {"nofail", nil}, {"user", nil}, {"nouser", nil},
		{"users", nil}, {"owner", nil}, {"group", nil}, {"_netdev", nil}, {"user=alice", nil},
		{"comment=systemd.automount", nil}, {"x-systemd.automount", nil},
		{"x-systemd.requires=network-online.target", nil}, {"x-gvfs-show", nil},
		{"powercut=42", func(c *mountConfig) { c.test.powerCut = &seed }},
		{"", nil},
		{",,rw,", nil},
	} {
		for _, o := range strings.Split(tc.opt, ",") {
			if row, _, err := lookupOption(o); err == nil {
				covered[row.spelling()] = true
			}
		}
		t.Run(tc.opt, func(t *testing.T) {
			want := mountConfig{fs: defaultMountOptions()}
			if tc.want != nil {
				tc.want(&want)
			}
			got, err := parseMountConfig(tc.opt)
			require.NoError(t, err)
			assert.Equal(t, want, got)
		})
	}

	for i := range mountOptionTable {
		assert.True(t, covered[mountOptionTable[i].spelling()], "option %s has no case", mountOptionTable[i].spelling())
	}

	valid := "commit=, threshold=, entry_timeout=, attr_timeout=, writeback_cache, nowriteback_cache, max_write=, " +
		"noallow_other, debug, fsname=, default_permissions, allow_other, ro, rw, relatime, atime, strictatime, " +
		"norelatime, noatime, dev, nodev, suid, nosuid, exec, noexec, diratime, nodiratime, lazytime, nolazytime, " +
		"silent, loud, defaults, auto, noauto, nofail, user, nouser, users, owner, group, _netdev, user=, comment=, " +
		"x-*, powercut="
	for _, tc := range []struct{ opt, err string }{
		{"frobnicate", `unknown mount option "frobnicate"; valid options: ` + valid},
		{"nodev,frobnicate=1", `unknown mount option "frobnicate=1"; valid options: ` + valid},
		{"x-", `unknown mount option "x-"; valid options: ` + valid},
		{"nonempty", `unknown mount option "nonempty"; valid options: ` + valid},
		{"commit", `mount option "commit" wants a value: commit=sync|async`},
		{"commit=maybe", `mount option "commit=maybe": commit is sync or async`},
		{"threshold=banana", `mount option "threshold=banana": want a size from 512 B to 1.0 MiB`},
		{"threshold=256", `mount option "threshold=256": want a size from 512 B to 1.0 MiB`},
		{"max_write=2MiB", `mount option "max_write=2MiB": want a size from 4.0 KiB to 1.0 MiB`},
		{"entry_timeout=-1", `mount option "entry_timeout=-1": want seconds, from 0 to 1000000`},
		{"attr_timeout=soon", `mount option "attr_timeout=soon": want seconds, from 0 to 1000000`},
		{"writeback_cache=maybe", `mount option "writeback_cache=maybe": want on or off`},
		{"ro=1", `mount option "ro=1": ro takes no value`},
		{"defaults=yes", `mount option "defaults=yes": defaults takes no value`},
		{"fsname=", `mount option "fsname=": fsname wants a name`},
		{"powercut", `mount option "powercut" wants a value: powercut=SEED`},
		{"powercut=x", `mount option "powercut=x": powercut takes an integer seed`},
	} {
		t.Run(tc.opt, func(t *testing.T) {
			_, err := parseMountConfig(tc.opt)
			assert.EqualError(t, err, tc.err)
		})
	}
	assert.Equal(t, valid, validOptions())
}

// TestMountOptionsRefusedExit: an unknown option is a usage error (exit 2)
// naming it, before anything is mounted.
func TestMountOptionsRefusedExit(t *testing.T) {
	r := vosfs(t, "mount", "-o", "rw,frobnicate", "/nonexistent/pool", "/nonexistent/mnt")
	assert.Equal(t, 2, r.code, "%v", r)
	assert.Contains(t, r.stderr, `vosfs mount: unknown mount option "frobnicate"; valid options: commit=, `)
	r = vosfs(t, "mount", "-h")
	assert.Equal(t, 0, r.code, "%v", r)
	assert.Contains(t, r.stdout, optionsHelp())
}

// TestMountOptionsREADME: the table of options in cmd/vosfs/README.md is
// the code's (go test -run TestMountOptionsREADME -update-options
// rewrites it).
func TestMountOptionsREADME(t *testing.T) {
	const begin, end = "<!-- mount options: begin (generated from options.go) -->\n", "<!-- mount options: end -->\n"
	b, err := os.ReadFile("README.md")
	require.NoError(t, err)
	readme := string(b)
	i, j := strings.Index(readme, begin), strings.Index(readme, end)
	require.True(t, i >= 0 && j > i, "README.md has no %q ... %q section", begin, end)
	want := optionsMarkdown()
	if *updateOptions {
		readme = readme[:i+len(begin)] + want + readme[j:]
		require.NoError(t, os.WriteFile("README.md", []byte(readme), 0o644))
		return
	}
	assert.Equal(t, want, readme[i+len(begin):j], "README.md's table of mount options is not the code's; run go test -run TestMountOptionsREADME -update-options")
}
