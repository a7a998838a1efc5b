package squadcast

import (
	"time"

	"go.uber.org/zap"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast/outbox"
)

// work delivers events until the scheduler closes: it takes an incident
// whose head may go, makes one attempt, and gives the incident back with
// what the attempt decided, so that incidents take turns and no backoff
// holds a worker.
func (s *Sender) work() {
	for {
		inc, j, ok := s.sched.take()
		if !ok {
			return
		}
		start := s.clock.Now()
		v := s.outcome(j, s.send(j))
		v.log(s.log, j)
		s.observe(j, v.outcome, start)
		s.finish(inc, j, v)
	}
}

// send makes the next attempt of j: it counts it (and a retry), and
// returns its result.
func (s *Sender) send(j *job) attemptResult {
	j.attempts++
	if j.attempts > 1 {
		s.retried.Add(1)
	}
	if ce := s.log.Check(zap.DebugLevel, "squadcast delivery attempt"); ce != nil {
		ce.Write(append(j.fields(), zap.Int("attempt", j.attempts), zap.Int("bytes", len(j.body)))...)
	}
	return s.attempter.attempt(s.ctx, attemptRequest{url: j.target.url, headers: j.target.headers, body: j.body,
		timeout: j.target.timeout, attempt: j.attempts, secrets: j.target.secrets})
}

// observe tells the Observer, if any, of an attempt that started at start.
func (s *Sender) observe(j *job, o Outcome, start time.Time) {
	if s.cfg.Observer == nil || o == OutcomeAborted {
		return
	}
	now := s.clock.Now()
	s.cfg.Observer.Attempted(j.target.label, j.level, o, now.Sub(start), now.Sub(j.created))
}

// verdict is what one attempt means for its event: the attempt's result,
// its outcome OutcomeExpired instead of OutcomeRetry once the event reached
// its max age, and what finish needs.
type verdict struct {
	attemptResult
	next    time.Time     // the next attempt (OutcomeRetry)
	elapsed time.Duration // the event's age (OutcomeExpired)
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

// log logs an attempt's outcome (dead letters are logged by finish).
func (v *verdict) log(log *zap.Logger, j *job) {
	switch v.outcome {
	case OutcomeDelivered:
		if ce := log.Check(zap.DebugLevel, "squadcast event delivered"); ce != nil {
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
		log.Warn("squadcast delivery attempt failed, will retry", fields...)
	case OutcomeAborted:
		log.Info("squadcast delivery aborted by shutdown; the event stays in the outbox",
			append(j.fields(), zap.Int("attempt", j.attempts))...)
	}
}

// finish records an attempt's outcome: in the outbox (through the
// committer), the counters and the backlog, and gives the incident back
// to the scheduler.
func (s *Sender) finish(inc *incident, j *job, v verdict) {
	switch {
	case v.outcome == OutcomeAborted:
		// The event stays as it is on disk; the Sender is stopping.
		s.sched.abort(inc)
		return
	case v.outcome == OutcomeRetry:
		if v.data != nil {
			s.cm.Outcome(outbox.Op{Kind: outbox.OpUpdate, Seq: j.seq, Data: v.data})
		}
		var pause time.Time
		if v.throttled {
			pause = v.next
		}
		s.sched.retry(inc, pause)
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
	later := s.sched.done(inc)
	if v.outcome.DeadLettered() {
		s.logDead(j, v, later)
	}
	if s.backlog.release() {
		s.loader.wake() // there is room now
	}
}

// logDead logs a dead letter at error level; later is the number of the
// incident's events that are still to go.
func (s *Sender) logDead(j *job, v verdict, later int) {
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
	if later > 0 {
		// Order is kept for what remains: the next event goes next.
		fields = append(fields, zap.Int("later_events", later),
			zap.String("then", "the incident's later events are still delivered"))
	}
	s.log.Error("squadcast event dead-lettered", fields...)
}
