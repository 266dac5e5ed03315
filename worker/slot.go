package worker

import (
	"context"
	"sync"
)

// slot is one of the Concurrency slots a message is worked in: a token
// taken from slots.
type slot struct {
	once  sync.Once
	slots chan struct{}
}

// release gives the slot back; calls after the first do nothing.
func (s *slot) release() { s.once.Do(func() { <-s.slots }) }

type slotKey struct{}

// Waiting tells the engine that the task running under ctx now waits for
// something outside the process, such as a remote service's rate slot or a
// batch of requests forming, so that its slot may work the next message
// meanwhile. The task goes on without a slot of its own: Concurrency bounds
// the tasks working, not those waiting, and the messages in hand stay
// bounded by Concurrency + Prefetch. Calls after the first, and calls with
// a context not from the engine, do nothing.
func Waiting(ctx context.Context) {
	if s, _ := ctx.Value(slotKey{}).(*slot); s != nil {
		s.release()
	}
}
