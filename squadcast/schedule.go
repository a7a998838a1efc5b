package squadcast

import (
	"container/heap"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast/outbox"
)

// Scheduling. An incident (webhook URL and alert id) is a queue of events
// delivered strictly one at a time, in order. An incident whose head event
// may go now is in the ready queue, which the workers take from in turn; one
// that must wait (a retry's backoff, a paused endpoint, a rate limit) is in
// the waiting heap, ordered by when it may go, and the scheduler goroutine
// moves it to the ready queue then. A worker makes one HTTP attempt and
// returns the incident to the scheduler, so a long backoff never holds a
// worker. Everything here is guarded by Sender.mu.

// endpointState is what the incidents of one webhook URL share: a rate
// limit and a pause after Squadcast throttled it (429, or 503 with Retry-After).
type endpointState struct {
	limit       RateLimit
	limiter     *rate.Limiter // nil without a limit
	pausedUntil time.Time
}

// endpoint returns the state of a URL, creating it. When URLs are shared by
// endpoints with different rate limits, the strictest applies.
func (s *Sender) endpoint(url string, limit RateLimit) *endpointState {
	ep := s.hosts[url]
	if ep == nil {
		ep = &endpointState{}
		s.hosts[url] = ep
	}
	if limit.stricter(ep.limit) {
		ep.limit = limit
		if ep.limiter == nil {
			ep.limiter = rate.NewLimiter(limit.limit(), 1)
		} else {
			ep.limiter.SetLimitAt(s.clock.Now(), limit.limit())
		}
	}
	return ep
}

type incidentKey struct{ url, id string }

// maxKeptIncidents is the most incidents the incidents map may have held
// and still be kept once it is empty: after a burst of more (a million
// groups alerting at once), it is made anew, as a map keeps its capacity
// (40 bytes an incident).
const maxKeptIncidents = 4096

// incident is the queue of one incident's events.
type incident struct {
	key  incidentKey
	ep   *endpointState
	jobs []*job
	busy bool // its head is in flight

	queued   bool      // in the ready queue
	heapIdx  int       // index in the waiting heap, -1 when not in it
	due      time.Time // when it may go, while in the waiting heap
	reserved bool      // its head holds a rate-limit reservation
}

// waitHeap orders waiting incidents by due time.
type waitHeap []*incident

func (h waitHeap) Len() int           { return len(h) }
func (h waitHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h waitHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}
func (h *waitHeap) Push(x any) {
	inc := x.(*incident)
	inc.heapIdx = len(*h)
	*h = append(*h, inc)
}
func (h *waitHeap) Pop() any {
	old := *h
	inc := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	inc.heapIdx = -1
	return inc
}

// enqueue adds committed (or memory-only) events to their incidents, in order.
func (s *Sender) enqueue(jobs []*job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.enqueueLocked(jobs)
}

// enqueueLocked is enqueue with s.mu held.
func (s *Sender) enqueueLocked(jobs []*job) {
	if len(jobs) == 0 {
		return
	}
	now := s.clock.Now()
	for _, j := range jobs {
		key := incidentKey{url: j.target.url, id: j.id}
		inc := s.incidents[key]
		if inc == nil {
			inc = &incident{key: key, ep: s.endpoint(j.target.url, j.target.rate), heapIdx: -1}
			s.incidents[key] = inc
			s.peak = max(s.peak, len(s.incidents))
		}
		inc.jobs = append(inc.jobs, j)
		if len(inc.jobs) == 1 && !inc.busy {
			s.schedule(inc, now)
		}
	}
}

// schedule puts an idle incident with events in the ready queue, or in the
// waiting heap until its head may go: not before the head's next attempt,
// nor while its endpoint is paused, nor before its rate limit allows.
func (s *Sender) schedule(inc *incident, now time.Time) {
	due := inc.jobs[0].next
	if inc.ep.pausedUntil.After(due) {
		due = inc.ep.pausedUntil
	}
	if due.After(now) {
		s.wait(inc, due)
		return
	}
	if inc.ep.limiter != nil && !inc.reserved {
		inc.reserved = true
		if d := inc.ep.limiter.ReserveN(now, 1).DelayFrom(now); d > 0 {
			s.wait(inc, now.Add(d))
			return
		}
	}
	inc.queued = true
	s.ready = append(s.ready, inc)
	s.cond.Signal()
}

