package main

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"vosfs/fs"
)

// remount changes the flags of the live vosfs mount at mp, as
// "mount -o remount,..." asks through the helper: the kernel's flags by
// mount(2), and read-only or read-write in the daemon too, which then
// refuses changes itself and leaves access times alone. Going read-only
// the daemon is told first, so that nothing it does changes the pool
// once the kernel shows the mount read-only; going read-write, last.
func remount(mp string, opts fs.Options) error {
	r, ok, err := findMount(mp)
	if err != nil {
		return err
	}
	abs, _ := absDir(mp)
	if !ok || r.Mountpoint != abs {
		return fmt.Errorf("remount: %s is not a vosfs mount point", abs)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("remount of %s: only root can remount (mount(2) with MS_REMOUNT)", r.Mountpoint)
	}
	if opts.ReadOnly {
		if err := setReadOnly(r.Pool, true); err != nil {
			return fmt.Errorf("remount %s read-only: %w", r.Mountpoint, err)
		}
	}
	if err := unix.Mount(r.FsName, r.Mountpoint, "", unix.MS_REMOUNT|opts.MountFlags(), ""); err != nil {
		if opts.ReadOnly {
			// The kernel kept the mount as it was (busy: files open for
			// writing): so does the daemon.
			if rerr := setReadOnly(r.Pool, false); rerr != nil {
				err = fmt.Errorf("%w; and the daemon stays read-only: %v", err, rerr)
			}
		}
		return fmt.Errorf("remount %s: %w", r.Mountpoint, err)
	}
	if !opts.ReadOnly {
		if err := setReadOnly(r.Pool, false); err != nil {
			return fmt.Errorf("remount %s read-write: the kernel's mount is, the daemon refused: %w", r.Mountpoint, err)
		}
	}
	return nil
}
