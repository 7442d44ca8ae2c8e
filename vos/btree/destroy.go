package btree

// Destroy frees every node of the tree and empties it. Each node costs one
// action in the transaction's record, so callers bound the size of the trees
// they destroy in one transaction.
func (t Tree) Destroy(w Writer) error {
	if err := t.checkValueSize(); err != nil {
		return err
	}
	o := newOp(t, w)
	defer o.release()
	root, err := t.root(o.r)
	if err != nil || root == 0 {
		return err
	}
	nd, err := o.read(root)
	if err != nil {
		return err
	}
	if err := o.destroy(nd); err != nil {
		return err
	}
	return o.setRoot(0)
}

// destroy frees the subtree of nd, children first. Levels strictly decrease
// on the way down, so even a damaged tree cannot make it loop.
func (o *op) destroy(nd node) error {
	if !nd.leaf() {
		for c := -1; c < nd.n; c++ {
			ch, err := nd.descend(o.r, c, o.t.ValueSize)
			if err != nil {
				return err
			}
			if err := o.destroy(ch); err != nil {
				return err
			}
		}
	}
	return o.free(nd.off)
}