// wait puts inc in the waiting heap until due, waking the scheduler when
// that is sooner than what it waits for.
func (s *Sender) wait(inc *incident, due time.Time) {
	inc.due = due
	heap.Push(&s.waiting, inc)
	if s.waiting[0] == inc {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// scheduleLoop moves waiting incidents to the ready queue when they are due.
func (s *Sender) scheduleLoop() {
	for {
		s.mu.Lock()
		if s.stopping {
			s.mu.Unlock()
			return
		}
		now := s.clock.Now()
		for len(s.waiting) > 0 && !s.waiting[0].due.After(now) {
			s.schedule(heap.Pop(&s.waiting).(*incident), now)
		}
		var next time.Time
		if len(s.waiting) > 0 {
			next = s.waiting[0].due
		}
		s.mu.Unlock()

		var fire <-chan time.Time
		release := func() {}
		if !next.IsZero() {
			fire, release = s.clock.At(next)
		}
		select {
		case <-s.wake:
		case <-fire:
		case <-s.stop:
		}
		release()
	}
}

// work delivers events until the Sender stops. An incident goes back to
// the scheduler after each attempt, so incidents take turns.
func (s *Sender) work() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		for len(s.ready) == 0 && !s.stopping {
			s.cond.Wait()
		}
		if s.stopping {
			return
		}
		inc := s.ready[0]
		s.ready[0] = nil
		s.ready = s.ready[1:]
		inc.queued = false
		now := s.clock.Now()
		if inc.ep.pausedUntil.After(now) {
			// Its endpoint was throttled since it became ready.
			s.schedule(inc, now)
			continue
		}
		j := inc.jobs[0]
		inc.busy, inc.reserved = true, false
		s.mu.Unlock()

		start := s.clock.Now()
		v := s.outcome(j, s.send(j))
		v.log(s, j)
		s.observe(j, v.outcome, start)

		s.mu.Lock()
		s.finish(inc, j, v)
	}
}

// observe tells the Observer, if any, of an attempt that started at start.
func (s *Sender) observe(j *job, o Outcome, start time.Time) {
	if s.cfg.Observer == nil || o == OutcomeAborted {
		return
	}
	now := s.clock.Now()
	s.cfg.Observer.Attempted(j.target.label, o, now.Sub(start), now.Sub(j.created))
}

// verdict is what one attempt means for its event: the attempt's result,
// its outcome OutcomeExpired instead of OutcomeRetry once the event reached
// its max age, and what finish needs.
type verdict struct {
	attemptResult
	next    time.Time     // the next attempt (OutcomeRetry)
	elapsed time.Duration // the event's age (OutcomeExpired)
	later   int           // the incident's later events (set by finish, for the dead-letter log)
	data    []byte        // the record to write (retry, dead letter), nil if it cannot be encoded
}

// outcome decides what an attempt's result means for its event: for a
// retry, when the next attempt may be: after the result's wait, but not
// later than the event's max age (that attempt is its last); past the max
// age, the event expires. It encodes the record to write. It runs on the
// worker, which owns j until finish.
func (s *Sender) outcome(j *job, res attemptResult) verdict {
	v := verdict{attemptResult: res}
	if v.outcome == OutcomeDelivered {
		return v
	}
	if s.ctx.Err() != nil {
		v.outcome = OutcomeAborted // whatever the attempt said: the Sender is stopping
	}
	if v.outcome == OutcomeAborted {
		return v
	}
	now := s.clock.Now()
	j.lastErr = v.err.summary()
	deadline := j.created.Add(s.cfg.MaxAge)
	switch {
	case v.outcome != OutcomeRetry:
	case !now.Before(deadline):
		v.outcome, v.elapsed = OutcomeExpired, now.Sub(j.created)
	default:
		next := now.Add(v.wait)
		if next.After(deadline) {
			next = deadline
		}
		j.next = next
		v.next, v.wait = next, next.Sub(now)
	}
	rec := j.record()
	if v.outcome.DeadLettered() {
		rec.DeadReason, rec.DeadAt = v.outcome.DeadReason(), now
	}
	if data, err := rec.Encode(); err == nil {
		v.data = data
	} else {
		s.log.Error("cannot encode an outbox record", append(j.fields(), zap.Error(err))...)
	}
	return v
}

