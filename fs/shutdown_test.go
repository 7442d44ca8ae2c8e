package fs

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"reflect"
	"runtime"
	"syscall"
	"testing"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"vosfs/vos"
)

// shutdownFd issues the shutdown ioctl on fd with flag, as xfs_io's
// shutdown and fstests' godown do, and returns the flag as the caller's
// memory holds it afterwards.
func shutdownFd(fd int, flag uint32) (uint32, error) {
	v := flag
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), ioctlShutdown, uintptr(unsafe.Pointer(&v)))
	runtime.KeepAlive(&v)
	if e != 0 {
		return v, e
	}
	return v, nil
}

// unmountStopped unmounts a filesystem that was shut down: the pool closes
// with the shutdown as its failure, not cleanly.
func (m *mounted) unmountStopped() {
	m.t.Helper()
	require.NoError(m.t, m.srv.Unmount())
	m.srv.Wait()
	m.srv = nil
	require.NoError(m.t, m.f.Close())
	require.ErrorIs(m.t, m.p.Close(), vos.ErrShutdown)
}

// TestShutdownIoctl shuts a real mount down with each flag through the
// ioctl on a directory: the ioctl succeeds and leaves the caller's flag
// as it was; every later operation fails with EIO (stat, lookup, open,
// read and getdents on descriptors opened before, write, create, statfs,
// xattrs), a second shutdown answers 0; the mount unmounts, and the next
// mount recovers what the flag promises: every acknowledged operation with
// flags 0 and 1 (under commit=async, where acknowledged is not durable),
// every fsync'd one with flag 2.
func TestShutdownIoctl(t *testing.T) {
	for _, flag := range []uint32{0, 1, 2} {
		t.Run(fmt.Sprint(flag), func(t *testing.T) {
			opts := DefaultOptions()
			opts.Commit = CommitAsync
			m := mountTest(t, opts)
			require.NoError(t, os.Mkdir(m.path("d"), 0o755))
			writeFile(t, m.path("d/synced"), pattern(1, 10000))
			fd, err := unix.Open(m.path("d/synced"), unix.O_RDWR, 0)
			require.NoError(t, err)
			require.NoError(t, unix.Fsync(fd))
			writeFile(t, m.path("acked"), pattern(2, 300))
			buf := make([]byte, 100)
			_, err = unix.Pread(fd, buf, 0) // in the page cache
			require.NoError(t, err)
			dfd, err := unix.Open(m.path("d"), unix.O_RDONLY|unix.O_DIRECTORY, 0)
			require.NoError(t, err)
			var st unix.Stat_t
			require.NoError(t, unix.Stat(m.path("d/synced"), &st)) // attributes and name cached

			root, err := unix.Open(m.mnt, unix.O_RDONLY|unix.O_DIRECTORY, 0)
			require.NoError(t, err)
			after, err := shutdownFd(root, flag)
			require.NoError(t, err)
			require.Equal(t, flag, after, "the caller's flag is left as it was")
			require.True(t, m.f.stopped.Load())
			require.ErrorIs(t, m.p.Err(), vos.ErrShutdown)

			requireErrno(t, syscall.EIO, unix.Stat(m.path("d/synced"), &st), "stat of a cached name")
			requireErrno(t, syscall.EIO, unix.Fstat(fd, &st), "fstat")
			requireErrno(t, syscall.EIO, unix.Stat(m.path("nonexistent"), &st), "lookup")
			_, err = unix.Pread(fd, buf, 0)
			requireErrno(t, syscall.EIO, err, "read of cached pages")
			_, err = unix.Pwrite(fd, []byte("late"), 0)
			requireErrno(t, syscall.EIO, err, "write")
			_, err = unix.Getdents(dfd, make([]byte, 4096))
			requireErrno(t, syscall.EIO, err, "getdents")
			_, err = unix.Open(m.path("acked"), unix.O_RDONLY, 0)
			requireErrno(t, syscall.EIO, err, "open")
			_, err = unix.Open(m.path("new"), unix.O_CREAT|unix.O_WRONLY, 0o644)
			requireErrno(t, syscall.EIO, err, "create")
			requireErrno(t, syscall.EIO, unix.Mkdir(m.path("newdir"), 0o755), "mkdir")
			var sfs unix.Statfs_t
			requireErrno(t, syscall.EIO, unix.Fstatfs(root, &sfs), "statfs")
			_, err = unix.Fgetxattr(root, "user.x", buf)
			requireErrno(t, syscall.EIO, err, "getxattr")
			requireErrno(t, syscall.EIO, unix.Fsync(fd), "fsync")
			_, err = shutdownFd(root, flag)
			require.NoError(t, err, "a second shutdown succeeds, as on XFS")
			for _, c := range []int{fd, dfd, root} {
				unix.Close(c) // the close's flush gets EIO too; the descriptor is gone either way
			}

			m.unmountStopped()
			m.mount()
			require.False(t, m.p.Recovery().Clean)
			requireContent(t, pattern(1, 10000), m.path("d/synced"))
			if flag != 2 {
				requireContent(t, pattern(2, 300), m.path("acked"))
			}
			require.NoError(t, m.f.Check())
			writeFile(t, m.path("d/after"), []byte("works again"))
		})
	}
}

