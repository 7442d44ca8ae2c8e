package vos

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// Inline values up to 16 bytes keep the narrow layout (loc, then the
// bytes); 17 to 24 bytes (a file's times) take the wide one over loc;
// both decode to the same record.
func TestRecInlineLayouts(t *testing.T) {
	for _, n := range []int{0, 1, 16, 17, 24} {
		val := bytes.Repeat([]byte{0xa5}, n)
		r := rec{kind: recInline, size: uint64(n), merge: 3, csum: 0x01020304}
		copy(r.inline[:], val)
		b := r.encode()
		wantKind := byte(recInline)
		if n > inlineNarrow {
			wantKind = recInlineWide
			require.Equal(t, val, b[16:16+n], "bytes over loc")
		} else {
			require.Equal(t, val, b[24:24+n], "bytes after loc")
		}
		require.Equal(t, wantKind, b[0])
		got, err := decodeRec(b)
		require.NoError(t, err)
		require.Equal(t, r, got)
	}
	// A wide record must hold more than the narrow layout would.
	r := rec{kind: recInline, size: 20}
	b := r.encode()
	b[8] = 16
	_, err := decodeRec(b)
	require.Error(t, err)
	b[8] = 25
	_, err = decodeRec(b)
	require.Error(t, err)
}
