package udf

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"
	"unsafe"

	"github.com/influxdata/kapacitor/udf/agent"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// refNode is the alert state kept the plain way, as the Handler kept it
// before groups.go: a map of groups with their alert IDs, and a map of
// previousLevel per alert ID. TestGroupsMatchReference drives it and a
// Handler with the same points.
type refNode struct {
	r      rules
	groups map[string]*refGroup
	prev   map[string]Level
}

type refGroup struct {
	st   groupState
	id   string
	flap *flapState
}

func newRefNode(r rules) *refNode {
	return &refNode{r: r, groups: map[string]*refGroup{}, prev: map[string]Level{}}
}

// point applies a point of the given level to group key; when an event is
// sent, id gives its alert ID (the Handler's, rendered from the template)
// and point returns the event's previousLevel and duration.
func (n *refNode) point(key string, level Level, t int64, id func() string) (sent bool, evID string, prev Level, d time.Duration) {
	g := n.groups[key]
	if g == nil {
		if level == OK {
			return false, "", OK, 0
		}
		g = &refGroup{}
		if n.r.flapping {
			g.flap = newFlapState(n.r.history)
		}
		n.groups[key] = g
	}
	send := n.r.update(&g.st, g.flap, level, t)
	if level == OK && g.flap == nil {
		delete(n.groups, key)
	}
	if !send {
		return false, "", OK, 0
	}
	evID = id()
	prev = n.prev[evID]
	if level == OK {
		delete(n.prev, evID)
	} else {
		n.prev[evID] = level
	}
	g.id = evID
	return true, evID, prev, g.st.duration()
}

// restore replaces the state with saved groups, as setGroups did.
func (n *refNode) restore(groups []SavedGroup) {
	clear(n.groups)
	clear(n.prev)
	for _, sg := range groups {
		st := groupState{level: sg.Level, firstTriggered: sg.FirstTriggered, lastTriggered: sg.LastTriggered}
		st.setAlertID(sg.ID)
		g := &refGroup{st: st, id: sg.ID}
		if n.r.flapping {
			g.flap = newFlapState(n.r.history)
			g.flap.add(g.st.level)
		}
		n.groups[sg.Group] = g
		n.prev[g.id] = g.st.level
	}
}

// TestGroupsMatchReference drives a Handler and refNode with the same
// random points (levels from a tag), over id templates whose IDs end with
// the group key or not, are shared by groups, or collide across groups
// ("cpu" + ":b:a" and "cpu:b" + ":a"), with each set of alert rules, and
// a restore from a snapshot halfway: the events' IDs, levels,
// previousLevels and durations, and the groups kept, must be the same.
func TestGroupsMatchReference(t *testing.T) {
	templates := []string{
		"", // the default, {{ .Name }}:{{ .Group }}
		"{{ .Name }}",
		"{{ .Group }}",
		"p{{ .Group }}",
		`{{ index .Tags "k" }}`,
		`{{ index .Tags "k" }}{{ .Group }}`,
	}
	variants := map[string][]*agent.Option{
		"state changes":  nil,
		"no recoveries":  {opt("noRecoveries")},
		"all events":     {opt("allEvents")},
		"renotify":       {opt("renotify", vDur(3*time.Nanosecond))},
		"flapping":       {opt("flapping", vDouble(0.25), vDouble(0.5)), opt("history", vInt(4))},
		"flapping + all": {opt("flapping", vDouble(0.2), vDouble(0.4)), opt("history", vInt(3)), opt("allEvents")},
	}
	keys := []string{"", "a", "b:a", ":a", "host=a", "a:b:a", "nil"}
	names := []string{"cpu", "cpu:b", "cpu:a:b", ""}
	tagKs := []string{"x", "x:", "cpu:", ""}
	levels := []string{"OK", "OK", "INFO", "WARNING", "CRITICAL"}
	for vname, vopts := range variants {
		for ti, tmpl := range templates {
			t.Run(fmt.Sprintf("%s/template%d", vname, ti), func(t *testing.T) {
				rnd := rand.New(rand.NewPCG(uint64(ti), 7))
				opts := append([]*agent.Option{str("levelTag", "sev")}, vopts...)
				if tmpl != "" {
					opts = append(opts, str("id", tmpl))
				}
				rec := &recorder{}
				h := newTestHandler(t, rec, opts...)
				ref := newRefNode(h.rules)
				for i := range 3000 {
					if i == 1500 {
						// Restart from a snapshot of the state, in a new handler.
						snap, err := h.Snapshot()
						require.NoError(t, err)
						rec = &recorder{}
						h = newTestHandler(t, rec, opts...)
						_, err = h.Restore(&agent.RestoreRequest{Snapshot: snap.Snapshot})
						require.NoError(t, err)
						// A snapshot holding a flapping group at OK fails to
						// decode, and Restore ignores it: the state is empty.
						_, groups, _ := decodeSnapshot(snap.Snapshot)
						ref.restore(groups)
						checkGroups(t, h, ref, i)
					}
					key, name, lv := keys[rnd.IntN(len(keys))], names[rnd.IntN(len(names))], levels[rnd.IntN(len(levels))]
					p := &agent.Point{Name: name, Group: key, Time: int64(i), Tags: map[string]string{"sev": lv, "k": tagKs[rnd.IntN(len(tagKs))]}}
					rec.events = rec.events[:0]
					_, err := h.Point(p)
					require.NoError(t, err)
					evs := rec.Events()
					level, _ := ParseLevel(lv)
					sent, id, prev, d := ref.point(key, level, int64(i), func() string {
						require.Len(t, evs, 1, "point %d: the reference sends an event", i)
						return evs[0].ID
					})
					if !sent {
						require.Empty(t, evs, "point %d: the reference sends no event", i)
					} else {
						assert.Equal(t, id, evs[0].ID, "point %d", i)
						assert.Equal(t, level, evs[0].Level, "point %d", i)
						assert.Equal(t, prev, evs[0].PreviousLevel, "point %d: previousLevel of %q", i, id)
						assert.Equal(t, d, evs[0].Duration, "point %d", i)
					}
					checkGroups(t, h, ref, i)
				}
			})
		}
	}
}

