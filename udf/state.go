package udf

import (
	"time"

	"github.com/influxdata/kapacitor/udf/agent"
)

// groupState is the alert state of one group: the part of the alert node's
// alertState (kapacitor alert.go) that state-changes-only alerting needs.
// It is small on purpose: a task may hold a million groups.
type groupState struct {
	level Level
	// firstTriggered is the time of the first event since the group was last OK.
	firstTriggered int64
	// lastTriggered is the time of the last event.
	lastTriggered int64
	// id is the alert ID of the last event.
	id string
}

// update records the level of a point at time t (ns) and reports whether an
// event goes out, with the alert node's rules for stateChangesOnly(): an
// event on every change of level, the recovery to OK included, and none for
// an unchanged level.
func (s *groupState) update(l Level, t int64) bool {
	prev := s.level
	s.level = l
	if prev == l {
		return false
	}
	// alertState.triggered: the alert starts when the previous level was OK.
	s.lastTriggered = t
	if prev == OK {
		s.firstTriggered = t
	}
	return true
}

// duration is how long the current alert has lasted at its last event.
func (s *groupState) duration() time.Duration {
	return time.Duration(s.lastTriggered - s.firstTriggered)
}

// determineLevel returns the highest level whose expression is true for the
// point, or OK, as the alert node's determineLevel does without reset
// expressions. A failing expression counts as false; onErr hears about it.
func determineLevel(levels *[Critical + 1]*Expr, p *agent.Point, onErr func(Level, error)) Level {
	for l := Critical; l > OK; l-- {
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
			return l
		}
	}
	return OK
}
