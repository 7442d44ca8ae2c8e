package vos

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// MergeFunc folds operands (oldest first) into a base value. exists says
// whether there was a base; the result is the new value.
type MergeFunc func(base []byte, exists bool, operands [][]byte) ([]byte, error)

// Built-in merge operators.
const (
	// MergeConcat appends each operand to the value.
	MergeConcat = "concat"
	// MergeAdd64 adds little-endian 64-bit integers (an absent value is 0).
	MergeAdd64 = "add64"
)

// ErrMerge is wrapped by merge errors.
var ErrMerge = errors.New("vos: merge")

type mergeOp struct {
	id   uint8
	name string
	fn   MergeFunc
}

func (s *Store) registerBuiltins() {
	s.merges, s.byID = map[string]mergeOp{}, map[uint8]mergeOp{}
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	must(s.RegisterMerge(1, MergeConcat, func(base []byte, _ bool, ops [][]byte) ([]byte, error) {
		out := append([]byte{}, base...)
		for _, o := range ops {
			out = append(out, o...)
		}
		return out, nil
	}))
	must(s.RegisterMerge(2, MergeAdd64, func(base []byte, exists bool, ops [][]byte) ([]byte, error) {
		var sum uint64
		if exists {
			if len(base) != 8 {
				return nil, fmt.Errorf("%w: add64 base of %d bytes", ErrMerge, len(base))
			}
			sum = binary.LittleEndian.Uint64(base)
		}
		for _, o := range ops {
			if len(o) != 8 {
				return nil, fmt.Errorf("%w: add64 operand of %d bytes", ErrMerge, len(o))
			}
			sum += binary.LittleEndian.Uint64(o)
		}
		return binary.LittleEndian.AppendUint64(nil, sum), nil
	}))
}

// RegisterMerge registers a merge operator. id is stored with every operand
// on disk, so a name must keep its id across opens; ids 1 and 2 are the
// built-ins. Register before using it, and on every open.
func (s *Store) RegisterMerge(id uint8, name string, fn MergeFunc) error {
	if id == 0 {
		return fmt.Errorf("%w: id 0 is reserved", ErrMerge)
	}
	if old, ok := s.byID[id]; ok {
		return fmt.Errorf("%w: id %d is taken by %q", ErrMerge, id, old.name)
	}
	if _, ok := s.merges[name]; ok {
		return fmt.Errorf("%w: %q is registered", ErrMerge, name)
	}
	op := mergeOp{id: id, name: name, fn: fn}
	s.merges[name], s.byID[id] = op, op
	return nil
}
