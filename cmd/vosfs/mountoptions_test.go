package main

import (
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"vosfs/blob"
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
		{"subtype=vosfs2", func(c *mountConfig) { c.fs.Subtype = "vosfs2" }},
		{"allow_root", func(c *mountConfig) { c.fs.AllowOther, c.fs.AllowRoot = false, true }},
		{"allow_root,allow_other", func(c *mountConfig) { c.fs.AllowOther = true }},
		{"max_read=64KiB", func(c *mountConfig) { c.fs.MaxRead = 64 << 10 }},
		{"blksize=64KiB", func(c *mountConfig) { c.fs.BlockSize = 64 << 10 }},
		{"blksize=512", func(c *mountConfig) { c.fs.BlockSize = 512 }},
		{"user_id=0,group_id=0", nil},
		{"remount,ro", func(c *mountConfig) { c.remount, c.fs.ReadOnly = true, true }},
		{"suid", func(c *mountConfig) { c.fs.Suid = true }},
		{"suid,nosuid", nil},
		{"dev", func(c *mountConfig) { c.fs.Dev = true }},
		{"dev,nodev", nil},
		{"noexec", func(c *mountConfig) { c.fs.NoExec = true }},
		{"noexec,exec", nil},
		{"sync", func(c *mountConfig) { c.fs.Sync = true }},
		{"sync,async", nil},
		{"dirsync", func(c *mountConfig) { c.fs.DirSync = true }},
		{"nodiratime", func(c *mountConfig) { c.fs.NoDiratime = true }},
		{"nodiratime,diratime", nil},
		{"lazytime", func(c *mountConfig) { c.fs.LazyTime = true }},
		{"lazytime,nolazytime", nil},
		{"ro", func(c *mountConfig) { c.fs.ReadOnly = true }},
		{"ro,rw", nil},
		{"noatime", func(c *mountConfig) { c.fs.NoAtime = true }},
		{"noatime,atime", nil},
		{"noatime,relatime", nil},
		{"strictatime", func(c *mountConfig) { c.fs.StrictAtime = true }},
		{"norelatime", func(c *mountConfig) { c.fs.StrictAtime = true }},
		{"strictatime,noatime", func(c *mountConfig) { c.fs.NoAtime = true }},
		{"silent", nil}, {"loud", nil},
		// What mount(8) passes the helper for "mount -o remount,rw MOUNTPOINT".
		{"rw,nosuid,nodev,relatime,remount,user_id=0,group_id=0,default_permissions,allow_other,max_read=1048576",
			func(c *mountConfig) { c.remount, c.fs.MaxRead = true, 1<<20 }},
		{"defaults", nil}, {"auto", nil}, {"noauto", nil}, {"nofail", nil}, {"user", nil}, {"nouser", nil},
		{"users", nil}, {"owner", nil}, {"group", nil}, {"_netdev", nil}, {"user=alice", nil},
		{"comment=systemd.automount", nil}, {"x-systemd.automount", nil},
		{"x-systemd.requires=network-online.target", nil}, {"x-gvfs-show", nil},
		{"powercut=42", func(c *mountConfig) { c.test.powerCut = &seed }},
		{"powercut=42,faultinject=wal.blob:sync:3", func(c *mountConfig) {
			c.test.powerCut = &seed
			c.test.fault = &testFault{blob: "wal.blob", op: blob.OpSync, n: 3}
		}},
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
		"noallow_other, debug, fsname=, default_permissions, subtype=, allow_other, allow_root, max_read=, blksize=, " +
		"user_id=, group_id=, ro, rw, remount, nosuid, suid, nodev, dev, noexec, exec, sync, async, " +
		"dirsync, relatime, atime, strictatime, norelatime, noatime, nodiratime, diratime, lazytime, nolazytime, " +
		"silent, loud, defaults, auto, noauto, nofail, user, nouser, users, owner, group, _netdev, user=, comment=, " +
		"x-*, powercut=, faultinject="
	for _, tc := range []struct{ opt, err string }{
		{"frobnicate", `unknown mount option "frobnicate"; valid options: ` + valid},
		{"nodev,frobnicate=1", `unknown mount option "frobnicate=1"; valid options: ` + valid},
		{"x-", `unknown mount option "x-"; valid options: ` + valid},
		{"auto_unmount", `unknown mount option "auto_unmount"; valid options: ` + valid},
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
		{"subtype=a/b", `mount option "subtype=a/b": subtype wants a name without blanks or slashes`},
		{"max_read=1KiB", `mount option "max_read=1KiB": want a size from 4.0 KiB to 1.0 MiB`},
		{"blksize=3000", `mount option "blksize=3000": want a power of two`},
		{"blksize=2MiB", `mount option "blksize=2MiB": want a size from 512 B to 1.0 MiB`},
		{"remount=1", `mount option "remount=1": remount takes no value`},
		{"powercut", `mount option "powercut" wants a value: powercut=SEED`},
		{"powercut=x", `mount option "powercut=x": powercut takes an integer seed`},
		{"faultinject=log.blob:sync:1", `mount option "faultinject=log.blob:sync:1": faultinject takes BLOB:OP:N (BLOB wal.blob, meta.blob or data.blob; OP write, sync or read; N from 1)`},
		{"faultinject=data.blob:write:0", `mount option "faultinject=data.blob:write:0": faultinject takes BLOB:OP:N (BLOB wal.blob, meta.blob or data.blob; OP write, sync or read; N from 1)`},
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
