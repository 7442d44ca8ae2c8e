package wal

import "fmt"

// ID is a transaction ID: the logical byte position of a record in the
// endless log. Zero means "none".
type ID uint64

func (id ID) String() string { return fmt.Sprintf("%d", uint64(id)) }

// alignUp rounds n up to a multiple of a (a power of two).
func alignUp(n, a uint64) uint64 { return (n + a - 1) &^ (a - 1) }
