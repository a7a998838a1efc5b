package squadcast

import (
	"fmt"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast/outbox"
	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// publisher publishes a task node's events to one target. Its events go
// to the outbox through the Sender's committer (group commit), then to
// the scheduler (onCommit).
type publisher struct {
	s   *Sender
	t   *target
	inc incidentOptions // the task's tags and priorities
	src outbox.Source   // its share of the group commit
}

// Publish renders ev (with the task's tags and priorities, in the Incident
// Webhook format) and queues it for the outbox and delivery; it never
// waits on the disk or the network. See Flush.
func (p *publisher) Publish(ev udf.Event) error {
	s := p.s
	// drop counts the event as dropped and says why.
	drop := func(err error) error {
		s.dropped.Add(1)
		return fmt.Errorf("drop event for incident %q (endpoint %s): %w", udf.LoggedID(ev.ID), p.t.name, err)
	}
	body, err := render(p.t.format, ev, &p.inc)
	if err != nil {
		return drop(err)
	}
	j := &job{target: p.t, id: ev.ID, level: ev.Level, task: ev.TaskID, created: s.clock.Now(), body: body, source: SourceUDF,
		opens: ev.Level != udf.OK && ev.PreviousLevel == udf.OK}
	if err := s.accept(j, &p.src); err != nil {
		return drop(err)
	}
	if ev.Stale != 0 && s.cfg.Observer != nil {
		s.cfg.Observer.StaleResolved(p.t.label)
	}
	return nil
}

// accept queues a rendered event of src for the outbox and delivery:
// it is held in memory or spilled (see backlog), and written with src's
// next flush.
func (s *Sender) accept(j *job, src *outbox.Source) error {
	rec, err := j.record().Encode()
	if err != nil {
		return err
	}
	err = s.backlog.admit(j, func() bool { return s.cm.Err() != nil }, s.outbox.NextSeq,
		func() { s.cm.Append(src, j.seq, rec, j) })
	if err != nil {
		return err
	}
	s.published.Add(1)
	if s.cfg.Observer != nil {
		s.cfg.Observer.Accepted(j.target.label, j.source)
	}
	return nil
}

// Flush waits until every event this publisher published is written to
// the outbox (committed and synced to disk), with the alert state's
// change (nil for none), in the same transaction unless the committer
// took some of the events before change was queued: concurrent flushes
// share transactions. From the first call on, Publish no longer wakes the
// committer: the events of a read burst wait for its Flush, and go to
// disk with its state in one transaction, one sync.
//
// It returns an error when the write that covered some of them failed;
// those events are still being delivered (from memory) and their write
// retried, which a later Flush waits for.
func (p *publisher) Flush(change *udf.StateChange) error {
	return p.flush(change, true)
}

// flush is Flush; without hold, the publisher's later events are written
// at once, as before its first Flush.
func (p *publisher) flush(change *udf.StateChange, hold bool) error {
	return p.s.cm.Flush(&p.src, p.s.stateChange(change), hold)
}

// onCommit hands the events of an outbox transaction to the scheduler,
// before the flushes waiting for it return: once Flush returns, its
// events are written and scheduled. It runs on the committer's goroutine,
// which owns the jobs' released and spill. A failed write's events are
// delivered from memory meanwhile; a spilled event is left on disk for the
// loader once written (it is not delivered from memory when the write
// failed: older spilled events go first).
func (s *Sender) onCommit(jobs []*job, err error) {
	var fresh []*job
	spilledN := 0
	for _, j := range jobs {
		switch {
		case j.released:
		case !j.spill:
			j.released = true
			fresh = append(fresh, j)
		case err == nil:
			j.released, j.body = true, nil
			spilledN++
		}
	}
	s.dropCoalesced(s.sched.add(fresh))
	if spilledN > 0 && s.backlog.written(spilledN) {
		s.loader.wake()
	}
}
