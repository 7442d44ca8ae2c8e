// Package checkpoint is the background checkpointer of a pool: it writes the
// dirty chunks of the metadata heap back to the metadata blob, syncs it, and
// only then records the new checkpointed ID in the log header, which frees
// the log space below it and releases throttled writers.
//
// A chunk is written back only when every change on it is durable: chunks
// are copied under the heap's read lock (writers wait for one page copy at
// most, readers not at all) together with their page's pending ID, and the
// copy is written only after the log's durable ID has passed that ID. The
// checkpointed ID is the durable ID read before copying began: every record
// below it was applied before the copy, so its changes are in the blob.
//
// Triggers: the log passing its high-water mark or throttling a writer
// (Kick), the dirty bytes passing a limit, a timer, and close (Run).
package checkpoint
