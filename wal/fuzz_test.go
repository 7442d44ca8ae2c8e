package wal

import (
	"testing"

	"vosfs/blob"
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

// FuzzReplayRing replays a log whose live ring holds arbitrary bytes after
// one intact record: replay and its scan for intact records past a bad one
// never panic, end at or after the intact record, and fail only with a
// CorruptError whose damage is where replay ended.
func FuzzReplayRing(f *testing.F) {
	b := sampleBody()
	rec := make([]byte, RecordSize(b.Len()))
	encodeRecord(rec, MinRingSize+4096, 2, uint32(b.Count()), b.Bytes())
	f.Add(rec, uint16(0))
	f.Add(append(make([]byte, 200), rec...), uint16(4096))
	f.Fuzz(func(t *testing.T, data []byte, at uint16) {
		if len(data) > 64<<10 {
			return
		}
		fs := blob.NewMemFS(1)
		file, err := fs.Create("wal")
		if err != nil {
			t.Fatal(err)
		}
		if err := Create(file, [16]byte{1}, MinRingSize, blockSize, nil); err != nil {
			t.Fatal(err)
		}
		l, err := Open(file, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Start(l.Header().Checkpoint); err != nil {
			t.Fatal(err)
		}
		c, err := l.Append(bodyOf("first"), nil)
		if err != nil || c.Wait() != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		// The fuzz bytes go after the intact record's block, somewhere in
		// the ring (they may wrap past its end).
		start := (uint64(c.ID) + blockSize + uint64(at)) % MinRingSize
		for i := 0; i < len(data); {
			off := (start + uint64(i)) % MinRingSize
			n := min(len(data)-i, int(MinRingSize-off))
			if _, err := file.WriteAt(data[i:i+n], int64(RingOffset+off)); err != nil {
				t.Fatal(err)
			}
			i += n
		}
		l, err = Open(file, Options{})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		end, err := l.Replay(func(*Record) error { n++; return nil }, nil)
		if n < 1 && end <= c.ID {
			t.Fatalf("replay lost the intact first record: end %d, %d records", end, n)
		}
		if err != nil {
			d, ok := AsDamage(err)
			if !ok || d.At != end || d.End < d.At {
				t.Fatalf("replay error %v (damage %+v, end %d)", err, d, end)
			}
		}
	})
}
