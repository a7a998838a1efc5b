package squadcast

import (
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
)

// The committer is the one goroutine that writes the outbox. Publish queues
// new events (already encoded) and the workers queue the outcome of their
// attempts; the committer takes whatever is waiting and writes it in one
// transaction (group commit: one fsync for many events), then wakes the
// Flush calls waiting for it and hands the new events to the scheduler.
//
// New events and state saves are written as soon as a flush asks. Outcomes
// (a delivered event's deletion, a retry's bookkeeping, a dead letter) are
// not urgent: a crash that loses one only repeats a delivery, which the
// outbox promises anyway. They go with the next transaction, or after
// opsDelay, or once opsBatch are waiting: under a steady flow of alerts,
// each delivery then costs no fsync of its own.
//
// A failed transaction is retried as a whole, with whatever arrived since,
// after a short pause; its new events are delivered from memory meanwhile,
// and Flush reports the failure to their publishers. A state save that
// bbolt refuses is the exception: it is logged and left out at once, as
// it would fail every retry.
//
// The fields of job it owns: seq, gone, released and rec.

// opKind is what an op does to a stored event.
type opKind int8

const (
	// opUpdate rewrites a pending event after a failed attempt.
	opUpdate opKind = iota
	// opDelete deletes a delivered event.
	opDelete
	// opDead moves an event to the dead letters.
	opDead
)

// op is an outcome to write; data is the record for opUpdate and opDead.
type op struct {
	kind opKind
	j    *job
	data []byte
}

// stateSave is a publisher's alert state change (udf.StateFlusher), written
// after the events in the same transaction.
type stateSave struct {
	pub   *publisher
	write func(*bolt.Tx) error
}

// saveError is the error of saves[i] in a transaction: bbolt refused what
// it writes (a key or value too large, say), which no retry changes.
type saveError struct {
	i   int
	err error
}

func (e *saveError) Error() string { return e.err.Error() }
func (e *saveError) Unwrap() error { return e.err }

// Commit retry pauses after a failed transaction.
const (
	commitRetryMin = 100 * time.Millisecond
	commitRetryMax = 2 * time.Second
)

// stored counts one of the publisher's events or state saves as written.
// Called with s.cm held.
func (p *publisher) stored() {
	p.unstored--
	if p.unstored == 0 {
		p.err = nil
	}
}

// Outcomes wait at most opsDelay, or until opsBatch wait, for a transaction.
const (
	opsDelay = 500 * time.Millisecond
	opsBatch = 1000
)

// queueOp queues an outcome for the committer. It may be called with s.mu held.
func (s *Sender) queueOp(o op) {
	s.cm.Lock()
	s.ops = append(s.ops, o)
	switch {
	case len(s.ops) >= opsBatch:
		s.opsDue = true
		s.cmWork.Signal()
	case len(s.ops) == 1 && !s.opsDue:
		s.opsTimer.Reset(opsDelay)
	}
	s.cm.Unlock()
}

// opsTimerFired makes the waiting outcomes due.
func (s *Sender) opsTimerFired() {
	s.cm.Lock()
	if len(s.ops) > 0 {
		s.opsDue = true
		s.cmWork.Signal()
	}
	s.cm.Unlock()
}

// hasWork reports whether the committer has something to write now.
// Called with s.cm held.
func (s *Sender) hasWork() bool {
	return len(s.puts) > 0 && (s.putsDue || s.cmStop) || len(s.saves) > 0 || len(s.ops) > 0 && (s.opsDue || s.cmStop)
}

