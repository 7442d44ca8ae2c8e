package fs

import (
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"vosfs/pool"
)

func TestENOSPC(t *testing.T) {
	t.Parallel() // long: overlaps the other long tests
	for _, commit := range []CommitMode{CommitSync, CommitAsync} {
		t.Run(commit.String(), func(t *testing.T) {
			opts := DefaultOptions()
			opts.Commit = commit
			m := mountTestConfig(t, opts, pool.Config{DataSize: 64<<20 + 4096, MetaSize: 64 << 20, WALSize: 16 << 20})
			const chunk = 256 << 10
			written := map[string][]byte{} // what each file holds, as far as write returned success
			var full error
			for i := 0; full == nil && i < 1000; i++ {
				name := m.path(fmt.Sprintf("f%03d", i))
				fd, err := unix.Open(name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o644)
				require.NoError(t, err)
				written[name] = nil
				for c := 0; c < 4; c++ {
					data := pattern(byte(i*4+c), chunk)
					n, err := unix.Write(fd, data)
					if n > 0 {
						written[name] = append(written[name], data[:n]...)
					}
					if err != nil {
						full = err
						break
					}
					require.Equal(t, chunk, n)
				}
				if err := unix.Fsync(fd); err != nil && full == nil {
					full = err
				}
				require.NoError(t, unix.Close(fd))
			}
			requireErrno(t, syscall.ENOSPC, full)
			require.Greater(t, len(written), 40, "most of 64 MiB written")

			// Small things still fit (they live in the metadata heap).
			require.NoError(t, os.Mkdir(m.path("dir"), 0o755))
			writeFile(t, m.path("dir/small"), []byte("small"))
			written[m.path("dir/small")] = []byte("small")

			verify := func() {
				t.Helper()
				for name, data := range written {
					requireContent(t, data, name)
				}
			}
			verify()
			m.remount()
			verify()

			// Deleting gives the space back.
			for name := range written {
				if name != m.path("dir/small") && len(written) > 20 {
					require.NoError(t, os.Remove(name))
					delete(written, name)
				}
			}
			m.settle()
			m.aggregate()
			big := pattern(9, 8<<20)
			writeFile(t, m.path("after"), big)
			written[m.path("after")] = big
			m.remount()
			verify()
		})
	}
}

// TestENOSPCOverwrite: overwriting a file in place on a nearly full pool
// succeeds: the old versions' space is reclaimed when it runs out.
func TestENOSPCOverwrite(t *testing.T) {
	t.Parallel() // long: overlaps the other long tests
	m := mountTestConfig(t, DefaultOptions(), pool.Config{DataSize: 64<<20 + 4096, MetaSize: 64 << 20, WALSize: 16 << 20})
	data := pattern(1, 40<<20)
	writeFile(t, m.path("f"), data)
	f, err := os.OpenFile(m.path("f"), os.O_WRONLY, 0)
	require.NoError(t, err)
	for round := 0; round < 3; round++ {
		for off := 0; off < len(data); off += 1 << 20 {
			chunk := pattern(byte(2+round), 1<<20)
			_, err := f.WriteAt(chunk, int64(off))
			require.NoError(t, err, "round %d offset %d", round, off)
			copy(data[off:], chunk)
		}
	}
	require.NoError(t, f.Close())
	requireContent(t, data, m.path("f"))
	m.remount()
	requireContent(t, data, m.path("f"))
}
