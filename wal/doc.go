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
// Torn tail or damage. One batch at a time is written, and it is synced
// before the next is: a crash can tear only the last batch, and tear it
// anywhere (any subset of its blocks may have reached the disk, so intact
// records may follow a torn one inside it). A batch holds at most the batch
// limit (MaxBatch, or a quarter of a small ring) of records, or else a
// single larger record with its wrap and seal pads. So a bad record at
// position P is the end of the log, a torn tail, only if
//
//   - P is at or past the durable ID the header records,
//   - no intact record of a later generation than the header's is anywhere
//     in the ring (Start writes and syncs the header of a generation before
//     any record of it, so such a record means the newest header was lost),
//   - and no intact transaction record of the generation follows P outside
//     the batch P could belong to: every such record at Q (of size n) ends
//     by alignDown(P, 4096)+batch limit, or starts the ring (Q mod ring = 0)
//     with P in the wrap pad before it (Q-P < n); and none follows an intact
//     seal pad after P (a pad ending on a block boundary that is not the
//     ring's end ends a batch, so what comes after it was written only once
//     P's batch was durable).
//
// Otherwise the log was damaged after it was written (acknowledged records
// follow the damage), and Replay refuses with a CorruptError naming the
// position, the intact records around it and how to repair: a caller may
// truncate the log there by starting it at the damage (a new generation
// then voids everything after it), dropping the intact records that follow.
// Damage inside the one batch the rule allows is indistinguishable from a
// torn write and is taken as the end of the log. That batch is the last one
// when the batches after the damage end with seal pads (a batch ending
// exactly on a block boundary has none); in any case at most the batch limit
// of records after the damage can be lost that way.
//
// A failed write or sync is fail-stop: the log reports ErrFailed for every
// later append and for every commit not yet durable, and it never retries.
package wal
