package main

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"

	"github.com/dustin/go-humanize"
)

// sizeUnits are the multipliers of the size suffixes, all binary: K, KB
// and KiB are 1024 bytes, as truncate(1), fallocate(1) and mkfs.ext4 read
// them.
var sizeUnits = map[string]uint64{
	"": 1, "b": 1,
	"k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
	"g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
	"t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40,
	"p": 1 << 50, "pb": 1 << 50, "pib": 1 << 50,
	"e": 1 << 60, "eb": 1 << 60, "eib": 1 << 60,
}

// errSizeSyntax is what a size that does not parse is told.
var errSizeSyntax = errors.New("not a size (examples: 8G, 8GiB, 512M, 4096; units are binary: 1G = 1 GiB)")

// parseSize reads a byte count: a number, maybe with a fraction, and a
// binary unit ("8G", "1.5GiB", "512 MiB", "4096"). A count that is not a
// whole number of bytes, or does not fit 64 bits, is refused.
func parseSize(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	num, unit := s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	mult, ok := sizeUnits[unit]
	if num == "" || !ok {
		return 0, errSizeSyntax
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, errSizeSyntax
	}
	r.Mul(r, new(big.Rat).SetUint64(mult))
	if !r.IsInt() {
		return 0, fmt.Errorf("%s is not a whole number of bytes", s)
	}
	n := r.Num()
	if !n.IsUint64() {
		return 0, fmt.Errorf("%s is more than %s", s, humanize.IBytes(math.MaxUint64))
	}
	return n.Uint64(), nil
}

// sizeFlag is a byte count given and shown the way people write sizes
// ("8G", "256 MiB"; shown "8.0 GiB"). A zero value shows as no default.
type sizeFlag struct {
	n   uint64
	set bool
}

func (s *sizeFlag) String() string {
	if s == nil || s.n == 0 {
		return ""
	}
	return humanize.IBytes(s.n)
}

func (s *sizeFlag) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	if n == 0 {
		return errors.New("size must be more than zero")
	}
	s.n, s.set = n, true
	return nil
}

// Type is the name of the flag's value in the usage.
func (s *sizeFlag) Type() string { return "SIZE" }
