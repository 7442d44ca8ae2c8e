package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ioctlShutdown is the filesystem shutdown ioctl (XFS_IOC_GOINGDOWN,
// FS_IOC_SHUTDOWN): _IOR('X', 125, __u32), the flag at the argument.
const ioctlShutdown = 0x8004587d

// shutdownMount issues the shutdown ioctl with flag on the mount's root
// directory, as xfs_io's shutdown and fstests' godown do.
func shutdownMount(mnt string, flag uint32) error {
	fd, err := unix.Open(mnt, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	v := flag
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), ioctlShutdown, uintptr(unsafe.Pointer(&v)))
	runtime.KeepAlive(&v)
	if e != 0 {
		return e
	}
	if v != flag {
		return fmt.Errorf("the ioctl changed the caller's flag from %d to %d", flag, v)
	}
	return nil
}

// probeStopped checks that a mount that was shut down answers EIO to a
// stat, an open of a directory, a create and a statfs; it returns what
// did not.
func probeStopped(mnt string) []string {
	var out []string
	want := func(what string, err error) {
		if !errors.Is(err, syscall.EIO) {
			out = append(out, fmt.Sprintf("%s: %v, want EIO", what, err))
		}
	}
	var st unix.Stat_t
	want("stat "+sharedDir, unix.Stat(filepath.Join(mnt, sharedDir), &st))
	fd, err := unix.Open(filepath.Join(mnt, threadDir(0)), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == nil {
		unix.Close(fd)
	}
	want("open "+threadDir(0), err)
	fd, err = unix.Open(filepath.Join(mnt, sharedDir, ".after-shutdown"), unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err == nil {
		unix.Close(fd)
	}
	want("create in "+sharedDir, err)
	var sfs unix.Statfs_t
	want("statfs", unix.Statfs(mnt, &sfs))
	return out
}
