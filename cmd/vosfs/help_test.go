package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ with what the code prints")

// helpPaths lists the commands whose help is kept: vosfs and every
// available command below it (the shells of completion aside).
func helpPaths(c *cobra.Command, path []string, out *[][]string) {
	*out = append(*out, path)
	if c.Name() == "completion" {
		return
	}
	for _, sub := range c.Commands() {
		if sub.IsAvailableCommand() || sub.Name() == "help" {
			helpPaths(sub, append(append([]string(nil), path...), sub.Name()), out)
		}
	}
}

// TestHelpGolden: the help of each command is exactly the one kept under
// testdata/help (go test -run TestHelpGolden -update rewrites them), and
// "vosfs help CMD" prints the same as "vosfs CMD --help".
func TestHelpGolden(t *testing.T) {
	var paths [][]string
	helpPaths(newRootCmd(), nil, &paths)
	require.Greater(t, len(paths), 12)
	want := map[string]bool{}
	for _, path := range paths {
		name := strings.Join(append([]string{"vosfs"}, path...), "-") + ".txt"
		want[name] = true
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := runTo(append(append([]string{"vosfs"}, path...), "--help"), &out, &errOut)
			require.Equal(t, 0, code, errOut.String())
			require.Empty(t, errOut.String())
			golden := filepath.Join("testdata", "help", name)
			if *update {
				require.NoError(t, os.MkdirAll(filepath.Dir(golden), 0o755))
				require.NoError(t, os.WriteFile(golden, out.Bytes(), 0o644))
			}
			b, err := os.ReadFile(golden)
			require.NoError(t, err, "run go test -run TestHelpGolden -update")
			assert.Equal(t, string(b), out.String())

			var viaHelp bytes.Buffer
			code = runTo(append([]string{"vosfs", "help"}, path...), &viaHelp, &errOut)
			require.Equal(t, 0, code, errOut.String())
			assert.Equal(t, out.String(), viaHelp.String())
		})
	}
	// No golden file of a command that is gone.
	files, err := filepath.Glob(filepath.Join("testdata", "help", "*.txt"))
	require.NoError(t, err)
	for _, f := range files {
		assert.True(t, want[filepath.Base(f)], "%s is the help of no command", f)
	}
}

// TestHelpText: what the help must say.
func TestHelpText(t *testing.T) {
	help := func(args ...string) string {
		var out, errOut bytes.Buffer
		require.Equal(t, 0, runTo(append(append([]string{"vosfs"}, args...), "--help"), &out, &errOut), errOut.String())
		return out.String()
	}
	assert.Contains(t, help(), "Sizes are binary: 1K = 1KiB = 1024 bytes")
	mkfs := help("mkfs")
	assert.Contains(t, mkfs, "Sizes are binary: 8G is\n8 GiB")
	assert.Contains(t, mkfs, "--size SIZE           size of the data blob (default 8.0 GiB)\n")
	assert.Equal(t, 1, strings.Count(mkfs, "default 8.0 GiB"), "a default printed twice")
	assert.NotContains(t, mkfs, "`")
	assert.NotContains(t, help("profile"), "`")
	mount := help("mount")
	for _, f := range []string{"--mkfs", "--size SIZE", "--fill MODE", "--foreground", "-o, --options OPTIONS", "--fake"} {
		assert.Contains(t, mount, f)
	}
	assert.NotContains(t, mount, "notify-fd")
}

// TestCompletion: completion scripts for each shell come from the command
// tree, and name its commands and flags.
func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		t.Run(shell, func(t *testing.T) {
			r := vosfs(t, "completion", shell)
			require.Equal(t, 0, r.code, "%v", r)
			assert.Empty(t, r.stderr)
			assert.Contains(t, r.stdout, "vosfs")
			assert.Contains(t, r.stdout, "__complete")
		})
	}
	// What the scripts ask: the commands, then the flags of one.
	r := vosfs(t, "__complete", "m")
	require.Equal(t, 0, r.code, "%v", r)
	assert.Contains(t, r.stdout, "mkfs\tcreate a pool\n")
	assert.Contains(t, r.stdout, "mount\tmount a pool\n")
	assert.NotContains(t, r.stdout, "umount")
	r = vosfs(t, "__complete", "mkfs", "--f")
	require.Equal(t, 0, r.code, "%v", r)
	assert.Contains(t, r.stdout, "--fill\t")
	assert.Contains(t, r.stdout, "--force\t")
	r = vosfs(t, "__complete", "mkfs", "--fill", "")
	require.Equal(t, 0, r.code, "%v", r)
	assert.True(t, strings.HasPrefix(r.stdout, "sparse\nzero\n:4\n"), r.stdout)
}

// TestGenMan: the hidden gen-man writes a page for vosfs and each command,
// with its flags.
func TestGenMan(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "man")
	r := vosfs(t, "gen-man", dir)
	require.Equal(t, 0, r.code, "%v", r)
	for _, page := range []string{"vosfs.8", "vosfs-mkfs.8", "vosfs-mount.8", "vosfs-umount.8", "vosfs-fsck.8",
		"vosfs-stat.8", "vosfs-snapshot.8", "vosfs-snapshot-create.8", "vosfs-profile.8", "vosfs-version.8"} {
		assert.FileExists(t, filepath.Join(dir, page))
	}
	assert.NoFileExists(t, filepath.Join(dir, "vosfs-gen-man.8"))
	b, err := os.ReadFile(filepath.Join(dir, "vosfs-mkfs.8"))
	require.NoError(t, err)
	assert.Contains(t, string(b), `.TH "VOSFS" "8"`)
	assert.Contains(t, string(b), "\\fB--size\\fP=8.0 GiB\n\tsize of the data blob\n")
	assert.Contains(t, string(b), "create a pool")
	pages, err := filepath.Glob(filepath.Join(dir, "*.8"))
	require.NoError(t, err)
	assert.Equal(t, fmt.Sprintf("wrote %d man pages in %s\n", len(pages), dir), r.stdout)
}
