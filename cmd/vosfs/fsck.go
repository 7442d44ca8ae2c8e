package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"vosfs/blob"
	"vosfs/fs"
	"vosfs/pool"
)

func newFsckCmd() *cobra.Command {
	var repair bool
	c := &cobra.Command{
		Use:   "fsck [flags] POOLDIR",
		Short: "check a pool that is not mounted",
		Long: `Checks the pool in POOLDIR, which must not be mounted: the blob headers,
the allocators against everything the store references, the store's
indexes, and the namespace (entries, link counts, reachability). A pool
that was not closed cleanly is first recovered from its log, as a mount
would. A pool whose daemon is still closing it (just unmounted) is waited
for.

A log damaged in the middle (acknowledged records after the damage) makes
fsck, like mount, refuse the pool with the position of the damage. With
--repair, fsck truncates the log there instead, saying how many intact
records and bytes of log it drops, and then checks the pool: the
operations in the dropped records are lost. Nothing is ever repaired
without --repair.

Prints each problem on its own line and exits with status 1 if there is
any; prints one line and exits with status 0 if the pool is clean.`,
		Args:              exactArgs("POOLDIR"),
		ValidArgsFunction: completeDirs,
		RunE: func(_ *cobra.Command, args []string) error {
			return runFsck(args[0], repair)
		},
	}
	c.Flags().BoolVar(&repair, "repair", false, "truncate a damaged log at the damage, dropping what follows it")
	return c
}

func runFsck(arg string, repair bool) error {
	dir, err := absDir(arg)
	if err != nil {
		return err
	}
	if !poolExists(dir) {
		return fmt.Errorf("%s holds no pool", dir)
	}
	if err := waitClosing(dir, closeWait); err != nil {
		return err
	}
	// Refuse a mounted pool before opening it, which would recover it.
	lock, err := blob.NewOSFS(false).Lock(filepath.Join(dir, pool.LockFile))
	if err != nil {
		if errors.Is(err, blob.ErrLocked) {
			return errPoolBusy(dir)
		}
		return err
	}
	lock.Close()

	pr := newProgress(os.Stderr)
	p, err := pool.Open(blob.NewOSFS(true), dir, pool.Options{Progress: func(stage string, done, total uint64) {
		what := "loading metadata"
		if stage == "replay" {
			what = "replaying log"
		}
		pr.show(what+": "+bytesOf(done, total), false)
	}, RepairLog: repair})
	pr.done()
	if err != nil {
		if errors.Is(err, blob.ErrLocked) {
			return errPoolBusy(dir)
		}
		return err
	}
	if rec := p.Recovery(); !rec.Clean {
		fmt.Println(describeRecovery(dir, rec))
	}
	if d := p.Recovery().Repaired; d != nil {
		fmt.Printf("%s: repaired: the log was truncated at position %d (%s; %s), dropping %d intact record(s) and %d bytes of log\n",
			dir, d.At, d.Reason, d.Cause, d.Intact, d.Dropped())
	}
	opts := fs.DefaultOptions()
	opts.ReadOnly = true // also leaves orphans in place, for the checker to see
	f, err := fs.New(p, opts)
	if err != nil {
		p.Close()
		return fmt.Errorf("%s: cannot open the filesystem: %w", dir, err)
	}
	checkErr := f.Check()
	objects, countErr := countObjects(f)
	st := f.Stats()
	closeErr := errors.Join(f.Close(), p.Close())

	if checkErr != nil {
		problems := flattenErrors(checkErr)
		for _, pr := range problems {
			fmt.Printf("%s: %s\n", dir, pr)
		}
		return fmt.Errorf("%s: %d problem(s) found", dir, len(problems))
	}
	if countErr != nil {
		return fmt.Errorf("%s: counting objects: %w", dir, countErr)
	}
	if closeErr != nil {
		return fmt.Errorf("%s: checked clean, but closing failed: %w", dir, closeErr)
	}
	u := usageOf(st.Pool)
	fmt.Printf("%s: clean, %s, data %s used / %s free, metadata %s used / %s free\n",
		dir, count(objects, "object", "objects"),
		humanize.IBytes(u.DataUsed), humanize.IBytes(u.DataFree),
		humanize.IBytes(u.HeapUsed), humanize.IBytes(u.HeapFree))
	return nil
}

// countObjects counts the store's objects.
func countObjects(f *fs.FS) (uint64, error) {
	v := f.Store().Latest()
	defer v.Close()
	var n uint64
	err := v.ListObjects(func(uint64) bool {
		n++
		return true
	})
	return n, err
}

// flattenErrors lists the problems inside a joined error, one line each.
func flattenErrors(err error) []string {
	var out []string
	var walk func(error)
	walk = func(e error) {
		// A join (and only a join: fmt.Errorf with two %w also has
		// Unwrap() []error) is its parts, one per line.
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			subs := j.Unwrap()
			parts := make([]string, len(subs))
			for i, sub := range subs {
				parts[i] = sub.Error()
			}
			if strings.Join(parts, "\n") == e.Error() {
				for _, sub := range subs {
					walk(sub)
				}
				return
			}
		}
		for _, line := range strings.Split(e.Error(), "\n") {
			if line = strings.TrimSpace(line); line != "" {
				out = append(out, line)
			}
		}
	}
	walk(err)
	return out
}
