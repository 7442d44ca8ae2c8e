package wal

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func sampleBody() *Body {
	var b Body
	b.Copy(4096, []byte("hello, heap"))
	b.Assign(64, 8, 0x1122334455667788)
	b.Assign(72, 2, 0xbeef)
	b.Set(128, 100, 0xab)
	b.SetBits(8192, 3, 17)
	b.ClearBits(8192, 40, 1)
	b.DataChecksum(1<<20, 65536, 0xdeadbeef)
	return &b
}

func TestRecordRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		body *Body
	}{
		{"empty", &Body{}},
		{"all actions", sampleBody()},
		{"copy of 7 bytes pads", func() *Body { var b Body; b.Copy(1, []byte("1234567")); return &b }()},
		{"copy of 0 bytes", func() *Body { var b Body; b.Copy(5, nil); return &b }()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			size := RecordSize(tc.body.Len())
			buf := make([]byte, size+RecordAlign)
			encodeRecord(buf, 123456, 7, uint32(tc.body.Count()), tc.body.Bytes())
			rec, n, err := DecodeRecord(buf)
			require.NoError(t, err)
			require.Equal(t, size, n)
			require.Equal(t, ID(123456), rec.ID)
			var got []Action
			require.NoError(t, rec.Actions(func(a Action) error { got = append(got, a); return nil }))
			require.Len(t, got, tc.body.Count())
		})
	}
}

func TestRecordActionsExact(t *testing.T) {
	b := sampleBody()
	buf := make([]byte, RecordSize(b.Len()))
	encodeRecord(buf, 4096, 1, uint32(b.Count()), b.Bytes())
	rec, _, err := DecodeRecord(buf)
	require.NoError(t, err)
	var got []Action
	require.NoError(t, rec.Actions(func(a Action) error { got = append(got, a); return nil }))
	require.Equal(t, []Action{
		{Type: ActCopy, N: 11, Off: 4096, Data: []byte("hello, heap")},
		{Type: ActAssign, N: 8, Off: 64, Arg: 0x1122334455667788},
		{Type: ActAssign, N: 2, Off: 72, Arg: 0xbeef},
		{Type: ActSet, N: 100, Off: 128, Arg: 0xab},
		{Type: ActSetBits, N: 17, Off: 8192, Arg: 3},
		{Type: ActClearBits, N: 1, Off: 8192, Arg: 40},
		{Type: ActDataChecksum, N: 65536, Off: 1 << 20, Arg: 0xdeadbeef},
	}, got)
}

func TestRecordDamageDetected(t *testing.T) {
	b := sampleBody()
	size := RecordSize(b.Len())
	good := make([]byte, size)
	encodeRecord(good, 4096, 1, uint32(b.Count()), b.Bytes())
	// Flipping any bit of the head or body must be caught.
	for i := 0; i < headSize+b.Len(); i++ {
		bad := append([]byte(nil), good...)
		bad[i] ^= 0x10
		_, _, err := DecodeRecord(bad)
		require.ErrorIs(t, err, errBadRecord, "flip at byte %d", i)
	}
	_, _, err := DecodeRecord(good[:size-RecordAlign])
	require.ErrorIs(t, err, errBadRecord)
}

func TestPadRecord(t *testing.T) {
	buf := make([]byte, 4096)
	encodePad(buf, 8192, 3, 4096)
	rec, n, err := DecodeRecord(buf)
	require.NoError(t, err)
	require.Equal(t, uint64(4096), n)
	require.Equal(t, ID(8192), rec.ID)
	require.Nil(t, rec.Body)
}

func TestHeaderRoundTrip(t *testing.T) {
	h := Header{Seq: 9, PoolUUID: [16]byte{1, 2, 3}, BlobSize: RingOffset + 1<<20, RingSize: 1 << 20,
		RecordLimit: 64 << 10, Flags: FlagClean, Gen: 4, Checkpoint: 1<<20 + 4096, Durable: 1<<20 + 8192}
	got, err := DecodeHeader(h.Encode())
	require.NoError(t, err)
	require.Equal(t, h, got)

	for _, tc := range []struct {
		name   string
		mutate func(b []byte)
		want   string
	}{
		{"magic", func(b []byte) { b[0] = 'X' }, "not a vosfs log"},
		{"version", func(b []byte) { b[8] = 9 }, "format version 9"},
		{"checksum", func(b []byte) { b[50] ^= 1 }, "checksum mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := h.Encode()
			tc.mutate(b)
			_, err := DecodeHeader(b)
			require.ErrorIs(t, err, ErrBadHeader)
			require.ErrorContains(t, err, tc.want)
		})
	}
	bad := h
	bad.RecordLimit = uint32(h.RingSize) // more than a quarter of the ring
	_, err = DecodeHeader(bad.Encode())
	require.ErrorContains(t, err, "record limit")
}
