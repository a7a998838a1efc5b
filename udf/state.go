package udf

import (
	"time"
	"unsafe"

	"github.com/influxdata/kapacitor/udf/agent"
)

// groupState is the alert state of one group: the alert node's alertState
// (kapacitor alert.go). It is small on purpose (32 bytes, no pointer but
// its alert ID's bytes): a task may hold a million groups, and an OK group
// without flapping history is not kept at all. The flapping history, when
// the task has one, is in Handler.flaps.
type groupState struct {
	level Level
	// prev is the previousLevel of the group's alert ID while owns: the
	// Handler keeps it here rather than in Handler.prev (see Handler.prevOf).
	prev Level
	owns bool
	// idLen and idData are the alert ID of the last event (see alertID):
	// a string's length and bytes, without a string's 16-byte header.
	idLen  uint32
	idData *byte
	// firstTriggered is the time of the first event since the group was last OK.
	firstTriggered int64
	// lastTriggered is the time of the last event.
	lastTriggered int64
}

// alertID returns the alert ID of the group's last event ("" before any).
func (s *groupState) alertID() string { return unsafe.String(s.idData, s.idLen) }

// setAlertID sets the alert ID of the group's last event. The state keeps
// id's bytes (strings are immutable), not a copy.
func (s *groupState) setAlertID(id string) {
	s.idData, s.idLen = unsafe.StringData(id), uint32(len(id))
}

// flapState is the alert node's level history and flapping flag.
type flapState struct {
	history  []Level
	idx      int
	flapping bool
}

// Weights of the alert node's flapping detection: the newest change counts
// weightDiff times the oldest, at most maxWeight.
const (
	weightDiff = 1.5
	maxWeight  = 1.2
)

func newFlapState(n int) *flapState { return &flapState{history: make([]Level, n)} }

// add records a level, as alertState.addEvent does.
func (f *flapState) add(l Level) {
	f.idx = (f.idx + 1) % len(f.history)
	f.history[f.idx] = l
}

// percentChange is alertState.percentChange: the weighted share of changes
// in the history, newer changes weighing more.
func (f *flapState) percentChange() float64 {
	l := len(f.history)
	changes := 0.0
	weight := maxWeight / weightDiff
	step := (maxWeight - weight) / float64(l-1)
	for i := 0; i < l-1; i++ {
		c := (i + f.idx) % l
		p := c - 1
		if p < 0 {
			p = l - 1
		}
		if f.history[c] != f.history[p] {
			changes += weight
		}
		weight += step
	}
	return changes / float64(l-1)
}

// rules are a task's alert-node settings that decide when an event goes out.
type rules struct {
	stateChangesOnly  bool
	renotify          int64 // ns; 0 never
	noRecoveries      bool
	flapping          bool
	flapLow, flapHigh float64
	history           int
	// batch applies the alert node's batch rule: a recovery is sent even
	// while flapping.
	batch bool
}

func rulesOf(o *TaskOptions) rules {
	return rules{
		stateChangesOnly: !o.AllEvents,
		renotify:         int64(o.Renotify),
		noRecoveries:     o.NoRecoveries,
		flapping:         o.Flapping,
		flapLow:          o.FlapLow,
		flapHigh:         o.FlapHigh,
		history:          o.History,
	}
}

// update records the level of a point at time t (ns) and reports whether an
// event goes out, with the rules of the alert node's alertState.Point:
// suppressed while flapping; with state changes only, an event only when
// the level changed or the renotify interval has passed; then an event for
// every non-OK level and for the recovery to OK, unless recoveries are off.
// For batches (alertState.BufferedBatch), flapping never holds a recovery.
// flap is the group's level history, nil without .flapping().
func (r *rules) update(s *groupState, flap *flapState, l Level, t int64) bool {
	prev := s.level
	changed := prev != l
	s.level = l
	if flap != nil {
		flap.add(l)
		p := flap.percentChange()
		if flap.flapping && p < r.flapLow {
			flap.flapping = false
		} else if !flap.flapping && p > r.flapHigh {
			flap.flapping = true
		}
	}
	expired := !changed && r.renotify != 0 && t-s.lastTriggered >= r.renotify
	suppressed := (flap != nil && flap.flapping) || (r.stateChangesOnly && !changed && !expired)
	if r.batch && l == OK && changed {
		// alertState.BufferedBatch sends a recovery whatever the flapping.
		suppressed = false
	}
	if suppressed || (l == OK && !changed) {
		return false
	}
	// alertState.triggered: the alert starts when the previous level was OK.
	s.lastTriggered = t
	if prev == OK {
		s.firstTriggered = t
	}
	return !(r.noRecoveries && l == OK)
}

// duration is how long the current alert has lasted at its last event.
func (s *groupState) duration() time.Duration {
	return time.Duration(s.lastTriggered - s.firstTriggered)
}

// determineLevel is the alert node's determineLevel: a level at or above the
// current one wins; otherwise, if the current level has a reset expression
// that is false, the level holds; otherwise the highest true level at or
// below the current one, or OK. Expressions are evaluated in the alert
// node's order (it matters to stateful functions such as count()). A
// failing expression counts as false; onErr hears about it.
func determineLevel(levels, resets *[Critical + 1]*Expr, current Level, p *agent.Point, onErr func(Level, error)) Level {
	if l, ok := firstMatch(levels, Critical, current-1, p, onErr); ok {
		return l
	}
	if rse := resets[current]; rse != nil {
		pass, err := rse.EvalBool(p)
		if err != nil {
			onErr(current, err)
		} else if !pass {
			return current
		}
	}
	if l, ok := firstMatch(levels, current, OK, p, onErr); ok {
		return l
	}
	return OK
}

// firstMatch is findFirstMatchLevel: the first true level from start down
// to, not including, stop.
func firstMatch(levels *[Critical + 1]*Expr, start, stop Level, p *agent.Point, onErr func(Level, error)) (Level, bool) {
	if stop < OK {
		stop = OK
	}
	for l := start; l > stop; l-- {
		e := levels[l]
		if e == nil {
			continue
		}
		ok, err := e.EvalBool(p)
		if err != nil {
			onErr(l, err)
			continue
		}
		if ok {
			return l, true
		}
	}
	return OK, false
}
