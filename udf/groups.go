package udf

import "strings"

// The alert state of a task node's groups, laid out for a million of them:
//
//   - h.groups maps a group key to its groupState (32 bytes). When the
//     group's alert ID ends with the group key, as the default id
//     "{{ .Name }}:{{ .Group }}" does, the map's key is that end of the ID
//     (assigning to an existing string key replaces the stored key): the
//     group key and its ID share one string.
//   - previousLevel, the level of the last event sent per alert ID, is kept
//     by the group whose ID it is when that ID ends with the group key
//     (groupState.owns and prev), and otherwise in h.prev: one map entry
//     per group less in the usual case. See prevOf.
//   - The flapping history, only with .flapping(), is in h.flaps.

// maxOwnLens bounds the distinct ID prefix lengths (len(ID) - len(group
// key)) of groups that keep their ID's previousLevel: finding the group
// that keeps an ID's takes one map lookup per length.
const maxOwnLens = 4

// newGroup adds the state of a group seen for the first time (OK).
func (h *Handler) newGroup(key string) *groupState {
	st := &groupState{}
	h.groups[key] = st
	if h.rules.flapping {
		h.flaps[key] = newFlapState(h.rules.history)
	}
	return st
}

// flapOf returns the group's level history, nil without .flapping().
func (h *Handler) flapOf(key string) *flapState {
	if !h.rules.flapping {
		return nil
	}
	return h.flaps[key]
}

// dropGroup forgets a group that is OK again (without .flapping()); the
// previousLevel of its ID, if the group kept it, moves to h.prev.
func (h *Handler) dropGroup(key string, st *groupState) {
	h.release(st)
	delete(h.groups, key)
}

// release moves the previousLevel a group keeps to h.prev.
func (h *Handler) release(st *groupState) {
	if st.owns {
		h.prev[st.alertID()] = st.prev
		st.owns = false
	}
}

// prevOf returns the previousLevel of an alert ID: the level of the last
// event sent with it, by any group of the node, or OK.
func (h *Handler) prevOf(id string) Level {
	if l, ok := h.prev[id]; ok {
		return l
	}
	if st := h.owner(id); st != nil {
		return st.prev
	}
	return OK
}

// incidentLevel returns the level of group st's incident, what the saved
// state and .resolveStale() go by: the level of the last event sent with
// its alert ID, as Kapacitor's alert node restores it (OK when none was
// sent, or the last was OK). It differs from st.level while .flapping()
// holds events back (a group can be OK with its incident open) and when
// groups share an ID; with .noRecoveries(), a group at OK has none.
func (h *Handler) incidentLevel(st *groupState) Level {
	id := st.alertID()
	if id == "" || (st.level == OK && h.rules.noRecoveries) {
		return OK
	}
	return h.prevOf(id)
}

// owner returns the group that keeps id's previousLevel, or nil. Such a
// group's ID is id and ends with its key, the rest of id being as long as
// one of h.ownLens: its key is id less one of those lengths.
func (h *Handler) owner(id string) *groupState {
	for _, n := range h.ownLens {
		if n > len(id) {
			continue
		}
		if st := h.groups[id[n:]]; st != nil && st.owns && st.alertID() == id {
			return st
		}
	}
	return nil
}

// sent records an event of the given level sent with alert ID id for the
// group key (state st, in h.groups): id is the group's ID from now on, and
// level is id's previousLevel for the next event with it.
//
// st must still be in h.groups (Point drops a recovered group after this).
func (h *Handler) sent(key string, st *groupState, id string, level Level) {
	if st.alertID() != id {
		h.release(st)
		h.setID(key, st, id)
	}
	h.setPrev(key, st, id, level)
}

// setID sets the group's alert ID, sharing its bytes with the map's key
// when the ID ends with the key.
func (h *Handler) setID(key string, st *groupState, id string) {
	st.setAlertID(id)
	if len(key) > 0 && strings.HasSuffix(id, key) {
		shared := id[len(id)-len(key):]
		h.groups[shared] = st
		if f := h.flaps[key]; f != nil {
			h.flaps[shared] = f
		}
	}
}

// setPrev makes level the previousLevel of id, which is st's ID: st keeps
// it when it can (see owner), else h.prev; an OK level is kept by no one.
func (h *Handler) setPrev(key string, st *groupState, id string, level Level) {
	delete(h.prev, id)
	if o := h.owner(id); o != nil {
		o.owns = false
	}
	if level == OK {
		return
	}
	if h.canOwn(key, id) {
		st.owns, st.prev = true, level
		return
	}
	h.prev[id] = level
}

// canOwn reports whether the group key with alert ID id may keep the ID's
// previousLevel: the ID ends with the key, and the length of the rest is
// one of h.ownLens (added when there is room).
func (h *Handler) canOwn(key, id string) bool {
	if !strings.HasSuffix(id, key) {
		return false
	}
	n := len(id) - len(key)
	for _, m := range h.ownLens {
		if m == n {
			return true
		}
	}
	if len(h.ownLens) == maxOwnLens {
		return false
	}
	h.ownLens = append(h.ownLens, n)
	return true
}

// setGroups replaces the alert state with saved groups. The previousLevel
// of each group's ID is the group's level (the last saved group wins for
// an ID several have).
func (h *Handler) setGroups(groups []SavedGroup) {
	clear(h.groups)
	clear(h.prev)
	clear(h.flaps)
	h.ownLens = h.ownLens[:0]
	for _, g := range groups {
		st := &groupState{level: g.Level, firstTriggered: g.FirstTriggered, lastTriggered: g.LastTriggered}
		if old := h.groups[g.Group]; old != nil {
			h.release(old) // a group saved twice: the last one stands
		}
		h.groups[g.Group] = st
		if h.rules.flapping {
			// As the alert node's restoreEventState: a fresh history
			// holding the saved level.
			f := newFlapState(h.rules.history)
			f.add(st.level)
			h.flaps[g.Group] = f
		}
		h.setID(g.Group, st, g.ID)
		h.setPrev(g.Group, st, g.ID, st.level)
	}
}
