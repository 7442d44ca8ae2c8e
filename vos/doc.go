// Package vos is the versioned object store of a pool.
//
// The model is DAOS's: a pool holds objects (named by 64-bit IDs); an object
// holds distribution keys (dkeys); a dkey holds attribute keys (akeys); an
// akey holds a single value or a byte array made of extents. Every committed
// transaction has an epoch; values and extents are kept by epoch, and a punch
// (of an object, dkey, akey or array range) is a versioned tombstone. A read
// at epoch E sees, for each key, the newest version at or below E.
//
// Everything is indexed in one B+tree in the metadata heap (package btree),
// under composite keys that keep an object's keys together and each key's
// versions newest first. Values and extents below the pool's threshold live
// in the heap and travel inside the log record; larger ones go to extents of
// the data blob, reserved and written with direct I/O before the commit.
//
// Transactions are optimistic: a Tx reads at its start epoch, buffers its
// writes, and records what each read saw. Commit runs in the pool's critical
// section: if an object the transaction read was changed since it began (the
// coarse check), the reads are replayed against the current state, and the
// transaction commits if each returns what it returned before, else it is
// Aborted (xenstored's replay-on-conflict). Predicates (exists, absent,
// equals) are checked there too; if one fails nothing is applied. Merge
// operators (concatenate, 64-bit add) let many writers update one value
// without reading it, so they never conflict.
//
// Snapshots are named, durable read views at an epoch. Aggregation, in the
// background, folds or drops the versions that no snapshot or reader can see
// and frees their space, and migrates runs of array bytes that small writes
// left in the heap to data-blob extents (migrate.go).
package vos
