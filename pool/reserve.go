package pool

// The deletion reserve: heap space that ordinary transactions leave free
// and only transactions that give space back may take (Tx.UseDeletionReserve:
// unlink, rmdir, truncate, snapshot delete, aggregation). Each of those adds
// a little to the heap before aggregation frees much more — tombstones,
// new tree nodes — so on a heap full of live data they would fail with the
// rest; with the reserve they commit, and aggregation then refills it.
const (
	// DeletionReserveShare is the share of the heap arena kept: 1/64.
	DeletionReserveShare = 64
	// MinDeletionReserve and MaxDeletionReserve bound it (a reserve of
	// MinDeletionReserve holds the tombstones of hundreds of unlinks and
	// the tree nodes they may split).
	MinDeletionReserve = 64 << 10
	MaxDeletionReserve = 16 << 20
	// DeletionReserveChunk is the least extent the reserve is kept in:
	// the largest single heap allocation of a deleting transaction, a
	// node of the store's tree (vos/btree NodeSize), so that a heap whose
	// free space is all in small holes still has whole nodes for it.
	DeletionReserveChunk = 4096
)

// DeletionReserve is the deletion reserve of a heap arena of arena bytes:
// a DeletionReserveShare of it, within [MinDeletionReserve,
// MaxDeletionReserve], and never more than a quarter of the arena.
func DeletionReserve(arena uint64) uint64 {
	return min(max(arena/DeletionReserveShare, MinDeletionReserve), MaxDeletionReserve, arena/4)
}
