package fs

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"vosfs/pool"
)

// fillFiles creates files named prefix%05d in dir of size bytes each,
// until the pool refuses one with ENOSPC (at the create, the write or the
// fsync), and returns what each file holds as far as the calls succeeded
// (a file whose write failed keeps what the write managed).
func fillFiles(t *testing.T, dir, prefix string, size, limit int) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	for i := 0; i < limit; i++ {
		name := filepath.Join(dir, fmt.Sprintf("%s%05d", prefix, i))
		fd, err := unix.Open(name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o644)
		if err != nil {
			requireErrno(t, syscall.ENOSPC, err, "create %s", name)
			return files
		}
		files[name] = nil
		if size > 0 {
			data := pattern(byte(i), size)
			n, err := unix.Write(fd, data)
			if n > 0 {
				files[name] = data[:n]
			}
			if err == nil {
				err = unix.Fsync(fd)
			}
			require.NoError(t, unix.Close(fd))
			if err != nil {
				requireErrno(t, syscall.ENOSPC, err, "write %s", name)
				return files
			}
			require.Equal(t, size, n)
			continue
		}
		require.NoError(t, unix.Close(fd))
	}
	require.Failf(t, "never full", "%d files of %d bytes fit", limit, size)
	return nil
}

func verifyFiles(t *testing.T, files map[string][]byte) {
	t.Helper()
	for name, data := range files {
		requireContent(t, data, name)
	}
}

// TestENOSPCDataDeleteWrite: on a pool whose data blob is full, rm,
// rmdir and truncate succeed, a write right after an rm gets the space
// the rm freed (no wait for background aggregation), statfs shows the
// space back, and every surviving file reads back exactly, before and
// after a remount (whose unmount runs fsck).
func TestENOSPCDataDeleteWrite(t *testing.T) {
	t.Parallel() // fills a pool: overlaps the other long tests
	for _, commit := range []CommitMode{CommitSync, CommitAsync} {
		t.Run(commit.String(), func(t *testing.T) {
			opts := DefaultOptions()
			opts.Commit = commit
			m := mountTestConfig(t, opts, pool.Config{DataSize: 32<<20 + 4096, MetaSize: 16 << 20, WALSize: 16 << 20})
			require.NoError(t, os.Mkdir(m.path("empty"), 0o755))
			files := fillFiles(t, m.mnt, "f", 1<<20, 100)
			require.GreaterOrEqual(t, len(files), 28, "most of 32 MiB written")
			st := statfs(t, m.mnt)
			require.Less(t, st.Bavail, uint64(256), "full: less than a 1 MiB file free")

			// A write larger than what is free fails; the daemon is alive.
			err := os.WriteFile(m.path("big"), pattern(1, 4<<20), 0o644)
			requireErrno(t, syscall.ENOSPC, err)
			files[m.path("big")] = readFile(t, m.path("big")) // what made it in

			// Deleting works on the full pool.
			require.NoError(t, os.Remove(m.path("empty")))
			trunc := m.path("f00001")
			require.NoError(t, os.Truncate(trunc, 5000))
			files[trunc] = files[trunc][:5000]
			for i := 2; i < 10; i++ {
				name := m.path(fmt.Sprintf("f%05d", i))
				require.NoError(t, os.Remove(name))
				delete(files, name)
			}

			// The next write gets the 8 MiB the removals freed, at once.
			after := pattern(2, 8<<20)
			writeFile(t, m.path("after"), after)
			files[m.path("after")] = after

			// And statfs shows it: free space comes back after deletes
			// without waiting for the 5 s aggregation interval.
			before := statfs(t, m.mnt).Bfree
			require.NoError(t, os.Remove(m.path("after")))
			delete(files, m.path("after"))
			eventually(t, func() bool { return statfs(t, m.mnt).Bfree >= before+2048 }, "statfs shows the 8 MiB an rm freed")

			verifyFiles(t, files)
			m.remount()
			verifyFiles(t, files)
			writeFile(t, m.path("again"), after)
			files[m.path("again")] = after
			m.remount()
			verifyFiles(t, files)
		})
	}
}

// TestENOSPCHeapDeleteContinue: on a pool whose metadata heap is full —
// of small files (their bytes live in the heap) or of names (empty files
// with long names) — rm, rmdir, truncate and snapshot delete succeed
// (they may take the deletion reserve), new files fit again right after,
// and every surviving file reads back exactly after a remount.
func TestENOSPCHeapDeleteContinue(t *testing.T) {
	t.Parallel() // fills a pool: overlaps the other long tests
	for _, tc := range []struct {
		name   string
		size   int
		prefix string
		meta   uint64
	}{
		{"small-files", 2000, "s", 4 << 20},
		{"names", 0, strings.Repeat("n", 200), 2 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mountTestConfig(t, DefaultOptions(), pool.Config{DataSize: 16<<20 + 4096, MetaSize: tc.meta, WALSize: 16 << 20})
			require.NoError(t, os.Mkdir(m.path("empty"), 0o755))
			require.NoError(t, os.Mkdir(m.path("d"), 0o755))
			// A snapshot: what is deleted while it stands frees nothing.
			require.NoError(t, os.Mkdir(m.path(SnapshotDir+"/s1"), 0o755))
			start := time.Now()
			files := fillFiles(t, m.path("d"), tc.prefix, tc.size, 20000)
			if tc.size > 0 {
				// Then names until not even an empty file fits.
				for k, v := range fillFiles(t, m.path("d"), "e", 0, 20000) {
					files[k] = v
				}
			}
			t.Logf("heap full after %d files in %v: %+v", len(files), time.Since(start), m.p.Stats().Heap)
			require.Greater(t, len(files), 500)
			// Full right now: not even one more empty file with a name as
			// long fits (background aggregation may have folded a little
			// free meanwhile; this takes it).
			for k, v := range fillFiles(t, m.path("d"), tc.prefix+"z", 0, 20000) {
				files[k] = v
			}

			// Deleting works on the full heap: an rm under the snapshot,
			// the snapshot's delete, then rmdir, truncate and rm.
			for name := range files {
				require.NoError(t, os.Remove(name))
				delete(files, name)
				break
			}
			require.NoError(t, unix.Rmdir(m.path(SnapshotDir+"/s1")))
			require.NoError(t, os.Remove(m.path("empty")))
			// In name order, as rm -r does (and as the files were made:
			// what they held in the heap lies together).
			names := make([]string, 0, len(files))
			for name := range files {
				names = append(names, name)
			}
			sort.Strings(names)
			removed, half := 0, len(files)/2
			for _, name := range names {
				data := files[name]
				switch {
				case removed >= half:
				case len(data) > 0 && removed%2 == 0:
					require.NoError(t, os.Truncate(name, 0), "truncate %s", name)
					files[name] = []byte{}
				default:
					require.NoError(t, os.Remove(name), "rm %s", name)
					delete(files, name)
				}
				removed++
			}

			// New files fit again at once.
			for i := 0; i < 50; i++ {
				name := m.path(fmt.Sprintf("d/new%03d", i))
				data := pattern(byte(i), max(tc.size, 100))
				writeFile(t, name, data)
				files[name] = data
			}
			verifyFiles(t, files)
			m.remount()
			verifyFiles(t, files)
		})
	}
}
