package main

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
)

// opID names an operation: the cycle, the thread and the thread's count of
// operations, so that the same seed gives the same IDs and contents.
func opID(cycle, thread int, n uint32) uint64 {
	return uint64(cycle)<<40 | uint64(thread)<<32 | uint64(n)
}

// fmtID formats an operation ID as c<cycle>.t<thread>.<n>.
func fmtID(id uint64) string {
	return fmt.Sprintf("c%d.t%d.%d", id>>40, id>>32&0xff, uint32(id))
}

// genData returns the n bytes that operation id of the run with this seed
// writes: the workload writes them and the checker recomputes them.
func genData(seed int64, id uint64, n int) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[0:], uint64(seed))
	binary.LittleEndian.PutUint64(key[8:], id)
	copy(key[16:], "vosfs-crash-data")
	c := rand.NewChaCha8(key)
	p := make([]byte, n)
	c.Read(p)
	return p
}

// hashSeed keys every content hash of one process; hashes are only ever
// compared within it.
var hashSeed = maphash.MakeSeed()

func hashBytes(p []byte) uint64 { return maphash.Bytes(hashSeed, p) }
