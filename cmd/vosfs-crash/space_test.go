package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLiveBytes(t *testing.T) {
	s := &Snapshot{Entries: map[string]*SnapEntry{
		"t0":        {Dir: true, Ino: 2, Size: 4096, Xattr: map[string][]byte{"user.a": []byte("xy")}},
		"t0/f":      {Ino: 3, Nlink: 2, Size: 1000},
		"t0/link":   {Ino: 3, Nlink: 2, Size: 1000}, // the same inode: counted once
		"t0/g":      {Ino: 4, Size: 5 << 20},
		"t0/fifo":   {Ino: 5, Other: "fifo"},
		"t0/symlnk": {Ino: 6, Other: "symlink", Size: 10},
	}}
	require.EqualValues(t, len("user.a")+2+1000+5<<20, liveBytes(s))
}

func TestSpaceExcess(t *testing.T) {
	const live = 10 << 20
	use := func(data, heap uint64) spaceUsed {
		var u spaceUsed
		u.Usage.DataUsed, u.Usage.HeapUsed = data, heap
		return u
	}
	for _, tc := range []struct {
		name string
		u    spaceUsed
		want string
	}{
		{"within", use(spaceFactor*live+dataSlack, live+heapSlack), ""},
		{"data over", use(spaceFactor*live+dataSlack+4096, 0), "data blob 296 MiB used, bound 296 MiB"},
		{"heap over", use(0, 128<<20), "heap 128 MiB used, bound 58 MiB"},
		{"both", use(2<<30, 128<<20), "data blob 2.0 GiB used, bound 296 MiB; heap 128 MiB used, bound 58 MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, spaceExcess(tc.u, live))
		})
	}
}
