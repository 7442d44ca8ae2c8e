package pool

// MarkDurableForTest records the log's durable ID in its header without
// moving the checkpoint, so that the live records below it are "before the
// durable mark" (a checkpoint that raced with commits leaves the same).
func (p *Pool) MarkDurableForTest() error { return p.log.SetCheckpoint(p.log.Header().Checkpoint) }
