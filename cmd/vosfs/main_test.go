package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"vosfs/blob"
	"vosfs/pool"
)

// vosfsBin is the command under test, built once by TestMain.
var vosfsBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vosfs-cmd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	vosfsBin = filepath.Join(dir, "vosfs")
	build := exec.Command("go", "build", "-o", vosfsBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "building vosfs: %v\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what one run of a command printed and its exit status.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// runProgram runs bin with args and returns what it did.
func runProgram(t *testing.T, bin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		require.True(t, ok, "running %s %q: %v", bin, args, err)
		r.code = ee.ExitCode()
	}
	return r
}

// vosfs runs the command under test.
func vosfs(t *testing.T, args ...string) result {
	t.Helper()
	return runProgram(t, vosfsBin, args...)
}

// smallPool is the geometry of the pools the tests create: quick to make
// and to open.
var smallPool = []string{"--size", "64MiB", "--meta-size", "16MiB", "--wal-size", "16MiB"}

// mkfsSmall creates a small pool in a new directory and returns it.
func mkfsSmall(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pool")
	r := vosfs(t, append(append([]string{"mkfs"}, smallPool...), dir)...)
	require.Equal(t, 0, r.code, "%v", r)
	return dir
}

// holdLock takes the pool's lock as a mounted pool has it, until the test
// ends.
func holdLock(t *testing.T, dir string) {
	t.Helper()
	lock, err := blob.NewOSFS(false).Lock(filepath.Join(dir, pool.LockFile))
	require.NoError(t, err)
	t.Cleanup(func() { lock.Close() })
}

func TestMkfs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pool")
	r := vosfs(t, append(append([]string{"mkfs"}, smallPool...), dir)...)
	require.Equal(t, 0, r.code, "%v", r)
	assert.Equal(t, fmt.Sprintf("created pool %s: data 64 MiB, metadata 16 MiB, log 16 MiB\n", dir), r.stdout)
	for _, name := range poolFiles {
		assert.FileExists(t, filepath.Join(dir, name))
	}
}

func TestMkfsDefaultSizes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pool")
	r := vosfs(t, "mkfs", "--fill", "sparse", dir)
	require.Equal(t, 0, r.code, "%v", r)
	assert.Equal(t, fmt.Sprintf("created pool %s: data 8.0 GiB, metadata 256 MiB, log 64 MiB\n", dir), r.stdout)
}

func TestMkfsExistingPool(t *testing.T) {
	dir := mkfsSmall(t)
	before, err := os.ReadFile(filepath.Join(dir, pool.MetaFile))
	require.NoError(t, err)
	// Something of the user's beside the pool, which --force leaves alone.
	other := filepath.Join(dir, "notes.txt")
	require.NoError(t, os.WriteFile(other, []byte("keep me"), 0o600))

	r := vosfs(t, "mkfs", dir)
	assert.Equal(t, 1, r.code, "%v", r)
	assert.Contains(t, r.stderr, "vosfs: "+dir+" already holds a pool")
	assert.Contains(t, r.stderr, "--force")
	after, err := os.ReadFile(filepath.Join(dir, pool.MetaFile))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(before, after), "a refused mkfs changed the pool")

	r = vosfs(t, append(append([]string{"mkfs", "--force"}, smallPool...), dir)...)
	require.Equal(t, 0, r.code, "%v", r)
	assert.Contains(t, r.stdout, "created pool "+dir)
	after, err = os.ReadFile(filepath.Join(dir, pool.MetaFile))
	require.NoError(t, err)
	assert.False(t, bytes.Equal(before[:blob.BlockSize], after[:blob.BlockSize]), "--force kept the old pool (same header)")
	assert.FileExists(t, other)

	r = vosfs(t, "fsck", dir)
	assert.Equal(t, 0, r.code, "%v", r)
}

func TestMkfsForceRefusesOpenPool(t *testing.T) {
	dir := mkfsSmall(t)
	holdLock(t, dir)
	r := vosfs(t, "mkfs", "--force", dir)
	assert.Equal(t, 1, r.code, "%v", r)
	assert.Contains(t, r.stderr, "unmount it first")
	for _, name := range poolFiles {
		assert.FileExists(t, filepath.Join(dir, name))
	}
}