// commitLoop runs the committer until stopCommitter (after writing what
// is queued) or kill.
func (s *Sender) commitLoop() {
	defer close(s.cmExited)
	failures := 0
	for {
		s.cm.Lock()
		for !s.hasWork() && !s.cmStop && !s.cmKill {
			s.cmWork.Wait()
		}
		if s.cmKill || !s.hasWork() {
			s.cmGone = true
			s.cmDone.Broadcast()
			s.cm.Unlock()
			return
		}
		stopping := s.cmStop
		puts, ops, saves := s.puts, s.ops, s.saves
		s.puts, s.ops, s.saves = nil, nil, nil
		s.putsDue, s.opsDue = false, false
		s.opsTimer.Stop()
		s.cm.Unlock()

		err := s.commit(puts, ops, saves)
		var refused *saveError
		for errors.As(err, &refused) {
			// bbolt refused what a state save writes: every retry would
			// fail the same way, and hold every task's events back. Write
			// the rest without it.
			sv := saves[refused.i]
			s.log.Error("alert state change not saved: the outbox file refuses it (the events are written without it; after a restart those groups start from older state)",
				zap.String("endpoint", sv.pub.t.name), zap.Error(refused.err))
			saves = append(saves[:refused.i:refused.i], saves[refused.i+1:]...)
			s.cm.Lock()
			sv.pub.stored()
			s.cm.Unlock()
			err = s.commit(puts, ops, saves)
		}

		// Schedule the new events before waking Flush: once Flush returns,
		// its events are written and scheduled. A spilled event is left on
		// disk for the loader once written (it is not delivered from
		// memory when the write failed: older spilled events go first).
		var fresh []*job
		var spilledFrom uint64
		spilledN := 0
		for _, j := range puts {
			switch {
			case j.released:
			case !j.spill:
				j.released = true
				fresh = append(fresh, j)
			case err == nil:
				j.released, j.body = true, nil
				if spilledFrom == 0 {
					spilledFrom = j.seq
				}
				spilledN++
			}
		}
		if len(fresh) > 0 {
			s.enqueue(fresh)
		}
		if spilledN > 0 {
			s.spillWritten(spilledFrom, spilledN)
		}
		s.cm.Lock()
		s.cmErr = err
		if err != nil {
			for _, j := range puts {
				if j.pub != nil {
					j.pub.err = err
				}
			}
			for _, sv := range saves {
				sv.pub.err = err
			}
			// Retry the whole batch first, then what arrived since.
			s.puts = append(puts, s.puts...)
			s.ops = append(ops, s.ops...)
			s.saves = append(saves, s.saves...)
			s.putsDue, s.opsDue = true, true // after the pause below
		} else {
			for _, j := range puts {
				if j.pub != nil {
					j.pub.stored()
				}
			}
			for _, sv := range saves {
				sv.pub.stored()
			}
		}
		s.cmDone.Broadcast()
		s.cm.Unlock()
		if err == nil {
			failures = 0
			continue
		}
		failures++
		if stopping {
			s.log.Error("cannot write the outbox at shutdown: events not yet written are lost, and delivered ones may be sent again after a restart",
				zap.Int("events_not_written", len(puts)), zap.Int("state_changes_not_written", len(saves)), zap.Error(err))
			s.cm.Lock()
			s.puts, s.ops, s.saves = nil, nil, nil
			s.cmGone = true
			s.cmDone.Broadcast()
			s.cm.Unlock()
			return
		}
		pause := min(commitRetryMin<<min(failures-1, 16), commitRetryMax)
		s.log.Error("cannot write the outbox; delivering its new events from memory, and retrying the write",
			zap.Int("events", len(puts)), zap.Int("outcomes", len(ops)), zap.Duration("retry_in", pause), zap.Error(err))
		select {
		case <-time.After(pause):
		case <-s.cmWake:
		}
	}
}

// commit writes one batch in one transaction. On failure it undoes what it
// recorded in the jobs, so that the batch can be retried as is.
func (s *Sender) commit(puts []*job, ops []op, saves []stateSave) (err error) {
	if s.hooks.beforeCommit != nil {
		if err := s.hooks.beforeCommit(); err != nil {
			return err
		}
	}
	var assigned, gone []*job
	delta := 0
	err = s.outbox.update(func(tx *bolt.Tx) error {
		pending, dead := tx.Bucket(bucketPending), tx.Bucket(bucketDead)
		pending.FillPercent = appendFill
		for _, j := range puts {
			if j.gone || j.seq != 0 {
				continue // delivered (from memory) before it could be written
			}
			seq, err := pending.NextSequence()
			if err != nil {
				return err
			}
			if err := pending.Put(seqKey(seq), j.rec); err != nil {
				return err
			}
			j.seq = seq
			assigned = append(assigned, j)
			delta++
		}
		for _, o := range ops {
			j := o.j
			switch o.kind {
			case opUpdate:
				if j.seq == 0 {
					continue
				}
				if err := pending.Put(seqKey(j.seq), o.data); err != nil {
					return err
				}
			case opDelete:
				if j.seq == 0 {
					j.gone = true
					gone = append(gone, j)
					continue
				}
				if err := pending.Delete(seqKey(j.seq)); err != nil {
					return err
				}
				delta--
			case opDead:
				seq := j.seq
				if seq == 0 {
					j.gone = true
					gone = append(gone, j)
					next, err := pending.NextSequence()
					if err != nil {
						return err
					}
					seq = next
				} else {
					if err := pending.Delete(seqKey(seq)); err != nil {
						return err
					}
					delta--
				}
				if err := dead.Put(seqKey(seq), o.data); err != nil {
					return err
				}
			}
		}
		for i, sv := range saves {
			if err := sv.write(tx); err != nil {
				return &saveError{i: i, err: err}
			}
		}
		return nil
	})
	if err != nil {
		for _, j := range assigned {
			j.seq = 0
		}
		for _, j := range gone {
			j.gone = false
		}
		return fmt.Errorf("write outbox %s: %w", s.outbox.path, err)
	}
	for _, j := range assigned {
		j.rec = nil // on disk now; the body stays in memory for delivery
	}
	s.stored.Add(int64(delta))
	s.commits.Add(1)
	return nil
}
