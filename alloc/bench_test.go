package alloc

import (
	"testing"

	"github.com/stretchr/testify/require"

	"vosfs/umem"
)

func BenchmarkHeapReserveCancel(b *testing.B) {
	_, a, _ := newTestHeap(b)
	b.ReportAllocs()
	for b.Loop() {
		r, err := a.Reserve(200)
		if err != nil {
			b.Fatal(err)
		}
		a.Cancel(r)
	}
}

// fragmentedVEA returns a VEA over blocks blocks where every run of 16
// blocks starts with 1 to 8 allocated ones: holes of 8 to 15 blocks.
func fragmentedVEA(b *testing.B, blocks uint64) *VEA {
	h := umem.New(1 << 20)
	const off = 4096
	tx := h.Begin(16 << 20)
	for i := uint64(0); i < blocks; i += 16 {
		require.NoError(b, tx.SetBits(off, i, uint32(i/16%8+1)))
	}
	_, err := tx.Commit(&testLog{})
	require.NoError(b, err)
	d := &durableID{}
	v, err := NewVEA(h, off, blocks, d.get)
	require.NoError(b, err)
	return v
}

func BenchmarkVEAReserveCancel(b *testing.B) {
	v := fragmentedVEA(b, 1<<20)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		exts, err := v.Reserve(nil, uint64(1+i%12))
		if err != nil {
			b.Fatal(err)
		}
		v.Cancel(exts)
	}
}

func BenchmarkVEAReserveCancelMulti(b *testing.B) {
	v := fragmentedVEA(b, 1<<20)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		exts, err := v.Reserve(nil, 64) // no hole is large enough
		if err != nil {
			b.Fatal(err)
		}
		v.Cancel(exts)
	}
}

func BenchmarkVEAReserveHint(b *testing.B) {
	h := umem.New(1 << 20)
	d := &durableID{}
	v, err := NewVEA(h, 0, 1<<20, d.get)
	require.NoError(b, err)
	var hint Hint
	var held [][]Extent
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		exts, err := v.Reserve(&hint, 4)
		if err != nil {
			b.Fatal(err)
		}
		held = append(held, exts)
		if len(held) == 1024 {
			for _, e := range held {
				v.Cancel(e)
			}
			held = held[:0]
			hint = Hint{}
		}
	}
}