func TestMkfsBadArguments(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pool")
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--size", "banana", dir}, 2, `vosfs mkfs: invalid argument "banana" for "--size" flag: not a size (examples: 8G, 8GiB, 512M, 4096; units are binary: 1G = 1 GiB)`},
		{[]string{"--size", "1MiB", dir}, 1, "vosfs: data size 1.0 MiB (1,048,576 bytes) is below the minimum 1.0 MiB (1,052,672 bytes)"},
		{[]string{"--size", "1.5", dir}, 2, `invalid argument "1.5" for "--size" flag: 1.5 is not a whole number of bytes`},
		{[]string{"--size", "1KiB", dir}, 1, "vosfs: data size 1.0 KiB is below the minimum 1.0 MiB (1,052,672 bytes)"},
		{[]string{"--meta-size", "512KiB", dir}, 1, "metadata size 512 KiB is below the minimum 1.0 MiB"},
		{[]string{"--meta-size", "1TiB", dir}, 1, "metadata size 1.0 TiB is above the maximum 64 GiB"},
		{[]string{"--wal-size", "64KiB", dir}, 1, "log size 64 KiB is below the minimum"},
		{[]string{"--size", "100TiB", "--meta-size", "256MiB", dir}, 1,
			"vosfs: metadata size 256 MiB is too small for a data blob of 100 TiB: the heap holds its allocation bitmap; give --meta-size 3.1 GiB or more"},
		{[]string{"--wal-size", "16MiB", "--record-limit", "8MiB", dir}, 1, "record limit 8.0 MiB is more than a quarter of the log ring"},
		{[]string{"--record-limit", "32MiB", dir}, 1, "record limit 32 MiB is above the maximum 16 MiB"},
		{[]string{"--size", "0", dir}, 2, "size must be more than zero"},
		{[]string{}, 2, "vosfs mkfs: missing POOLDIR"},
		{[]string{dir, "extra"}, 2, "too many arguments"},
		{[]string{"--bogus", dir}, 2, "vosfs mkfs: unknown flag: --bogus\n\nUsage:\n  vosfs mkfs [flags] POOLDIR\n"},
		{[]string{"-size", "8G", dir}, 2, "vosfs mkfs: unknown shorthand flag: 's' in -size"},
		{[]string{"--fill", "lazy", dir}, 2, `vosfs mkfs: --fill: unknown fill "lazy" (zero or sparse)`},
	} {
		t.Run(fmt.Sprint(tc.args), func(t *testing.T) {
			r := vosfs(t, append([]string{"mkfs"}, tc.args...)...)
			assert.Equal(t, tc.code, r.code, "%v", r)
			assert.Contains(t, r.stderr, tc.msg)
			assert.Empty(t, r.stdout)
		})
	}
	assert.NoDirExists(t, dir, "a refused mkfs created the pool directory")
}

// TestMkfsScalesMetadata: without --meta-size, a data blob whose
// allocation bitmap would crowd the default heap gets a bigger one.
func TestMkfsScalesMetadata(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pool")
	r := vosfs(t, "mkfs", "--fill", "sparse", "--size", "5TiB", dir)
	require.Equal(t, 0, r.code, "%v", r)
	assert.Equal(t, "created pool "+dir+": data 5.0 TiB, metadata 321 MiB, log 64 MiB\n", r.stdout)
	r = vosfs(t, "fsck", dir)
	require.Equal(t, 0, r.code, "%v", r)
	assert.Contains(t, r.stdout, "clean, 1 object, data 0 B used / 5.0 TiB free")
}

func TestFsckFreshPool(t *testing.T) {
	dir := mkfsSmall(t)
	r := vosfs(t, "fsck", dir)
	require.Equal(t, 0, r.code, "%v", r)
	assert.Regexp(t, `^`+regexp.QuoteMeta(dir)+`: clean, 1 object, data 0 B used / 64 MiB free, metadata [0-9.]+ [KM]iB used / [0-9.]+ MiB free\n$`, r.stdout)
	// A second check finds it clean again (the first one closed it cleanly).
	r = vosfs(t, "fsck", dir)
	assert.Equal(t, 0, r.code, "%v", r)
}

func TestFsckRefusesMountedPool(t *testing.T) {
	dir := mkfsSmall(t)
	holdLock(t, dir)
	r := vosfs(t, "fsck", dir)
	assert.Equal(t, 1, r.code, "%v", r)
	assert.Contains(t, r.stderr, "is mounted")
	assert.Contains(t, r.stderr, "unmount it first")
}

func TestFsckNoPool(t *testing.T) {
	dir := t.TempDir()
	r := vosfs(t, "fsck", dir)
	assert.Equal(t, 1, r.code, "%v", r)
	assert.Contains(t, r.stderr, "holds no pool")
	r = vosfs(t, "fsck")
	assert.Equal(t, 2, r.code, "%v", r)
}

