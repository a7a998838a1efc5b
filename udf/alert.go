package udf

import (
	"errors"

	"github.com/influxdata/kapacitor/udf/agent"
	"go.uber.org/zap"
)

// Point evaluates the point's level for its group and, when the alert node
// would send an event, publishes it and returns the point to emit downstream
// (nil when there is no event). For a stream, when it returns nil, Point
// keeps nothing of p (neither p nor its maps or slices): the connection
// reuses them for the next point. A batch handler keeps every point until
// the batch ends (the connection then never reuses them).
func (h *Handler) Point(p *agent.Point) (out *agent.Point, err error) {
	defer recoverTo(&err)
	if h.opts == nil {
		return nil, errors.New("point received before a successful init")
	}
	if h.cfg.Observer != nil {
		h.cfg.Observer.PointReceived()
	}
	if h.cfg.Batch {
		return nil, h.batchPoint(p)
	}
	if p.Time > h.asOf {
		h.asOf = p.Time
	}
	st, current := h.groupLevel(p.Group)
	level, ok := h.level(p, current)
	var ev Event
	sent := ok && h.alert(p.Group, st, current, level, p.Time, &eventSource{name: p.Name, tags: p.Tags, fields: p}, &ev)
	h.noteStale(p.Group, p.Name)
	if !sent {
		return nil, nil
	}
	h.publish(ev, p.Group)
	return alertPoint(p, &ev), nil
}

// groupLevel returns the state of group key (nil when it has none) and
// its level (OK when it has none).
func (h *Handler) groupLevel(key string) (*groupState, Level) {
	st := h.groups[key]
	if st == nil {
		return nil, OK
	}
	return st, st.level
}

// eventSource is what an event is built from: a stream's point, or a
// batch's name and tags and its highest point.
type eventSource struct {
	name string
	tags map[string]string
	// fields is the point whose fields the event carries.
	fields *agent.Point
}

// alert moves group key, of state st (nil when it has none) and level
// current, to level at time t (ns), as the alert node's alertState does,
// and marks the group dirty when its saved state changes. When the alert
// node would send an event, it builds it from src into ev, for the caller
// to publish, and returns true. A group back at OK is dropped (an absent
// group is an OK one), unless .flapping() keeps its history.
func (h *Handler) alert(key string, st *groupState, current, level Level, t int64, src *eventSource, ev *Event) (send bool) {
	if st == nil {
		if level == OK {
			// A group that has only been OK sends nothing: keep no state for it.
			return false
		}
		st = h.newGroup(key)
	}
	lastTriggered := st.lastTriggered
	send = h.rules.update(st, h.flapOf(key), level, t)
	if send || level != current || st.lastTriggered != lastTriggered {
		h.dirty[key] = struct{}{}
	}
	if send {
		h.unflushed = true
		*ev = h.event(eventData{name: src.name, key: key, st: st, tags: src.tags, fields: pointFields(src.fields),
			t: t, level: level, d: st.duration()})
	}
	if level == OK && !h.rules.flapping {
		// Recovered: an absent group is an OK one.
		h.dropGroup(key, st)
	}
	return send
}

// publish counts, logs and hands an event to the publisher; a publisher's
// refusal is logged (the event is lost) and does not fail the point.
func (h *Handler) publish(ev Event, group string) {
	if h.cfg.Observer != nil {
		h.cfg.Observer.AlertEvent(ev.Level)
	}
	if ce := h.log.Check(zap.DebugLevel, "alert event"); ce != nil {
		ce.Write(zap.String("id", LoggedID(ev.ID)), zap.Stringer("level", ev.Level), zap.Stringer("previous_level", ev.PreviousLevel),
			zap.String("group", group), zap.Duration("duration", ev.Duration))
	}
	if err := h.pub.Publish(ev); err != nil {
		h.log.Error("alert event lost: cannot enqueue it",
			zap.String("id", LoggedID(ev.ID)), zap.Stringer("level", ev.Level), zap.Error(err))
	}
}

// level returns the point's level: from its level field or tag when the task
// takes levels from points, else from the level expressions. ok is false for
// a point whose level field or tag is missing or not a level: it is skipped.
func (h *Handler) level(p *agent.Point, current Level) (Level, bool) {
	o := h.opts
	var raw string
	var found bool
	switch {
	case o.LevelField != "":
		raw, found = p.FieldsString[o.LevelField]
	case o.LevelTag != "":
		raw, found = p.Tags[o.LevelTag]
	default:
		return determineLevel(&o.Levels, &o.Resets, current, p, h.evalError), true
	}
	l, err := ParseLevel(raw)
	if !found || err != nil {
		h.log.Warn("point skipped: no valid level in it",
			zap.String("group", p.Group), zap.String("level_field", o.LevelField), zap.String("level_tag", o.LevelTag), zap.String("value", raw))
		return OK, false
	}
	return l, true
}

func (h *Handler) evalError(l Level, err error) {
	h.log.Debug("level expression failed; taken as false", zap.Stringer("level", l), zap.Error(err))
}