// TestShutdownIoctlRefused: without CAP_SYS_ADMIN the ioctl is EPERM, an
// unknown flag EINVAL, an unreadable flag EFAULT, and the filesystem keeps
// working; on a file (not only a directory) it shuts down.
func TestShutdownIoctlRefused(t *testing.T) {
	m := mountTest(t, DefaultOptions())
	writeFile(t, m.path("f"), []byte("data"))
	fd, err := unix.Open(m.path("f"), unix.O_RDONLY, 0)
	require.NoError(t, err)

	err = withoutCap(capSysAdmin, func() error {
		_, err := shutdownFd(fd, 0)
		return err
	})
	requireErrno(t, syscall.EPERM, err, "without CAP_SYS_ADMIN")
	_, err = shutdownFd(fd, 3)
	requireErrno(t, syscall.EINVAL, err, "flag 3")
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), ioctlShutdown, 8)
	requireErrno(t, syscall.EFAULT, e, "flag at an unmapped address")
	_, _, e = unix.Syscall(unix.SYS_IOCTL, uintptr(fd), 0x80045800, 0)
	requireErrno(t, syscall.ENOTTY, e, "an unknown ioctl")
	require.False(t, m.f.stopped.Load())
	requireContent(t, []byte("data"), m.path("f"))

	_, err = shutdownFd(fd, 1)
	require.NoError(t, err)
	_, err = unix.Pread(fd, make([]byte, 4), 0)
	requireErrno(t, syscall.EIO, err)
	unix.Close(fd)
	m.unmountStopped()
	m.mount()
	requireContent(t, []byte("data"), m.path("f"))
}

// withoutCap runs fn on an OS thread whose effective capabilities lack
// capability c (the uid stays 0); the thread is thrown away afterwards.
// fn must only make raw system calls.
func withoutCap(c int, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		data[c/32].Effective &^= 1 << (c % 32)
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// TestGateCoversEveryRequest: the gate answers every request of
// fuse.RawFileSystem itself, except those unmounting needs; a request type
// a new go-fuse adds fails this until it is placed on one side.
func TestGateCoversEveryRequest(t *testing.T) {
	passes := map[string]bool{
		"String": true, "SetDebug": true, "Init": true, "OnUnmount": true,
		"Forget": true, "Release": true, "ReleaseDir": true,
	}
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "gate.go", nil, 0)
	require.NoError(t, err)
	gated := map[string]bool{}
	for _, d := range file.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Recv == nil {
			continue
		}
		gated[fd.Name.Name] = true
	}
	it := reflect.TypeOf((*fuse.RawFileSystem)(nil)).Elem()
	var missing []string
	for i := range it.NumMethod() {
		name := it.Method(i).Name
		if !gated[name] && !passes[name] {
			missing = append(missing, name)
		}
		if gated[name] && passes[name] {
			t.Errorf("%s is both gated and passed", name)
		}
	}
	if len(missing) > 0 {
		t.Error(errors.New(fmt.Sprint("requests the gate lets through unchecked: ", missing)))
	}
}
