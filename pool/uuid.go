package pool

// UUID is the pool's identity, chosen at random by Create and written in
// every blob's header.
func (p *Pool) UUID() [16]byte { return p.uuid }
