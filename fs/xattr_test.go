package fs

import (
	"bytes"
	"os"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func listXattrs(t testing.TB, path string) []string {
	t.Helper()
	sz, err := unix.Llistxattr(path, nil)
	require.NoError(t, err)
	buf := make([]byte, sz)
	n, err := unix.Llistxattr(path, buf)
	require.NoError(t, err)
	require.Equal(t, sz, n)
	var out []string
	for _, s := range bytes.Split(buf[:n], []byte{0}) {
		if len(s) > 0 {
			out = append(out, string(s))
		}
	}
	sort.Strings(out)
	return out
}

func TestXattrs(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	p := m.path("f")
	writeFile(t, p, []byte("data"))
	require.NoError(t, os.Mkdir(m.path("d"), 0o755))
	require.Empty(t, listXattrs(t, p))

	get := func(path, name string) ([]byte, error) {
		sz, err := unix.Lgetxattr(path, name, nil)
		if err != nil {
			return nil, err
		}
		buf := make([]byte, sz)
		n, err := unix.Lgetxattr(path, name, buf)
		return buf[:n], err
	}

	values := []struct {
		name  string
		value []byte
	}{
		{"user.empty", []byte{}},
		{"user.small", []byte("v")},
		{"user.binary", []byte{0, 1, 2, 0, 255}},
		{"user.big", bytes.Repeat([]byte("x"), 60000)},
		{"trusted.t", []byte("trusted value")},
		{"user." + strings.Repeat("n", 250), []byte("longest name")},
	}
	for _, v := range values {
		require.NoError(t, unix.Lsetxattr(p, v.name, v.value, 0), v.name)
		got, err := get(p, v.name)
		require.NoError(t, err, v.name)
		require.Equal(t, v.value, got, v.name)
		// Size query with a nil buffer.
		sz, err := unix.Lgetxattr(p, v.name, nil)
		require.NoError(t, err)
		require.Equal(t, len(v.value), sz, v.name)
	}
	var want []string
	for _, v := range values {
		want = append(want, v.name)
	}
	sort.Strings(want)
	require.Equal(t, want, listXattrs(t, p))

	// Missing names, flags, small buffers.
	_, err := get(p, "user.missing")
	requireErrno(t, syscall.ENODATA, err)
	requireErrno(t, syscall.EEXIST, unix.Lsetxattr(p, "user.small", []byte("w"), unix.XATTR_CREATE))
	requireErrno(t, syscall.ENODATA, unix.Lsetxattr(p, "user.missing", []byte("w"), unix.XATTR_REPLACE))
	require.NoError(t, unix.Lsetxattr(p, "user.small", []byte("replaced"), unix.XATTR_REPLACE))
	require.NoError(t, unix.Lsetxattr(p, "user.created", []byte("new"), unix.XATTR_CREATE))
	got, err := get(p, "user.small")
	require.NoError(t, err)
	require.Equal(t, "replaced", string(got))
	_, err = unix.Lgetxattr(p, "user.small", make([]byte, 3))
	requireErrno(t, syscall.ERANGE, err)
	_, err = unix.Llistxattr(p, make([]byte, 5))
	requireErrno(t, syscall.ERANGE, err)
	requireErrno(t, syscall.ERANGE, unix.Lsetxattr(p, "user."+strings.Repeat("n", 251), []byte("x"), 0), "name of 256 bytes")
	requireErrno(t, syscall.E2BIG, unix.Lsetxattr(p, "user.huge", make([]byte, 70000), 0))
	// Names outside the namespaces, or a namespace alone, as on ext4.
	requireErrno(t, syscall.EOPNOTSUPP, unix.Lsetxattr(p, "bogus.name", []byte("x"), 0), "unknown namespace")
	requireErrno(t, syscall.EOPNOTSUPP, unix.Lsetxattr(p, "noprefix", []byte("x"), 0), "no namespace")
	_, err = get(p, "bogus.name")
	requireErrno(t, syscall.EOPNOTSUPP, err, "get in an unknown namespace")
	requireErrno(t, syscall.EOPNOTSUPP, unix.Lremovexattr(p, "bogus.name"), "remove in an unknown namespace")
	requireErrno(t, syscall.EINVAL, unix.Lsetxattr(p, "user.", []byte("x"), 0), "namespace alone")
	require.NoError(t, unix.Lsetxattr(p, "security.label", []byte("x"), 0))
	require.NoError(t, unix.Lremovexattr(p, "security.label"))

	// Remove.
	before := lstat(t, p)
	time.Sleep(time.Millisecond)
	require.NoError(t, unix.Lremovexattr(p, "user.binary"))
	requireErrno(t, syscall.ENODATA, unix.Lremovexattr(p, "user.binary"))
	_, err = get(p, "user.binary")
	requireErrno(t, syscall.ENODATA, err)
	require.NotContains(t, listXattrs(t, p), "user.binary")
	after := lstat(t, p)
	require.Greater(t, tsNano(after.Ctim), tsNano(before.Ctim), "ctime on removexattr")
	require.Equal(t, before.Mtim, after.Mtim)

	// Directories and symlinks (trusted.* on symlinks; user.* is not
	// allowed there).
	require.NoError(t, unix.Lsetxattr(m.path("d"), "user.dir", []byte("on a dir"), 0))
	got, err = get(m.path("d"), "user.dir")
	require.NoError(t, err)
	require.Equal(t, "on a dir", string(got))
	require.NoError(t, os.Symlink("f", m.path("l")))
	requireErrno(t, syscall.EPERM, unix.Lsetxattr(m.path("l"), "user.x", []byte("x"), 0))
	require.NoError(t, unix.Lsetxattr(m.path("l"), "trusted.link", []byte("on the link"), 0))
	require.Equal(t, []string{"trusted.link"}, listXattrs(t, m.path("l")))
	_, err = get(p, "trusted.link")
	requireErrno(t, syscall.ENODATA, err)

	// Hard links share them; they go with the last link.
	require.NoError(t, os.Link(p, m.path("g")))
	got, err = get(m.path("g"), "user.small")
	require.NoError(t, err)
	require.Equal(t, "replaced", string(got))
	require.NoError(t, os.Remove(p))
	require.Contains(t, listXattrs(t, m.path("g")), "user.big")
	require.NoError(t, os.Remove(m.path("g")))
	require.NoError(t, os.RemoveAll(m.path("d")))

	// Through a descriptor of an unlinked file.
	writeFile(t, p, nil)
	fd, err := unix.Open(p, unix.O_RDWR, 0)
	require.NoError(t, err)
	require.NoError(t, os.Remove(p))
	require.NoError(t, unix.Fsetxattr(fd, "user.orphan", []byte("o"), 0))
	buf := make([]byte, 10)
	n, err := unix.Fgetxattr(fd, "user.orphan", buf)
	require.NoError(t, err)
	require.Equal(t, "o", string(buf[:n]))
	require.NoError(t, unix.Close(fd))
}