func TestStatFreshPool(t *testing.T) {
	dir := mkfsSmall(t)
	r := vosfs(t, "stat", dir)
	require.Equal(t, 0, r.code, "%v", r)
	for _, want := range []string{
		"pool         " + dir + " (not mounted)",
		"data         64 MiB: 0 B used, 64 MiB free",
		"metadata     16 MiB heap: ",
		"log          16 MiB: 0.0% full, checkpoint lag 0 B",
		"throttle     0 events, 0s waited",
		"commits      0 (0 aborted)",
		"store        0 commits, 0 conflicts, 0 replays, 0 aborts, 0 retries",
		"fs           0 operations, 0 errors",
	} {
		assert.Contains(t, r.stdout, want)
	}

	r = vosfs(t, "stat", "--json", dir)
	require.Equal(t, 0, r.code, "%v", r)
	var rep statReport
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), r.stdout)
	assert.Equal(t, dir, rep.Pool)
	assert.False(t, rep.Mounted)
	assert.Equal(t, uint64(64<<20-pool.DataOffset), rep.Usage.DataSize)
	assert.Equal(t, rep.Usage.DataSize, rep.Usage.DataFree)
	assert.Equal(t, uint64(16<<20-8<<10), rep.Usage.LogSize)
	assert.Equal(t, rep.Usage.DataSize/pool.BlockSize, rep.Stats.Pool.Data.Blocks)
	assert.NotZero(t, rep.Stats.Pool.Heap.Total)
	var generic map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &generic))
	assert.Contains(t, generic, "stats")
	assert.Contains(t, generic, "usage")
}

func TestStatNotAPool(t *testing.T) {
	r := vosfs(t, "stat", t.TempDir())
	assert.Equal(t, 1, r.code, "%v", r)
	assert.Contains(t, r.stderr, "is neither a pool directory nor a vosfs mount point")
}

func TestUsage(t *testing.T) {
	r := vosfs(t)
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "Usage:\n  vosfs COMMAND [flags] [arguments]\n")
	assert.Empty(t, r.stdout)

	r = vosfs(t, "help")
	assert.Equal(t, 0, r.code)
	for _, c := range []string{"mkfs", "mount", "umount", "fsck", "stat", "stats", "snapshot", "profile", "version", "completion"} {
		assert.Contains(t, r.stdout, "\n  "+c+" ")
	}
	assert.NotContains(t, r.stdout, "gen-man", "the hidden command is listed")

	for _, c := range [][]string{{"mkfs"}, {"mount"}, {"umount"}, {"fsck"}, {"stat"}, {"snapshot"}, {"snapshot", "create"}, {"profile"}, {"version"}, {"completion"}} {
		r = vosfs(t, append(c, "-h")...)
		assert.Equal(t, 0, r.code, "%s -h: %v", c, r)
		assert.Contains(t, r.stdout, "Usage:\n  vosfs "+strings.Join(c, " ")+" ")
		assert.Contains(t, r.stdout, "  -h, --help ")
		r2 := vosfs(t, append([]string{"help"}, c...)...)
		assert.Equal(t, 0, r2.code)
		assert.Equal(t, r.stdout, r2.stdout, "help %s differs from %s -h", c, c)
	}
	r = vosfs(t, "mount", "--help")
	assert.Contains(t, r.stdout, "commit=sync|async")
	assert.NotContains(t, r.stdout, "notify", "the internal flag shows in the usage")

	r = vosfs(t, "version")
	assert.Equal(t, 0, r.code)
	assert.Regexp(t, `^vosfs \S+.* \(go[0-9.]+ [a-z0-9]+/[a-z0-9]+\)\n$`, r.stdout)
	r2 := vosfs(t, "--version")
	assert.Equal(t, r.stdout, r2.stdout)
}

