// Package alloc allocates the space of a pool: heap space for metadata
// objects (Heap, in 64-byte units of an arena inside the metadata heap) and
// blocks of the data blob (VEA, the versioned extent allocator, in 4 KiB
// blocks).
//
// Each allocator keeps its persistent state as a bitmap inside the metadata
// heap, one bit per unit (set = allocated), changed only through umem.Tx
// SetBits and ClearBits so that every change is a redo action in the log and
// is replayed after a crash. The search structures are in memory only: a
// FreeIndex of free extents, rebuilt from the bitmap at open, plus the
// reservations handed out and not yet published.
//
// Allocation happens in two steps. Reserve takes space from the free index
// in memory, without touching the heap or its lock, so that slow work (such
// as writing data into reserved blocks) can be done before the transaction
// starts. Publish then sets the bits inside the transaction; from that moment
// the transaction owns the space: an abort returns it to the free index and a
// commit makes it allocated. Cancel returns a reservation that was never
// published. Free clears the bits inside a transaction; the space becomes
// reusable when the transaction commits (the heap) or once its record is
// durable (the VEA, see below). Reserve and Cancel do not take the heap lock;
// the commit and abort hooks run with the heap write-locked and then take
// the allocator's lock, so the lock order is heap, then allocator.
//
// Heap space may be reused as soon as the freeing transaction commits: any
// later change to the space is logged after the freeing record, so replay
// can never see the new owner without the free. Data blocks are different:
// new data is written to the data blob before its transaction commits, and
// until the freeing record is durable a crash would bring back the old
// owner, whose data would then have been overwritten. The VEA therefore keeps
// freed extents on an aging list, tagged with the ID of the freeing record,
// and makes them reservable only once the log's durable ID has passed it.
//
// Check verifies an allocator against its bitmap and against the list of
// live allocations the layer above knows of; it reports every inconsistency
// found (index out of step with the bitmap, lost space, leaked space,
// overlapping or unallocated references), each wrapping ErrInconsistent.
package alloc
