package main

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// fdNode is a loopback node whose files the kernel never reads or writes
// itself: with passthrough (kernels from 6.9, as root) a loopback file's
// reads and writes go from the kernel to the backing file and never reach
// the daemon, which is not what a FUSE filesystem with its own data
// layout can do. Without it, every read and write is a FUSE request, as
// for vosfs; the bench runs both.
type fdNode struct {
	*gofs.LoopbackNode
}

var (
	_ = (gofs.NodeWrapChilder)((*fdNode)(nil))
	_ = (gofs.NodeOpener)((*fdNode)(nil))
	_ = (gofs.NodeCreater)((*fdNode)(nil))
)

// WrapChild makes every node below the root an fdNode too.
func (n *fdNode) WrapChild(ctx context.Context, ops gofs.InodeEmbedder) gofs.InodeEmbedder {
	if ln, ok := ops.(*gofs.LoopbackNode); ok {
		return &fdNode{ln}
	}
	return ops
}

func (n *fdNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	fh, fl, errno := n.LoopbackNode.Open(ctx, flags)
	return noPassthrough(fh), fl, errno
}

func (n *fdNode) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	ch, fh, fl, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	return ch, noPassthrough(fh), fl, errno
}

// fdFile is a loopback file that declines passthrough.
type fdFile struct {
	*gofs.LoopbackFile
}

var _ = (gofs.FilePassthroughFder)((*fdFile)(nil))

// PassthroughFd declines: the kernel then sends the file's reads and
// writes to the daemon.
func (f *fdFile) PassthroughFd() (int, bool) { return -1, false }

func noPassthrough(fh gofs.FileHandle) gofs.FileHandle {
	if lf, ok := fh.(*gofs.LoopbackFile); ok {
		return &fdFile{lf}
	}
	return fh
}
