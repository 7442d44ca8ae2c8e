package vos

import (
	"fmt"

	"vosfs/pool"
)

// ShutdownFlag says what a shutdown makes durable before the store's pool
// stops; the values are those of the Linux filesystem shutdown ioctl.
type ShutdownFlag = pool.ShutdownFlag

// The shutdown flags.
const (
	// ShutdownDefault makes every committed transaction durable and
	// checkpoints, then stops.
	ShutdownDefault = pool.ShutdownDefault
	// ShutdownLogFlush makes every committed transaction durable in the
	// log, then stops.
	ShutdownLogFlush = pool.ShutdownLogFlush
	// ShutdownNoLogFlush stops at once: what is not yet durable is lost.
	ShutdownNoLogFlush = pool.ShutdownNoLogFlush
)

var (
	// ErrShutdown is wrapped, with ErrFailed, by every error of a store
	// that was shut down.
	ErrShutdown = pool.ErrShutdown
	// ErrBadShutdownFlag: a shutdown flag that is none of the three.
	ErrBadShutdownFlag = pool.ErrBadShutdownFlag
)

// Shutdown stops the store as a power cut would, after making durable what
// flag asks for: every later transaction fails with ErrFailed wrapping
// ErrShutdown, and reopening the pool recovers the durable state. Reads
// of the state in memory are not refused here; the layer above refuses
// them. Close still has to be called, then the pool's.
func (s *Store) Shutdown(flag ShutdownFlag) error {
	if err := s.p.Shutdown(flag); err != nil {
		return fmt.Errorf("vos: %w", err)
	}
	return nil
}