// TestUsageErrors: every mistake in a command line exits 2 with what is
// wrong and the usage of the command, on stderr, and does nothing.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		msg  string // the first line of stderr
		cmd  string // whose usage follows ("" for the hint of vosfs)
	}{
		{[]string{"frobnicate"}, `vosfs: unknown command "frobnicate"`, ""},
		{[]string{"nosuch", "a"}, `vosfs: unknown command "nosuch"`, ""},
		{[]string{"mkfss", "a"}, `vosfs: unknown command "mkfss" (did you mean mkfs?)`, ""},
		{[]string{"--bogus"}, "vosfs: unknown flag: --bogus", ""},
		{[]string{"mkfs"}, "vosfs mkfs: missing POOLDIR", "mkfs"},
		{[]string{"mount", "/p"}, "vosfs mount: missing MOUNTPOINT", "mount"},
		{[]string{"mount", "/p", "/m", "/x"}, `vosfs mount: too many arguments: ["/x"]`, "mount"},
		{[]string{"mount", "--size", "1G", "/p", "/m"}, "vosfs mount: --size shapes a new pool: it needs --mkfs", "mount"},
		{[]string{"umount"}, "vosfs umount: missing MOUNTPOINT or POOLDIR", "umount"},
		{[]string{"fsck", "a", "b"}, `vosfs fsck: too many arguments: ["b"]`, "fsck"},
		{[]string{"stat", "--jsn", "x"}, "vosfs stat: unknown flag: --jsn", "stat"},
		{[]string{"version", "x"}, `vosfs version: takes no arguments (got ["x"])`, "version"},
		{[]string{"help", "nosuch"}, `vosfs help: unknown command "nosuch"`, "help"},
		{[]string{"snapshot"}, "vosfs snapshot: missing operation: create, list or delete", "snapshot"},
		{[]string{"snapshot", "rename", "/mnt", "x"}, `vosfs snapshot: unknown operation "rename": create, list or delete`, "snapshot"},
		{[]string{"snapshot", "create", "/mnt"}, "vosfs snapshot create: missing NAME", "snapshot create"},
		{[]string{"snapshot", "create", "/mnt", "a/b"}, `vosfs snapshot create: invalid snapshot name "a/b": it may not contain '/'`, "snapshot create"},
		{[]string{"snapshot", "delete", "/mnt", ".."}, `vosfs snapshot delete: invalid snapshot name ".."`, "snapshot delete"},
		{[]string{"unmount", "/mnt"}, `vosfs: unknown command "unmount" (did you mean mount or umount?)`, ""},
		{[]string{"completion", "tcsh"}, `vosfs completion: unknown shell "tcsh": bash, zsh, fish or powershell`, "completion"},
		{[]string{"completion"}, "vosfs completion: missing shell: bash, zsh, fish or powershell", "completion"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := vosfs(t, tc.args...)
			assert.Equal(t, 2, r.code, "%v", r)
			assert.Empty(t, r.stdout)
			first, rest, _ := strings.Cut(r.stderr, "\n")
			assert.Equal(t, tc.msg, first)
			if tc.cmd == "" {
				assert.Equal(t, "Run 'vosfs --help' for the commands.\n", rest)
				return
			}
			assert.True(t, strings.HasPrefix(rest, "\nUsage:\n  vosfs "+tc.cmd+" "), "no usage of %s after the message:\n%s", tc.cmd, r.stderr)
		})
	}
}

func TestSnapshotNeedsMount(t *testing.T) {
	r := vosfs(t, "snapshot", "list", t.TempDir())
	assert.Equal(t, 1, r.code, "%v", r)
	assert.Contains(t, r.stderr, "is not a vosfs mount point")
}

func TestMountRefusals(t *testing.T) {
	dir := mkfsSmall(t)
	base := t.TempDir()
	file := filepath.Join(base, "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	mp := filepath.Join(base, "mnt")
	require.NoError(t, os.Mkdir(mp, 0o755))

	r := vosfs(t, "mount", dir, filepath.Join(base, "missing"))
	assert.Equal(t, 1, r.code, "%v", r)
	assert.Contains(t, r.stderr, "mount point "+filepath.Join(base, "missing")+" does not exist")

	r = vosfs(t, "mount", dir, file)
	assert.Equal(t, 1, r.code, "%v", r)
	assert.Contains(t, r.stderr, "mount point "+file+" is not a directory")

	r = vosfs(t, "mount", "-o", "commit=sync,frobnicate", dir, mp)
	assert.Equal(t, 2, r.code, "%v", r)
	assert.Contains(t, r.stderr, `unknown mount option "frobnicate"`)

	r = vosfs(t, "mount", "-o", "commit=later", dir, mp)
	assert.Equal(t, 2, r.code, "%v", r)
	assert.Contains(t, r.stderr, "commit is sync or async")

	r = vosfs(t, "mount", t.TempDir(), mp)
	assert.Equal(t, 1, r.code, "%v", r)
	assert.Contains(t, r.stderr, "holds no pool")

	r = vosfs(t, "mount", dir)
	assert.Equal(t, 2, r.code, "%v", r)

	// The same refusals through the mount helper form.
	r = vosfs(t, dir, filepath.Join(base, "missing"), "-o", "defaults")
	assert.Equal(t, 1, r.code, "%v", r)
	assert.Contains(t, r.stderr, "does not exist")
}

func TestProfileRefusals(t *testing.T) {
	dir := mkfsSmall(t)
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{dir}, 1, "vosfs: pool " + dir + " is not mounted: only a daemon can be profiled"},
		{[]string{"--seconds", "0", dir}, 2, "vosfs profile: --seconds 0 is not 1..600"},
		{[]string{"--kind", "wall", dir}, 2, `vosfs profile: unknown --kind "wall" (cpu, mutex, block, heap, goroutine)`},
		{[]string{}, 2, "vosfs profile: missing POOLDIR or MOUNTPOINT"},
		{[]string{dir, dir}, 2, "too many arguments"},
	} {
		t.Run(fmt.Sprint(tc.args), func(t *testing.T) {
			r := vosfs(t, append([]string{"profile", "-o", filepath.Join(t.TempDir(), "p")}, tc.args...)...)
			assert.Equal(t, tc.code, r.code, "%v", r)
			assert.Contains(t, r.stderr, tc.msg)
		})
	}
}

