package pool

import (
	"errors"
	"fmt"
)

// ShutdownFlag says what a shutdown makes durable before the pool stops; the
// values are those of the Linux filesystem shutdown ioctl.
type ShutdownFlag uint32

const (
	// ShutdownDefault makes every committed change durable and checkpoints
	// the heap, then stops.
	ShutdownDefault ShutdownFlag = 0
	// ShutdownLogFlush makes every committed change durable in the log,
	// then stops.
	ShutdownLogFlush ShutdownFlag = 1
	// ShutdownNoLogFlush stops at once: what is not yet durable is lost, as
	// in a power cut.
	ShutdownNoLogFlush ShutdownFlag = 2
)

// ErrShutdown is the cause of the failure of a pool that was shut down; every
// later error of the pool wraps it and ErrFailed.
var ErrShutdown = errors.New("pool shut down")

// ErrBadShutdownFlag is returned for a flag that is none of the three.
var ErrBadShutdownFlag = errors.New("unknown shutdown flag")

// Shutdown stops the pool as a power cut would, after making durable what
// flag asks for. From then on the pool is failed (ErrFailed wrapping
// ErrShutdown): nothing more is appended, checkpointed or acknowledged, and
// reopening recovers the durable state. Close still has to be called.
//
// Shutdown holds the writer turn throughout: no transaction is appended
// between the flush and the stop, so with flags 0 and 1 every transaction
// acknowledged before the pool stopped (also one acknowledged at append,
// UpdateAsync) is durable, and every later one fails.
func (p *Pool) Shutdown(flag ShutdownFlag) error {
	if flag > ShutdownNoLogFlush {
		return fmt.Errorf("%w: %d", ErrBadShutdownFlag, flag)
	}
	select {
	case p.turn <- struct{}{}:
	case <-p.closing:
		return ErrClosed
	}
	defer func() { <-p.turn }()
	var err error
	switch flag {
	case ShutdownDefault:
		if err = p.log.Flush(); err == nil {
			err = p.ckpt.Run()
		}
	case ShutdownLogFlush:
		err = p.log.Flush()
	case ShutdownNoLogFlush:
	}
	// The pool stops even if the flush failed: a shutdown never leaves it
	// running. The flush's failure is reported, since what it promised
	// did not happen.
	p.stop(&Failure{Op: "shutdown", Off: -1, Err: ErrShutdown})
	if err != nil {
		return fmt.Errorf("pool %s: shutdown: %w", p.dir, err)
	}
	return nil
}