// checkGroups compares the Handler's groups with the reference's, and
// checks that each alert ID's previousLevel is kept in one place at most.
func checkGroups(t *testing.T, h *Handler, ref *refNode, i int) {
	t.Helper()
	require.Len(t, h.groups, len(ref.groups), "point %d", i)
	for key, g := range ref.groups {
		st := h.groups[key]
		require.NotNil(t, st, "point %d: group %q", i, key)
		require.Equal(t, g.st.level, st.level, "point %d: group %q", i, key)
		require.Equal(t, g.id, st.alertID(), "point %d: group %q", i, key)
		require.Equal(t, g.st.firstTriggered, st.firstTriggered, "point %d: group %q", i, key)
		require.Equal(t, g.st.lastTriggered, st.lastTriggered, "point %d: group %q", i, key)
		if g.flap != nil {
			require.Equal(t, *g.flap, *h.flaps[key], "point %d: group %q", i, key)
		}
	}
	held := map[string]int{}
	for id := range h.prev {
		held[id]++
	}
	for key, st := range h.groups {
		if st.owns {
			held[st.alertID()]++
			require.NotEqual(t, OK, st.prev, "point %d: group %q keeps an OK previousLevel", i, key)
		}
	}
	for id, n := range held {
		require.Equal(t, 1, n, "point %d: previousLevel of %q is kept in %d places", i, id, n)
	}
	ids := make([]string, 0, len(ref.prev)+len(held))
	for id := range ref.prev {
		ids = append(ids, id)
	}
	for id := range held {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		require.Equal(t, ref.prev[id], h.prevOf(id), "point %d: previousLevel of %q", i, id)
	}
}

// TestGroupKeySharesAlertID checks the layout of groups.go: a group whose
// alert ID ends with its key keeps the ID's previousLevel itself, and the
// map's key is the end of the ID, not a string of its own.
func TestGroupKeySharesAlertID(t *testing.T) {
	rec := &recorder{}
	h := newTestHandler(t, rec, str("crit", `"v" < 10`))
	feed(t, h, "host=a", 1, 5)
	require.Len(t, rec.Events(), 1)
	assert.Empty(t, h.prev)
	for key, st := range h.groups {
		id := st.alertID()
		assert.Equal(t, "cpu:host=a", id)
		assert.True(t, st.owns)
		assert.Equal(t, Critical, st.prev)
		assert.Same(t, unsafeStringEnd(id, len(key)), unsafeStringEnd(key, len(key)), "the key is the end of the alert ID")
	}
	snap, err := h.Snapshot()
	require.NoError(t, err)
	var s snapshotV1
	require.NoError(t, json.Unmarshal(snap.Snapshot, &s))
	assert.Equal(t, []snapshotGroup{{Group: "host=a", Level: Critical, First: 1, Last: 1, ID: "cpu:host=a"}}, s.Groups)
}

// unsafeStringEnd returns the address of the last n bytes of s.
func unsafeStringEnd(s string, n int) *byte { return unsafe.StringData(s[len(s)-n:]) }
