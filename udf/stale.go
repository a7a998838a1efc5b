package udf

import (
	"strings"
	"time"

	"go.uber.org/zap"
)

// .resolveStale(d): an alerting group that receives no point (no batch,
// for batch tasks) for d of wall-clock time is resolved, as if a point had
// brought it back to OK, with an event marked Stale (see staleEvent). The
// connection's goroutine calls ResolveStale before it waits for input, and
// wakes up for it at StaleWait (see conn.awaitStale): no other goroutine
// touches the groups.

// noteStale tracks group key after data of it (of measurement name) was
// handled: while its incident is open (see incidentLevel), it was seen
// now; else it is forgotten. Without .resolveStale() it does nothing.
func (h *Handler) noteStale(key, name string) {
	if h.stale == nil {
		return
	}
	if st := h.groups[key]; st == nil || h.incidentLevel(st) == OK {
		h.stale.forget(key)
		return
	}
	h.stale.touch(key, name, h.clock.Now().Sub(h.stale.base))
}

// resetStale starts the stale clock of every alerting group again, now:
// at Init, of the saved groups, and when a Restore replaces them. A
// resolution may so come late by up to d after a restart, never early.
func (h *Handler) resetStale() {
	if h.stale == nil {
		return
	}
	keys := make([]string, 0, len(h.groups))
	for k, st := range h.groups {
		if h.incidentLevel(st) != OK {
			keys = append(keys, k)
		}
	}
	h.stale.reset(keys, h.clock.Now().Sub(h.stale.base))
}

// StaleWait returns how long until a group may be stale; ok is false
// without .resolveStale(), when no group alerts, or inside a batch.
func (h *Handler) StaleWait() (wait time.Duration, ok bool) {
	if h.stale == nil || h.batch != nil {
		return 0, false
	}
	at, ok := h.stale.next()
	if !ok {
		return 0, false
	}
	return at - h.clock.Now().Sub(h.stale.base), true
}

// ResolveStale resolves the groups that have received no data for the
// task's .resolveStale() duration: each gets an OK event (none with
// .noRecoveries()) and is forgotten, and is saved as OK at the next
// Flush, with its event. Without .resolveStale() it does nothing, and
// inside a batch (between its begin and end) it waits for the batch's end:
// the batch may be the group's.
func (h *Handler) ResolveStale() {
	if h.stale == nil || h.batch != nil {
		return
	}
	now := h.clock.Now()
	resolved, forgotten := 0, 0
	h.stale.expire(now.Sub(h.stale.base), func(key string, g staleGroup) {
		st := h.groups[key]
		if st == nil || h.incidentLevel(st) == OK {
			return
		}
		h.dirty[key] = struct{}{}
		if h.rules.noRecoveries {
			forgotten++
			// As the event would: the ID's next event has previousLevel
			// OK, and no previousLevel is left behind for a gone group.
			h.setPrev(key, st, st.alertID(), OK)
		} else {
			resolved++
			h.unflushed = true
			ev := h.staleEvent(key, st, g, now)
			h.publish(ev, key)
		}
		h.dropGroup(key, st)
		delete(h.flaps, key)
	})
	if resolved+forgotten > 0 {
		h.log.Info("resolved groups that received no data",
			zap.Duration("resolve_stale", h.stale.d), zap.Int("resolved", resolved), zap.Int("forgotten_without_event", forgotten))
	}
}

// staleEvent builds the OK event of group key (state st, tracked as g)
// resolved as stale at now: its ID is the group's last (its incident's),
// whatever the id template; its time is now (never before the group's
// last event), its duration and previousLevel those of any recovery; its
// name that of the group's last data, its tags those its group key holds
// (the groupBy tags), its fields none.
func (h *Handler) staleEvent(key string, st *groupState, g staleGroup, now time.Time) Event {
	t := max(now.UnixNano(), st.lastTriggered)
	st.level, st.lastTriggered = OK, t
	name, tags := groupKeyTags(key)
	if g.name != "" {
		name = g.name
	}
	return h.event(eventData{name: name, key: key, st: st, tags: tags, fields: map[string]interface{}{},
		t: t, level: OK, d: st.duration(), stale: h.stale.d})
}

// groupKeyTags returns the measurement name and the tags that a group key
// holds, as Kapacitor writes it (models.ToGroupID): "k=v,k=v" after
// "name\n" when grouped by name. A tag value holding ',' is cut short
// there (Kapacitor does not escape it).
func groupKeyTags(key string) (name string, tags map[string]string) {
	if i := strings.IndexByte(key, '\n'); i >= 0 {
		name, key = key[:i], key[i+1:]
	}
	for kv := range strings.SplitSeq(key, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			continue
		}
		if tags == nil {
			tags = map[string]string{}
		}
		tags[k] = v
	}
	return name, tags
}
