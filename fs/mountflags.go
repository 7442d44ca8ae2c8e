package fs

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// defaultSubtype is the filesystem type's second half, fuse.vosfs.
const defaultSubtype = "vosfs"

// errMaxReadFusermount: fusermount3 is given go-fuse's own max_read last,
// so a smaller one cannot reach the kernel on such a mount.
var errMaxReadFusermount = errors.New("max_read can only be set on a mount made directly by root (not through fusermount3)")

// errLazyTimeFusermount: fusermount3 has no lazytime.
var errLazyTimeFusermount = errors.New("lazytime can only be set on a mount made directly by root (fusermount3 does not take it)")

// fuseMountOptions are the options the kernel (or fusermount3) is given to
// mount f.
func (f *FS) fuseMountOptions() (fuse.MountOptions, error) {
	o := f.opts
	mo := fuse.MountOptions{
		FsName:       o.FsName,
		Name:         o.Subtype,
		MaxWrite:     o.MaxWrite,
		MaxReadAhead: 1 << 20,
		// allow_root is allow_other for the kernel; the daemon turns away
		// everyone but root and the mounter (allowRootFS).
		AllowOther:  o.AllowOther || o.AllowRoot,
		Debug:       o.Debug,
		DirectMount: os.Geteuid() == 0,
	}
	if mo.Name == "" {
		mo.Name = defaultSubtype
	}
	// The kernel checks permissions against the modes we report.
	mo.Options = append(mo.Options, "default_permissions")
	flags, names := kernelFlags(o)
	if mo.DirectMount {
		// mount(2) takes these as flags: in its option string the kernel
		// refuses the atime ones.
		mo.DirectMountFlags = flags
	} else {
		// The daemon applies strictatime and nodiratime itself; the
		// kernel's lazytime flag only mount(2) sets.
		if o.LazyTime {
			return mo, errLazyTimeFusermount
		}
		mo.Options = append(mo.Options, names...)
	}
	if o.MaxRead != 0 {
		if o.MaxRead > o.MaxWrite {
			return mo, fmt.Errorf("max_read %d is more than max_write %d", o.MaxRead, o.MaxWrite)
		}
		if !mo.DirectMount {
			return mo, errMaxReadFusermount
		}
		// After go-fuse's own max_read (max_write): the kernel takes the
		// last.
		mo.Options = append(mo.Options, fmt.Sprintf("max_read=%d", o.MaxRead))
	}
	return mo, nil
}

// MountFlags are the mount(2) flags of the kernel mount options in o (for
// a remount: MS_REMOUNT is the caller's).
func (o Options) MountFlags() uintptr {
	flags, _ := kernelFlags(o)
	return flags
}

// kernelFlags are the mount(2) flags of the options, and the same as
// fusermount3 takes them.
func kernelFlags(o Options) (uintptr, []string) {
	var flags uintptr
	var names []string
	// fusermount3 knows ro, nosuid, nodev, noexec, sync, dirsync and
	// noatime (and suid, dev); the other flags have no name for it ("").
	set := func(on bool, flag uintptr, name string) {
		if on {
			flags |= flag
			if name != "" {
				names = append(names, name)
			}
		}
	}
	set(o.ReadOnly, syscall.MS_RDONLY, "ro")
	set(!o.Suid, syscall.MS_NOSUID, "nosuid")
	set(!o.Dev, syscall.MS_NODEV, "nodev")
	set(o.NoExec, syscall.MS_NOEXEC, "noexec")
	set(o.Sync, syscall.MS_SYNCHRONOUS, "sync")
	set(o.DirSync, syscall.MS_DIRSYNC, "dirsync")
	set(o.NoAtime, syscall.MS_NOATIME, "noatime")
	set(o.StrictAtime && !o.NoAtime, syscall.MS_STRICTATIME, "")
	set(!o.StrictAtime && !o.NoAtime, syscall.MS_RELATIME, "")
	set(o.NoDiratime, syscall.MS_NODIRATIME, "")
	set(o.LazyTime, unix.MS_LAZYTIME, "")
	if o.Suid {
		names = append(names, "suid")
	}
	if o.Dev {
		names = append(names, "dev")
	}
	return flags, names
}
