// Package umem is the metadata heap of a pool (after DAOS's umem with
// metadata on SSD): the whole metadata blob held in memory, changed only by
// transactions that record every change as redo actions for the write-ahead
// log.
//
// A transaction (Tx) is the critical section of a change: it holds the heap's
// write lock, applies each change in place (keeping undo bytes in case the
// transaction is abandoned), and at Commit appends its redo record to the log,
// which assigns the transaction ID. Taking the ID in the same critical section
// that applied the changes makes ID order equal apply order, which is replay
// order. The slow parts (data I/O, the log write and sync) happen after the
// lock is released.
//
// The heap is cut into pages of PageSize bytes. Each page keeps its highest
// pending ID (the newest record that touched it), its highest committed ID
// (the newest such record known durable) and a bitmap of dirty 4 KiB chunks.
// The checkpointer copies dirty chunks under the read lock and writes them
// back only once the durable ID has passed the page's pending ID, so no change
// reaches the metadata blob before its log record is durable.
package umem
