package vos

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"vosfs/pool"
	"vosfs/umem"
	"vosfs/wal"
)

// MaxSnapshotName is the longest snapshot name.
const MaxSnapshotName = 255

// Snapshot errors.
var (
	ErrSnapshotExists   = errors.New("vos: snapshot exists")
	ErrNoSnapshot       = errors.New("vos: no such snapshot")
	ErrSnapshotNameSize = errors.New("vos: snapshot name empty or too long")
)

// SnapshotInfo is one snapshot.
type SnapshotInfo struct {
	Name  string
	Epoch uint64
}

func snapshotKey(name string) []byte { return append([]byte{kindSnapshot}, name...) }

func checkSnapshotName(name string) error {
	if len(name) == 0 || len(name) > MaxSnapshotName {
		return fmt.Errorf("%w: %d bytes", ErrSnapshotNameSize, len(name))
	}
	return nil
}

// CreateSnapshot records a durable, named read view of everything committed
// so far and returns its epoch.
func (s *Store) CreateSnapshot(ctx context.Context, name string) (uint64, error) {
	if err := checkSnapshotName(name); err != nil {
		return 0, err
	}
	var epoch uint64
	_, err := s.p.Update(ctx, func(tx *pool.Tx) error {
		r := tx.Reader()
		if _, ok, err := s.tree.Get(r, snapshotKey(name)); err != nil || ok {
			if ok {
				err = fmt.Errorf("%w: %q", ErrSnapshotExists, name)
			}
			return err
		}
		var err error
		if epoch, err = r.Uint64(rootEpoch); err != nil {
			return err
		}
		if _, err := s.tree.Put(tx, snapshotKey(name), rec{kind: recPunch, size: epoch}.encode()); err != nil {
			return err
		}
		tx.OnCommit(func(wal.ID) {
			s.mu.Lock()
			s.snapshots[name] = epoch
			s.mu.Unlock()
		})
		return nil
	})
	return epoch, err
}

// DeleteSnapshot removes a snapshot; aggregation then reclaims what only it
// could see.
func (s *Store) DeleteSnapshot(ctx context.Context, name string) error {
	if err := checkSnapshotName(name); err != nil {
		return err
	}
	_, err := s.p.Update(ctx, func(tx *pool.Tx) error {
		tx.UseDeletionReserve() // a full pool can drop its snapshots
		found, err := s.tree.Delete(tx, snapshotKey(name))
		if err == nil && !found {
			err = fmt.Errorf("%w: %q", ErrNoSnapshot, name)
		}
		if err != nil {
			return err
		}
		tx.OnCommit(func(wal.ID) {
			s.mu.Lock()
			delete(s.snapshots, name)
			s.mu.Unlock()
		})
		return nil
	})
	return err
}

// Snapshots lists the snapshots by name.
func (s *Store) Snapshots() []SnapshotInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SnapshotInfo, 0, len(s.snapshots))
	for n, e := range s.snapshots {
		out = append(out, SnapshotInfo{Name: n, Epoch: e})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Snapshot returns a view at the named snapshot.
func (s *Store) Snapshot(name string) (*View, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.snapshots[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNoSnapshot, name)
	}
	s.readers[e]++
	return &View{s: s, epoch: e}, nil
}

// loadSnapshotsLocked reads the snapshot records at open.
func (s *Store) loadSnapshotsLocked(r umem.Reader) error {
	it := s.tree.Seek(r, []byte{kindSnapshot})
	for it.Next() {
		k := it.Key()
		if len(k) == 0 || k[0] != kindSnapshot {
			break
		}
		rc, err := decodeRec(it.Value())
		if err != nil {
			return fmt.Errorf("vos: snapshot %q: %w", k[1:], err)
		}
		s.snapshots[string(k[1:])] = rc.size
	}
	return it.Err()
}
