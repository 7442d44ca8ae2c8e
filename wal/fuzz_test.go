package wal

import (
	"testing"
)

func FuzzDecodeRecord(f *testing.F) {
	b := sampleBody()
	rec := make([]byte, RecordSize(b.Len()))
	encodeRecord(rec, 4096, 1, uint32(b.Count()), b.Bytes())
	f.Add(rec)
	pad := make([]byte, 128)
	encodePad(pad, 64, 1, 128)
	f.Add(pad)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		r, n, err := DecodeRecord(p)
		if err != nil {
			return
		}
		if n > uint64(len(p)) || n%RecordAlign != 0 {
			t.Fatalf("size %d of %d bytes", n, len(p))
		}
		// A record that decodes re-encodes to the same bytes.
		if r.Body != nil {
			out := make([]byte, n)
			encodeRecord(out, r.ID, uint32(p[8])|uint32(p[9])<<8|uint32(p[10])<<16|uint32(p[11])<<24, r.Count, r.Body)
			if string(out[:headSize+len(r.Body)]) != string(p[:headSize+len(r.Body)]) {
				t.Fatalf("re-encoding differs")
			}
		}
	})
}

func FuzzDecodeHeader(f *testing.F) {
	h := Header{Seq: 1, BlobSize: RingOffset + MinRingSize, RingSize: MinRingSize, RecordLimit: 4096, Gen: 1, Checkpoint: MinRingSize}
	f.Add(h.Encode())
	f.Add(make([]byte, 4096))
	f.Fuzz(func(t *testing.T, p []byte) {
		got, err := DecodeHeader(p)
		if err != nil {
			return
		}
		again, err := DecodeHeader(got.Encode())
		if err != nil || again != got {
			t.Fatalf("header does not round-trip: %v %+v %+v", err, got, again)
		}
	})
}

func FuzzDecodeActions(f *testing.F) {
	b := sampleBody()
	f.Add(b.Bytes(), uint32(b.Count()))
	f.Fuzz(func(t *testing.T, body []byte, count uint32) {
		if count > 1<<16 {
			return
		}
		_ = DecodeActions(body, count, func(a Action) error {
			if a.Type == ActCopy && len(a.Data) != int(a.N) {
				t.Fatalf("copy payload %d for N %d", len(a.Data), a.N)
			}
			return nil
		})
	})
}
