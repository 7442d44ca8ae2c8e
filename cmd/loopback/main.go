// Command loopback mounts a directory through go-fuse's loopback node, with
// the same mount settings vosfs uses, as the FUSE baseline of the
// benchmarks: vosfs against loopback over the same disk shows what the
// object store costs, loopback against the bare directory what FUSE costs.
//
//	loopback [-max_write 1MiB] ORIGINAL MOUNTPOINT
//
// It serves until unmounted or signalled.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"
	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

func main() {
	maxWrite := flag.String("max_write", "1MiB", "largest FUSE write")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: loopback [-max_write SIZE] ORIGINAL MOUNTPOINT\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 2 {
		flag.Usage()
		os.Exit(2)
	}
	mw, err := humanize.ParseBytes(*maxWrite)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loopback: -max_write: %v\n", err)
		os.Exit(2)
	}
	root, err := gofs.NewLoopbackRoot(flag.Arg(0))
	if err != nil {
		fmt.Fprintf(os.Stderr, "loopback: %v\n", err)
		os.Exit(1)
	}
	sec := time.Second
	srv, err := gofs.Mount(flag.Arg(1), root, &gofs.Options{
		MountOptions: fuse.MountOptions{
			FsName:       flag.Arg(0),
			Name:         "loopback",
			MaxWrite:     int(mw),
			MaxReadAhead: 1 << 20,
			DirectMount:  os.Geteuid() == 0,
			Options:      []string{"default_permissions"},
		},
		EntryTimeout:    &sec,
		AttrTimeout:     &sec,
		NullPermissions: true,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "loopback: %v\n", err)
		os.Exit(1)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		_ = srv.Unmount()
	}()
	srv.Wait()
}
