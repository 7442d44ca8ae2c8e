package vos

import (
	"errors"
	"fmt"
	"log"
	"sync"

	"vosfs/wal"
)

// ErrChecksum is wrapped by a read that found a value or a data-blob extent
// whose bytes do not match the checksum its record holds: the bytes are
// damaged where they are stored, and the read returns none of them.
var ErrChecksum = errors.New("vos: checksum mismatch")

// maxBadLogged bounds the set of damaged places already logged: past it, a
// mismatch is still refused and counted, and logged again.
const maxBadLogged = 4096

// verify checks b, the whole bytes of the record r (of p, at array offset
// off for an extent), against the record's checksum. A mismatch is counted,
// logged once per place, and returned as ErrChecksum naming the object, the
// offset and where the bytes are in their blob.
func (s *Store) verify(p Path, off uint64, r rec, b []byte) error {
	got := wal.Checksum(b)
	if got == r.csum {
		return nil
	}
	var where string
	switch r.kind {
	case recData:
		where = fmt.Sprintf("data blob block %d (+%d bytes)", r.loc, r.size)
	case recHeap:
		where = fmt.Sprintf("heap offset %#x (+%d bytes)", r.loc, r.size)
	default:
		where = fmt.Sprintf("inline record (%d bytes)", r.size)
	}
	err := fmt.Errorf("%w: %v at offset %d: %s holds checksum %08x, record says %08x", ErrChecksum, p, off, where, got, r.csum)
	key := [2]uint64{uint64(r.kind), r.loc}
	if r.kind == recInline {
		key[1] = uint64(r.csum) // inline bytes have no position of their own
	}
	s.mu.Lock()
	s.stats.ChecksumErrors++
	first := !s.badLogged[key]
	if first && len(s.badLogged) < maxBadLogged {
		s.badLogged[key] = true
	}
	s.mu.Unlock()
	if first {
		s.logf("%v", err)
	}
	return err
}

func (s *Store) logf(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf(format, args...)
		return
	}
	log.Printf(format, args...)
}

// cacheKey names an extent's bytes for good: an extent record is written
// once at its key (path, array offset, epoch), and aggregation's migration
// writes new keys only, at new positions. So bytes verified once under a
// key and position stay that record's bytes, and a cached copy is not
// stale even after the blocks are freed and reused; size and checksum are
// in the key too, so that even a reused key and position would need a
// CRC32C collision to hit.
type cacheKey struct {
	path              string
	start, epoch, loc uint64
	size              uint64
	csum              uint32
}

// extentCache holds the verified bytes of the last extents read in part,
// at most extentCacheBytes of them, the least recently used going first.
type extentCache struct {
	mu    sync.Mutex
	ents  []cacheEnt // most recent last
	bytes int
}

type cacheEnt struct {
	key  cacheKey
	data []byte
}

// extentCacheBytes bounds the cache: room for a few readers' sequential
// reads through 1 MiB extents.
const extentCacheBytes = 16 << 20

func (c *extentCache) get(k cacheKey) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.ents) - 1; i >= 0; i-- {
		if c.ents[i].key == k {
			e := c.ents[i]
			copy(c.ents[i:], c.ents[i+1:])
			c.ents[len(c.ents)-1] = e
			return e.data
		}
	}
	return nil
}

// put adds verified bytes; callers never change them afterwards.
func (c *extentCache) put(k cacheKey, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.ents {
		if e.key == k {
			return
		}
	}
	c.ents = append(c.ents, cacheEnt{key: k, data: data})
	c.bytes += len(data)
	for c.bytes > extentCacheBytes && len(c.ents) > 1 {
		c.bytes -= len(c.ents[0].data)
		c.ents = c.ents[1:]
	}
}
