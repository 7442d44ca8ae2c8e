// Command loopback mounts a directory through go-fuse's loopback node, with
// the same mount settings vosfs uses, as the FUSE baseline of the
// benchmarks: vosfs against loopback over the same disk shows what the
// object store costs, loopback against the bare directory what FUSE costs.
//
//	loopback [-max_write 1MiB] [-passthrough=false] ORIGINAL MOUNTPOINT
//
// With -passthrough=false it declines the kernel's FUSE passthrough, so
// that every read and write of a file is a request to the daemon.
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
	passthrough := flag.Bool("passthrough", true, "let the kernel read and write the backing files itself where it can (FUSE passthrough)")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: loopback [-max_write SIZE] [-passthrough=false] ORIGINAL MOUNTPOINT\n")
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
	srv, _, err := mount(flag.Arg(0), flag.Arg(1), int(mw), *passthrough)
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

// mount mounts orig on mnt through go-fuse's loopback node; it returns the
// server and the root node.
func mount(orig, mnt string, maxWrite int, passthrough bool) (*fuse.Server, gofs.InodeEmbedder, error) {
	root, err := gofs.NewLoopbackRoot(orig)
	if err != nil {
		return nil, nil, err
	}
	if !passthrough {
		ln := root.(*gofs.LoopbackNode)
		root = &fdNode{ln}
		ln.RootData.RootNode = root
	}
	sec := time.Second
	srv, err := gofs.Mount(mnt, root, &gofs.Options{
		MountOptions: fuse.MountOptions{
			FsName:       orig,
			Name:         "loopback",
			MaxWrite:     maxWrite,
			MaxReadAhead: 1 << 20,
			DirectMount:  os.Geteuid() == 0,
			Options:      []string{"default_permissions"},
		},
		EntryTimeout:    &sec,
		AttrTimeout:     &sec,
		NullPermissions: true,
	})
	return srv, root, err
}