// TestMountFake: the helper's -f (and --fake) checks all it would mount,
// and mounts nothing.
func TestMountFake(t *testing.T) {
	dir := mkfsSmall(t)
	mp := filepath.Join(t.TempDir(), "mnt")
	require.NoError(t, os.Mkdir(mp, 0o755))
	helper := filepath.Join(t.TempDir(), "mount.fuse.vosfs")
	require.NoError(t, os.Symlink(vosfsBin, helper))

	for _, args := range [][]string{
		{helper, dir, mp, "-f", "-o", "rw,commit=async"},
		{helper, dir, mp, "-fnv", "-o", "defaults"},
		{vosfsBin, dir, mp, "-f"},
		{vosfsBin, "mount", "--fake", dir, mp},
	} {
		r := runProgram(t, args[0], args[1:]...)
		assert.Equal(t, 0, r.code, "%q: %v", args, r)
		assert.Empty(t, r.stdout+r.stderr, "%q", args)
		_, ok := mounted(t, mp)
		assert.False(t, ok, "%q mounted", args)
		assert.NoFileExists(t, filepath.Join(dir, pidName))
		assert.NoFileExists(t, filepath.Join(dir, logName), "a fake mount started a daemon")
	}
	// A fake mount still refuses what a mount refuses.
	r := runProgram(t, helper, dir, mp, "-f", "-o", "frobnicate")
	assert.Equal(t, 2, r.code, "%v", r)
	assert.Contains(t, r.stderr, `unknown mount option "frobnicate"`)
	r = runProgram(t, helper, t.TempDir(), mp, "-f")
	assert.Equal(t, 1, r.code, "%v", r)
	assert.Contains(t, r.stderr, "holds no pool")
	// A word without a '/' is a command or an error, never a mount.
	r = vosfs(t, "pool", mp)
	assert.Equal(t, 2, r.code, "%v", r)
	assert.Contains(t, r.stderr, `vosfs: unknown command "pool"`)
}

// TestMountNesting: a pool mounted on its own directory, or on one inside
// it, or inside the mount point, is refused before anything is mounted.
func TestMountNesting(t *testing.T) {
	dir := mkfsSmall(t)
	inside := filepath.Join(dir, "mnt")
	require.NoError(t, os.Mkdir(inside, 0o755))
	link := filepath.Join(t.TempDir(), "link")
	require.NoError(t, os.Symlink(dir, link))
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"mount", dir, dir}, "vosfs: cannot mount pool " + dir + " on its own directory"},
		{[]string{"mount", dir, link}, "vosfs: cannot mount pool " + dir + " on its own directory"},
		{[]string{"mount", dir, inside}, "vosfs: cannot mount pool " + dir + " on " + inside + ", inside the pool directory"},
		{[]string{"mount", "--foreground", dir, inside}, "inside the pool directory"},
		{[]string{"mount", "--mkfs", dir, filepath.Join(dir, "new")}, "inside the pool directory"},
		{[]string{"mount", inside, dir}, "vosfs: cannot mount pool " + inside + " on " + dir + ": the pool directory would be inside the filesystem it serves"},
		{[]string{dir, dir, "-o", "rw"}, "on its own directory"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := vosfs(t, tc.args...)
			assert.Equal(t, 1, r.code, "%v", r)
			assert.Contains(t, r.stderr, tc.msg)
			_, ok := mounted(t, dir)
			assert.False(t, ok)
			_, ok = mounted(t, inside)
			assert.False(t, ok)
		})
	}
	assert.NoDirExists(t, filepath.Join(dir, "new"), "a refused mount --mkfs made its mount point")
	assert.NoFileExists(t, filepath.Join(dir, logName))
}