// log logs an attempt's outcome (before finish: dead letters are logged by finish).
func (v *verdict) log(s *Sender, j *job) {
	switch v.outcome {
	case OutcomeDelivered:
		if ce := s.log.Check(zap.DebugLevel, "squadcast event delivered"); ce != nil {
			ce.Write(append(j.fields(), zap.Int("attempts", j.attempts), zap.Int("status", v.status))...)
		}
	case OutcomeRetry:
		fields := append(j.fields(),
			zap.Int("attempt", j.attempts),
			zap.Int("status", v.err.StatusCode),
			zap.String("error", v.err.Err.Error()),
			zap.Duration("retry_in", v.wait))
		if v.throttled {
			fields = append(fields, zap.Bool("endpoint_paused", true))
		}
		s.log.Warn("squadcast delivery attempt failed, will retry", fields...)
	case OutcomeAborted:
		s.log.Info("squadcast delivery aborted by shutdown; the event stays in the outbox",
			append(j.fields(), zap.Int("attempt", j.attempts))...)
	}
}

// finish records an attempt's outcome, with s.mu held: it updates the
// incident and the outbox, and gives the incident back to the scheduler.
func (s *Sender) finish(inc *incident, j *job, v verdict) {
	inc.busy = false
	switch {
	case v.outcome == OutcomeAborted:
		// The event stays as it is on disk; the Sender is stopping.
		return
	case v.outcome == OutcomeRetry:
		if v.throttled && v.next.After(inc.ep.pausedUntil) {
			inc.ep.pausedUntil = v.next
		}
		if v.data != nil {
			s.cm.Outcome(outbox.Op{Kind: outbox.OpUpdate, Seq: j.seq, Data: v.data})
		}
		s.schedule(inc, s.clock.Now())
		return
	case v.outcome == OutcomeDelivered:
		s.cm.Outcome(outbox.Op{Kind: outbox.OpDelete, Seq: j.seq}) // first: once counted, the deletion is queued
		s.delivered.Add(1)
	case v.outcome.DeadLettered():
		s.deadLettered.Add(1)
		if v.data != nil {
			s.cm.Outcome(outbox.Op{Kind: outbox.OpDead, Seq: j.seq, Data: v.data})
		} else {
			s.cm.Outcome(outbox.Op{Kind: outbox.OpDelete, Seq: j.seq})
		}
	}
	// The body is sent no more: let it go now rather than when the
	// committer has written the outcome, which may be a while under load.
	j.body = nil
	inc.jobs[0] = nil
	inc.jobs = inc.jobs[1:]
	s.queued--
	if v.outcome.DeadLettered() {
		v.later = len(inc.jobs)
		s.logDead(j, v)
	}
	if len(inc.jobs) > 0 {
		s.schedule(inc, s.clock.Now())
	} else {
		delete(s.incidents, inc.key)
		if len(s.incidents) == 0 && s.peak > maxKeptIncidents {
			// A map keeps its capacity: let a burst's go.
			s.incidents, s.peak = make(map[incidentKey]*incident), 0
		}
	}
	if s.spilled > 0 {
		s.wakeLoader() // there is room now
	}
	s.checkDrained()
}

// checkDrained ends Close's wait once no event is pending. Called with s.mu held.
func (s *Sender) checkDrained() {
	if s.queued == 0 && s.spilled == 0 && s.drained != nil {
		close(s.drained)
		s.drained = nil
	}
}

// logDead logs a dead letter at error level.
func (s *Sender) logDead(j *job, v verdict) {
	fields := append(j.fields(),
		zap.String("reason", v.outcome.DeadReason()),
		zap.Int("attempts", j.attempts),
		zap.Int("status", v.err.StatusCode),
		zap.String("error", v.err.Err.Error()))
	if v.err.Body != "" {
		fields = append(fields, zap.String("response", v.err.Body))
	}
	if v.outcome == OutcomeExpired {
		fields = append(fields, zap.Duration("age", v.elapsed))
	}
	if v.later > 0 {
		// Order is kept for what remains: the next event goes next.
		fields = append(fields, zap.Int("later_events", v.later),
			zap.String("then", "the incident's later events are still delivered"))
	}
	s.log.Error("squadcast event dead-lettered", fields...)
}
