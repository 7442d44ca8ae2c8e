// Package btree is the ordered index of the versioned object store: a map
// from byte-string keys (up to MaxKeySize bytes) to values of a fixed size
// per tree (up to MaxValueSize bytes), kept as a B+tree of NodeSize-byte
// nodes in the pool's metadata heap and changed only inside heap
// transactions, so that every change is a redo action of the write-ahead log.
//
// # Naming a tree
//
// A Tree is named by its root pointer: the heap offset of a uint64, owned by
// the caller (for example in the pool's root area), that holds the offset of
// the root node, or 0 while the tree is empty. Several trees can live in one
// heap; all of the store's indexes share one tree under composite keys.
//
// # Nodes
//
// Every node is a slotted page: a 16-byte header, an array of u16 record
// offsets in key order growing from the front, and the records (key length
// u16, key, value) packed from the back. Leaves hold the values; internal
// nodes hold separator keys whose value is a child's heap offset, plus the
// leftmost child in the header. A child's subtree holds the keys k with
// separator <= k < next separator. All leaves are at the same depth; the
// header carries the node's level (0 for leaves) so that descent can be
// checked step by step. See node.go for the exact layout.
//
// # Logging few bytes
//
// Each operation builds the new content of the node it changes in a scratch
// image and logs only the byte ranges that differ from the heap (diff.go):
// an insert into a node with room logs the new record, the shifted part of
// the offset array and the header fields; a delete logs the offset array
// shift and the header and leaves a hole; holes are reclaimed by sliding the
// records together when an insert needs the room, which logs the records
// that moved. An overwrite logs the value bytes that changed.
//
// # Splits and merges
//
// A split writes the new node and truncates the old one by its header (the
// moved records become holes). An entry past the end of a node (and, for a
// leaf, before its start) goes alone into the new node, leaving the old one
// full, so ascending or descending runs of inserts fill their nodes; a leaf
// is cut where the new key starts or ends a run of keys sharing a prefix
// (the versions of one object among many), so that the other run's node is
// left full too; otherwise the node is cut at its middle byte.
//
// Deletion does not rebalance fully: a leaf that falls below a quarter full
// is merged into a sibling if the two fit in three quarters of a node; a
// node that becomes empty is unlinked from its parent and freed, and a root
// left with one child is replaced by it. Internal nodes below the root may
// thus have a single child.
//
// # Reading
//
// Get, Seek and SeekLE read through a umem.Reader: inside pool.View or inside
// the transaction. The slices they return, and an Iter, alias the heap: they
// are valid only while the caller holds the read lock (or is inside the
// transaction) and the tree is not changed; copy what must outlive that.
//
// Heap bytes are never trusted: a node with a bad header, a record out of
// range or a child at the wrong level makes the operation return an error
// wrapping ErrCorrupt, never a panic. Check verifies the whole tree (key
// order and bounds, record overlaps, nodes reachable twice) and returns its
// node spans for the allocator checker.
//
// # Errors
//
// Errors of the Writer (no heap space, a record larger than the log's limit)
// are returned wrapped. The tree may then be half-changed: the caller must
// abort the transaction, which undoes every change.
package btree
