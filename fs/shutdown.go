package fs

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"vosfs/vos"
)

// The filesystem shutdown ioctl: XFS_IOC_GOINGDOWN, which ext4
// (EXT4_IOC_SHUTDOWN) and the generic FS_IOC_SHUTDOWN share:
// _IOR('X', 125, __u32), the flag in the caller's memory at the argument.
// Its flags are vos.ShutdownDefault (0: sync, then stop),
// vos.ShutdownLogFlush (1: flush the log, then stop) and
// vos.ShutdownNoLogFlush (2: stop at once).
const ioctlShutdown = 0x8004587d

// dropCachesWait bounds how long the shutdown ioctl waits for the kernel
// to drop its caches of the mount.
const dropCachesWait = 2 * time.Second

// capSysAdmin is the capability the shutdown ioctl requires, as on XFS.
const capSysAdmin = 21

var _ = (gofs.NodeIoctler)((*node)(nil))

// Ioctl serves the ioctls vosfs knows on any file or directory of the
// mount, a snapshot's included; the rest are ENOTTY.
func (n *node) Ioctl(ctx context.Context, fh gofs.FileHandle, cmd uint32, arg uint64, input, output []byte) (int32, syscall.Errno) {
	switch cmd {
	case ioctlShutdown:
		return 0, n.fs.shutdownIoctl(ctx, arg, output)
	}
	return 0, syscall.ENOTTY
}

// shutdownIoctl serves the shutdown ioctl. The kernel passes a FUSE
// filesystem no input for an _IOR ioctl (the direction says the flag goes
// to the caller, though the filesystem reads it), and it sends
// unrestricted ioctls, which could ask for the bytes, only to CUSE
// devices: the flag is read from the caller's memory at arg with
// process_vm_readv. The kernel copies the reply's 4 bytes back to arg, so
// the reply carries the flag read and the caller's memory stays as it was.
//
// The caller needs CAP_SYS_ADMIN (EPERM), the flag must be 0, 1 or 2
// (EINVAL). A filesystem already stopped answers 0, as XFS and ext4 do.
func (f *FS) shutdownIoctl(ctx context.Context, arg uint64, output []byte) syscall.Errno {
	c, ok := fuse.FromContext(ctx)
	if !ok || c.Pid == 0 || !hasCap(int(c.Pid), capSysAdmin) {
		return syscall.EPERM
	}
	var b [4]byte
	if len(output) != len(b) {
		return syscall.EINVAL
	}
	if errno := readCaller(int(c.Pid), arg, b[:]); errno != 0 {
		return errno
	}
	copy(output, b[:])
	flag := vos.ShutdownFlag(binary.NativeEndian.Uint32(b[:]))
	if flag > vos.ShutdownNoLogFlush {
		return syscall.EINVAL
	}
	return f.shutdown(flag)
}

// shutdown stops the filesystem: from now on every request gets EIO (see
// gate.go), the store makes durable what flag asks for and stops as a
// power cut would, and the kernel is told to drop what it caches of the
// mount so that reads and stats reach the gate too. Unmounting still
// works; the next mount recovers the durable state.
func (f *FS) shutdown(flag vos.ShutdownFlag) syscall.Errno {
	if !f.stopped.CompareAndSwap(false, true) || f.s.Failed() != nil {
		return 0 // stopped already, by a shutdown or a fail-stop
	}
	err := f.s.Shutdown(flag)
	f.logf("shut down by ioctl (flag %d): every later request gets EIO; unmount, then mount to recover", flag)
	// The caches are dropped before the ioctl returns, so that the
	// caller's next read or stat fails; the wait is bounded, since an
	// invalidation waits for requests in flight on the same pages.
	dropped := make(chan struct{})
	go func() {
		defer close(dropped)
		f.dropKernelCaches()
	}()
	select {
	case <-dropped:
	case <-time.After(dropCachesWait):
		f.logf("shutdown: the kernel's caches are still being dropped after %v", dropCachesWait)
	}
	if err != nil {
		f.logf("shutdown: %v", err)
		return syscall.EIO
	}
	return 0
}

// dropKernelCaches has the kernel forget the attributes, pages and names
// it caches of every inode it knows by a name, so that later stats, reads
// and lookups come to the daemon and get EIO. It runs on its own
// goroutine: an invalidation waits for the requests in flight on the pages
// or directory it invalidates, which the gate answers meanwhile.
func (f *FS) dropKernelCaches() {
	seen := map[*gofs.Inode]bool{}
	var walk func(in *gofs.Inode)
	walk = func(in *gofs.Inode) {
		if seen[in] {
			return
		}
		seen[in] = true
		_ = in.NotifyContent(0, 0) // attributes and every page
		for name, child := range in.Children() {
			walk(child)
			_ = in.NotifyEntry(name)
		}
	}
	walk(f.root.EmbeddedInode())
}

// hasCap reports whether thread tid of the caller has capability c in its
// effective set.
func hasCap(tid, c int) bool {
	fh, err := os.Open(fmt.Sprintf("/proc/%d/status", tid))
	if err != nil {
		return false
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<c) != 0
		}
	}
	return false
}

// readCaller reads len(b) bytes at addr in the memory of the caller's
// thread tid: EFAULT if they are not there.
func readCaller(tid int, addr uint64, b []byte) syscall.Errno {
	local := []unix.Iovec{{Base: &b[0]}}
	local[0].SetLen(len(b))
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(b)}}
	n, err := unix.ProcessVMReadv(tid, local, remote, 0)
	switch {
	case err == syscall.EPERM || err == syscall.ESRCH:
		return syscall.EPERM
	case err != nil || n != len(b):
		return syscall.EFAULT
	}
	return 0
}
