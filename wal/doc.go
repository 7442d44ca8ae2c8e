// Package wal is the write-ahead log of a vosfs pool: a ring of 4 KiB blocks
// in the log blob, after two header slots.
//
// Vocabulary (Aurora's LSNs mapped to DAOS's WAL):
//
//   - A transaction ID (ID) is the logical byte position of its record in a
//     log that never ends; the physical offset is ID modulo the ring size, so
//     the ID locates the record and orders it. IDs grow forever (64 bits of
//     bytes do not wrap).
//   - The completed ID (Aurora's VCL) is the end of the written log, the
//     durable ID (VDL) the end of the log that is durable with everything
//     before it. A commit is acknowledged only when the durable ID passes it.
//   - The checkpointed ID is the start of the live log: every change of a
//     record below it is in the metadata blob, and the ring space below it is
//     free. It is stored in the header only after the metadata blob is synced.
//
// Records are appended to an open batch in ID order by the caller's critical
// section (Append). One committer goroutine seals the batch, waits for the
// batch's data-blob writes, syncs the data blob, writes the batch and issues
// one fdatasync for all of it (group commit); then the durable ID advances and
// every committer of the batch is released at once. A sealed batch is padded
// to a block boundary so the next batch starts on a fresh block: a block that
// holds a durable record is never written again until the checkpoint frees it.
//
// Each record carries a CRC32C, its own ID and the log generation. Replay
// starts at the checkpointed ID and stops at the first record that fails any
// check; the generation (bumped, with a checkpoint, at every open) makes any
// record left beyond that end by an earlier run invalid forever, so a stale
// record can never be replayed after a later, shorter one.
//
// A failed write or sync is fail-stop: the log reports ErrFailed for every
// later append and for every commit not yet durable, and it never retries.
package wal
