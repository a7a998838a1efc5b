package squadcast

import (
	"container/heap"

	"go.uber.org/zap"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast/outbox"
	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// Coalescing (Endpoint.Coalesce) saves the requests of events that wait
// unsent and that Squadcast would not miss. It is applied as each event
// is added to its incident (scheduler.add), so only to the incident's
// last two events, and only among its unsent ones: never to the head in
// flight, nor to an event that had an attempt (Squadcast may have it).
// Events of one incident are never reordered. The rules:
//
//  1. A trigger (any level but OK) that follows an unsent trigger of the
//     same incident replaces it (Squadcast keeps one incident per id):
//     the earlier one is removed. The later one takes over whether it
//     opens the incident (job.opens), and its place in line (job.place):
//     an incident whose trigger is replaced again and again still goes
//     in its turn.
//  2. A resolve (OK) that follows an unsent trigger is dropped with it
//     when that trigger is the first of the incident's events in memory
//     and opens the incident (the previous level it was published with is
//     OK): Squadcast then has no open incident for it, and will have none.
//     Events read back from the outbox do not store their previous level,
//     so a trigger among them is never dropped this way.
//
// (A resolve that follows a resolve of a dead-lettered event is the one
// case where rule 2 leaves open an incident that delivering both would
// have closed: the dead letter says so.)
//
// A removed event is deleted from the outbox and counted out of the
// backlog as a delivered one is (Sender.dropCoalesced), but never sent.

// coalesced is an event that coalescing removed, and why.
type coalesced struct {
	j   *job
	why string
}

// Why events are removed.
const (
	whyReplaced    = "trigger replaced by a later trigger"
	whyNeverOpened = "trigger never sent, then resolved"
	whyNotNeeded   = "resolve of a trigger never sent"
)

// coalesce applies the coalescing rules to inc, whose last event was just
// added, and appends what it removes to out. It reports whether inc is
// left without events (and is forgotten). Called with sc.mu held.
func (sc *scheduler) coalesce(inc *incident, out []coalesced) (_ []coalesced, gone bool) {
	n := len(inc.jobs)
	if n < 2 {
		return out, false
	}
	last, prev := inc.jobs[n-1], inc.jobs[n-2]
	if !last.target.coalesce || !prev.target.coalesce || !inc.unsent(n-2) || prev.level == udf.OK {
		return out, false
	}
	if last.level != udf.OK {
		last.opens, last.place = prev.opens, prev.seq
		if prev.place != 0 {
			last.place = prev.place
		}
		inc.jobs[n-2], inc.jobs[n-1] = last, nil
		inc.jobs = inc.jobs[:n-1]
		if n == 2 && inc.qIdx >= 0 {
			heap.Fix(&inc.ep.queue, inc.qIdx) // its rank may change
		}
		return append(out, coalesced{prev, whyReplaced}), false
	}
	if n != 2 || !prev.opens {
		return out, false
	}
	inc.jobs[0], inc.jobs[1] = nil, nil
	inc.jobs = inc.jobs[:0]
	sc.unschedule(inc)
	sc.forget(inc)
	return append(out, coalesced{prev, whyNeverOpened}, coalesced{last, whyNotNeeded}), true
}

// unsent reports whether the incident's i-th event is unsent: not in
// flight, and never attempted. Called with sc.mu held.
func (inc *incident) unsent(i int) bool {
	return !(i == 0 && inc.busy) && inc.jobs[i].attempts == 0
}

// unschedule takes an idle incident out of the waiting heap and its
// throttle's queue. In the ready queue, it stays, without events: take
// skips it. Called with sc.mu held.
func (sc *scheduler) unschedule(inc *incident) {
	if inc.heapIdx >= 0 {
		heap.Remove(&sc.waiting, inc.heapIdx)
	}
	if inc.qIdx >= 0 {
		heap.Remove(&inc.ep.queue, inc.qIdx)
	}
}

// dropCoalesced deletes the events that coalescing removed from the
// outbox, counts them out of the backlog, logs and counts them. Called
// with no lock held.
func (s *Sender) dropCoalesced(cs []coalesced) {
	room := false
	for _, c := range cs {
		j := c.j
		s.cm.Outcome(outbox.Op{Kind: outbox.OpDelete, Seq: j.seq}) // first, as for a delivered event
		s.coalesced.Add(1)
		if ce := s.log.Check(zap.DebugLevel, "squadcast event coalesced, not sent"); ce != nil {
			ce.Write(append(j.fields(), zap.String("dropped", c.why))...)
		}
		if s.cfg.Observer != nil {
			s.cfg.Observer.Coalesced(j.target.label, j.level)
		}
		if s.backlog.release() {
			room = true
		}
	}
	if room {
		s.loader.wake()
	}
}
