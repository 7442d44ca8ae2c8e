// Package pool ties the storage engine together: a pool is a directory with
// three blob files — the log (wal.blob), the metadata blob (meta.blob, the
// persistent image of the heap) and the data blob (data.blob, 4 KiB blocks
// for large values) — each starting with a checksummed header naming the
// pool's UUID.
//
// Open recovers: it loads the heap image, replays the log from the
// checkpointed ID, writes the replayed changes back, and starts the log in a
// new generation. Update runs one transaction the way the design's write
// paths say: wait for the writer turn and for log space (throttling, before
// the critical section), apply the changes to the heap and take the
// transaction ID in one critical section, then wait — outside it — until the
// record, its data writes and every lower ID are durable.
//
// Every blob is reached through a fail-stop gate (failstop.go): the first
// failed write, sync, truncate or punch stops the pool, records what failed
// (Failure: blob, operation, offset, errno), logs it once and fails the
// log; from then on no mutation reaches any blob and every operation,
// reads included, returns an error wrapping ErrFailed and the cause.
//
// Check verifies headers, the heap superblock and both allocators against
// the spans the layer above says it references; every engine test calls it.
package pool
