package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

func newUmountCmd() *cobra.Command {
	var lazy bool
	var timeout time.Duration
	c := &cobra.Command{
		Use:        "umount [flags] MOUNTPOINT|POOLDIR",
		Short:      "unmount a pool and wait until it is closed",
		SuggestFor: []string{"unmount"},
		Long: `Unmounts the vosfs filesystem on MOUNTPOINT (or wherever POOLDIR is
mounted), then waits until its daemon has written everything back and
closed the pool, so that fsck, mkfs --force or another mount can follow at
once. Prints nothing when done within a second, a line on stderr while it
waits longer.

A mount that is in use (a process has a file or its working directory in
it) is refused, unless --lazy: the mount is then detached at once and the
daemon closes the pool when the last file open in it is closed; if that
takes longer than --timeout, umount says so and succeeds.`,
		Args:              exactArgs("MOUNTPOINT or POOLDIR"),
		ValidArgsFunction: completeDirs,
		RunE: func(_ *cobra.Command, args []string) error {
			return runUmount(args[0], lazy, timeout)
		},
	}
	c.Flags().BoolVarP(&lazy, "lazy", "l", false, "detach the mount now, even if in use (umount -l)")
	c.Flags().DurationVar(&timeout, "timeout", closeWait, "how long to wait for the daemon to close the pool")
	return c
}

func runUmount(arg string, lazy bool, timeout time.Duration) error {
	dir, mp, err := resolveTarget(arg)
	if err != nil {
		return err
	}
	pid := livePID(dir)
	if mp == "" {
		if pid > 0 {
			// Unmounted already; its daemon may still be closing.
			return waitClosed(dir, pid, timeout, lazy)
		}
		return fmt.Errorf("pool %s is not mounted", dir)
	}
	if err := unmountPath(mp, lazy); err != nil {
		return err
	}
	return waitClosed(dir, pid, timeout, lazy)
}

// unmountPath unmounts mp: with umount(2) when allowed, else (not root)
// through fusermount3, which lets the user who mounted unmount.
func unmountPath(mp string, lazy bool) error {
	flags := 0
	if lazy {
		flags = unix.MNT_DETACH
	}
	err := unix.Unmount(mp, flags)
	if errors.Is(err, unix.EPERM) {
		args := []string{"-u"}
		if lazy {
			args = append(args, "-z")
		}
		out, ferr := exec.Command("fusermount3", append(args, "--", mp)...).CombinedOutput()
		if ferr != nil {
			return fmt.Errorf("unmount %s: %v (fusermount3: %s)", mp, err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("%s is busy: a process has a file or its working directory in it (find it with 'fuser -vm %s'), or unmount with --lazy", mp, mp)
	}
	return fmt.Errorf("unmount %s: %w", mp, err)
}

// waitClosed waits, at most timeout, until the daemon pid (0 if none was
// known) has exited and the pool's lock is free. After a second it says on
// stderr what it waits for.
func waitClosed(dir string, pid int, timeout time.Duration, lazy bool) error {
	start := time.Now()
	told := false
	for {
		// The daemon removes its pid file once the pool is closed, then
		// exits: wait for the exit too, so that nothing of it is left.
		gone := pid == 0 || !processAlive(pid)
		if gone && !poolLocked(dir) {
			return nil
		}
		waited := time.Since(start)
		if waited > timeout {
			if lazy {
				fmt.Fprintf(os.Stderr, "vosfs: detached; pool %s stays open until the last file open in it is closed\n", dir)
				return nil
			}
			return fmt.Errorf("unmounted, but the daemon%s has not closed pool %s after %s; see %s",
				pidText(pid), dir, fmtDuration(timeout), filepath.Join(dir, logName))
		}
		if !told && waited > time.Second {
			fmt.Fprintf(os.Stderr, "vosfs: waiting for the daemon%s to write back and close pool %s\n", pidText(pid), dir)
			told = true
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func pidText(pid int) string {
	if pid == 0 {
		return ""
	}
	return fmt.Sprintf(" (pid %d)", pid)
}
