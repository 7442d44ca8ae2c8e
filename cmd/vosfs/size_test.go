package main

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestParseSize: sizes are binary whatever the suffix, as truncate(1),
// fallocate(1) and mkfs.ext4 read them.
func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		err  string
	}{
		{in: "4096", want: 4096},
		{in: "0", want: 0},
		{in: "1b", want: 1},
		{in: "1B", want: 1},
		{in: "1K", want: 1 << 10},
		{in: "1k", want: 1 << 10},
		{in: "1KB", want: 1 << 10},
		{in: "1KiB", want: 1 << 10},
		{in: "512M", want: 512 << 20},
		{in: "512MB", want: 512 << 20},
		{in: "512 MiB", want: 512 << 20},
		{in: "1G", want: 1 << 30},
		{in: "1g", want: 1 << 30},
		{in: "1GB", want: 1 << 30},
		{in: "1GiB", want: 1 << 30},
		{in: "8.0 GiB", want: 8 << 30},
		{in: "1.5G", want: 3 << 29},
		{in: "  2T ", want: 2 << 40},
		{in: "1TiB", want: 1 << 40},
		{in: "1P", want: 1 << 50},
		{in: "15E", want: 15 << 60},
		{in: "0.5K", want: 512},
		{in: "18446744073709551615", want: math.MaxUint64},
		{in: "16E", err: "16E is more than 16 EiB"},
		{in: "18446744073709551616", err: "is more than"},
		{in: "0.3K", err: "0.3K is not a whole number of bytes"},
		{in: "1.5", err: "1.5 is not a whole number of bytes"},
		{in: "", err: "not a size"},
		{in: "G", err: "not a size"},
		{in: "banana", err: "not a size (examples: 8G, 8GiB, 512M, 4096; units are binary: 1G = 1 GiB)"},
		{in: "-1G", err: "not a size"},
		{in: "1X", err: "not a size"},
		{in: "1GiBs", err: "not a size"},
		{in: "1..5G", err: "not a size"},
		{in: "1 G B", err: "not a size"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseSize(tc.in)
			if tc.err != "" {
				require.Error(t, err, "%q gave %d", tc.in, got)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestSizeFlag(t *testing.T) {
	var s sizeFlag
	assert.Equal(t, "", s.String(), "no default shown for an unset size")
	require.NoError(t, s.Set("8G"))
	assert.Equal(t, uint64(8<<30), s.n)
	assert.True(t, s.set)
	assert.Equal(t, "8.0 GiB", s.String())
	require.NoError(t, s.Set("256 MiB"))
	assert.Equal(t, "256 MiB", s.String())
	assert.Equal(t, "SIZE", s.Type())
	assert.EqualError(t, s.Set("0"), "size must be more than zero")
	assert.Error(t, s.Set("banana"))
	assert.Equal(t, uint64(256<<20), s.n, "a refused value changed the flag")
}

func TestSizeMessages(t *testing.T) {
	assert.Equal(t, "1.0 MiB (1,052,672 bytes)", exactBytes(1<<20+4096))
	assert.Equal(t, "64 MiB", exactBytes(64<<20))
	assert.EqualError(t, belowMin("data size", 1<<20, 1<<20+4096),
		"data size 1.0 MiB (1,048,576 bytes) is below the minimum 1.0 MiB (1,052,672 bytes)")
	assert.EqualError(t, belowMin("log size", 64<<10, 264<<10), "log size 64 KiB is below the minimum 264 KiB")
	assert.EqualError(t, belowMin("data size", 1<<10, 1<<20+4096), "data size 1.0 KiB is below the minimum 1.0 MiB (1,052,672 bytes)")
}
