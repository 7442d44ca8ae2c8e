package pool

import "testing"

func FuzzDecodeBlobHeader(f *testing.F) {
	f.Add(blobHeader{magic: metaMagic, uuid: [16]byte{1}, size: 1 << 20, units: 1<<20 - HeapOffset}.encode())
	f.Add(blobHeader{magic: dataMagic, size: 8 << 30, units: 2 << 20}.encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, magic := range []string{metaMagic, dataMagic} {
			h, err := decodeBlobHeader(b, magic)
			if err != nil {
				continue
			}
			again, err := decodeBlobHeader(h.encode(), magic)
			if err != nil || again != h {
				t.Fatalf("header does not round-trip: %v %+v %+v", err, h, again)
			}
		}
	})
}

func FuzzDecodeSuper(f *testing.F) {
	l, err := computeLayout(1<<20-HeapOffset, 512)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(l.encodeSuper())
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := decodeSuper(b)
		if err != nil {
			return
		}
		if l.ArenaOffset+l.ArenaSize > l.HeapSize || l.HeapBitmap < BlockSize || l.DataBitmap < BlockSize {
			t.Fatalf("accepted an impossible layout %+v", l)
		}
	})
}
