package fs

import (
	"fmt"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"vosfs/vos"
)

// TestNoLowerLayerImports keeps the layering: the filesystem sees the
// storage errors only under the object store's names (vos), so no file of
// the package (tests included) may import the allocator or the log.
func TestNoLowerLayerImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no Go files found")
	}
	fset := token.NewFileSet()
	for _, name := range files {
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				t.Fatal(err)
			}
			if path == "vosfs/alloc" || path == "vosfs/wal" {
				t.Errorf("%s imports %s; use the vos sentinels", name, path)
			}
		}
	}
}

// TestToErrnoSentinels checks the mapping of the store's sentinels, wrapped
// with context as the layers return them.
func TestToErrnoSentinels(t *testing.T) {
	f := &FS{}
	cases := []struct {
		err  error
		want syscall.Errno
	}{
		{vos.ErrNoSpace, syscall.ENOSPC},
		{vos.ErrKeyTooLong, syscall.ENAMETOOLONG},
		{vos.ErrRange, syscall.EFBIG},
		{vos.ErrRecordTooLarge, syscall.E2BIG},
		{vos.ErrAborted, syscall.EAGAIN},
		{vos.ErrClosed, syscall.EIO},
		{vos.ErrFailed, syscall.EIO},
		// A pool stopped by a full host disk: its failure carries the
		// host's ENOSPC, and the caller still gets EIO, as for every
		// other operation of the stopped pool.
		{fmt.Errorf("%w: sync data.blob: %w", vos.ErrFailed, syscall.ENOSPC), syscall.EIO},
		{fmt.Errorf("%w: write wal.blob: %w", vos.ErrFailed, syscall.EIO), syscall.EIO},
	}
	for _, c := range cases {
		wrapped := fmt.Errorf("write inode 7: %w", c.err)
		if got := f.toErrno(wrapped); got != c.want {
			t.Errorf("toErrno(%v) = %v, want %v", wrapped, got, c.want)
		}
	}
}
