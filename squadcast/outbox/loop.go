package outbox

import (
	"errors"
	"time"

	"go.uber.org/zap"
)

// batch is what one transaction of the Committer writes.
type batch[T any] struct {
	appends []appendOp[T]
	ops     []Op
	states  []stateOp
}

// loop runs the committer until Stop.
func (c *Committer[T]) loop() {
	defer close(c.exited)
	failures := 0
	for {
		b, stopping, ok := c.take()
		if !ok {
			return
		}
		err := c.commit(&b)
		c.cfg.OnCommit(c.items(b), err)
		c.finish(b, err)
		if err == nil {
			failures = 0
			if !stopping {
				c.maybeShrink()
			}
			continue
		}
		failures++
		if stopping {
			c.cfg.Logger.Error("cannot write the outbox at shutdown: events not yet written are lost, and delivered ones may be sent again after a restart",
				zap.Int("events_not_written", len(b.appends)), zap.Int("state_changes_not_written", len(b.states)), zap.Error(err))
			c.mu.Lock()
			c.appends, c.ops, c.states = nil, nil, nil
			c.gone = true
			c.done.Broadcast()
			c.mu.Unlock()
			return
		}
		pause := min(commitRetryMin<<min(failures-1, 16), commitRetryMax)
		c.cfg.Logger.Error("cannot write the outbox; delivering its new events from memory, and retrying the write",
			zap.Int("events", len(b.appends)), zap.Int("outcomes", len(b.ops)), zap.Duration("retry_in", pause), zap.Error(err))
		select {
		case <-time.After(pause):
		case <-c.wake:
		}
	}
}

// take waits for work and takes it all; ok is false when the committer
// must return.
func (c *Committer[T]) take() (b batch[T], stopping, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for !c.hasWork() && !c.stop && !c.kill {
		c.work.Wait()
	}
	if c.kill || !c.hasWork() {
		c.gone = true
		c.done.Broadcast()
		return b, false, false
	}
	b = batch[T]{appends: c.appends, ops: c.ops, states: c.states}
	c.appends, c.ops, c.states = nil, nil, nil
	c.appendsDue, c.opsDue = false, false
	c.opsTimer.Stop()
	return b, c.stop, true
}

// commit writes b in one transaction. A state change that bbolt refuses
// is logged and left out of b (its source counts it as written: it never
// will be), and the rest written without it.
func (c *Committer[T]) commit(b *batch[T]) error {
	for {
		err := c.write(b)
		var refused *StateError
		if !errors.As(err, &refused) {
			return err
		}
		// bbolt refused what a state change writes: every retry would fail
		// the same way, and hold every task's events back.
		st := b.states[refused.Index]
		c.cfg.Logger.Error("alert state change not saved: the outbox file refuses it (the events are written without it; after a restart those groups start from older state)",
			zap.String("endpoint", st.src.Name), zap.Error(refused.Err))
		b.states = append(b.states[:refused.Index:refused.Index], b.states[refused.Index+1:]...)
		c.mu.Lock()
		st.src.written()
		c.mu.Unlock()
	}
}

func (c *Committer[T]) write(b *batch[T]) error {
	if c.cfg.BeforeCommit != nil {
		if err := c.cfg.BeforeCommit(); err != nil {
			return err
		}
	}
	ops := make([]Op, 0, len(b.appends)+len(b.ops))
	for _, a := range b.appends {
		ops = append(ops, a.op)
	}
	ops = append(ops, b.ops...)
	states := make([]*StateChange, len(b.states))
	for i, s := range b.states {
		states[i] = s.c
	}
	if err := c.db.Commit(&Batch{Ops: ops, State: states}); err != nil {
		return err
	}
	c.commits.Add(1)
	return nil
}

func (c *Committer[T]) items(b batch[T]) []T {
	items := make([]T, len(b.appends))
	for i, a := range b.appends {
		items[i] = a.item
	}
	return items
}

// finish records a transaction's result: its sources' writes are done, or
// failed and queued again (the whole batch first, then what arrived
// since), and wakes the flushes.
func (c *Committer[T]) finish(b batch[T], err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.err = err
	if err != nil {
		for _, a := range b.appends {
			a.src.err = err
		}
		for _, s := range b.states {
			s.src.err = err
		}
		c.appends = append(b.appends, c.appends...)
		c.ops = append(b.ops, c.ops...)
		c.states = append(b.states, c.states...)
		c.appendsDue, c.opsDue = true, true // after the pause
	} else {
		for _, a := range b.appends {
			a.src.written()
		}
		for _, s := range b.states {
			s.src.written()
		}
	}
	c.done.Broadcast()
}
