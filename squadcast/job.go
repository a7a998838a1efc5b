package squadcast

import (
	"time"

	"go.uber.org/zap"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// job is one event to deliver. Its delivery state (attempts, lastErr,
// next, body) is touched only by the worker that holds its incident (see
// scheduler.take), and next also under the scheduler's lock; released and
// spill belong to the commit hand-off (onCommit); seq is set once, when
// the event is published (under the backlog's lock) or loaded.
type job struct {
	target  *target
	id      string
	level   udf.Level
	task    string
	created time.Time
	body    []byte

	attempts int
	lastErr  string
	next     time.Time // not before

	source Source // where it came from
	// opens is set on a trigger whose previous level was OK: Squadcast
	// has no open incident for it once the events before it are
	// delivered. Not stored in the outbox: false for loaded events.
	opens bool
	// place is the sequence number its rank counts from (see rank): the
	// replaced event's, once it replaced one (coalescing), so that an
	// incident keeps its place in line; 0 for seq.
	place uint64

	seq      uint64 // its key in the outbox
	released bool   // handed to the scheduler (or, spilled, left on disk)
	spill    bool   // kept in the outbox only, until the loader reads it back
}

func (j *job) fields() []zap.Field {
	return []zap.Field{
		zap.String("endpoint", j.target.name),
		zap.String("incident", udf.LoggedID(j.id)),
		zap.String("level", j.level.String()),
		zap.String("task", j.task),
	}
}
