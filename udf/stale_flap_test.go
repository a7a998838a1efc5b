package udf

import (
	"testing"
	"time"

	"github.com/influxdata/kapacitor/udf/agent"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestResolveStaleFlapping: a stale resolution is not held back by
// .flapping(), and forgets the group's history.
func TestResolveStaleFlapping(t *testing.T) {
	clock := newFakeClock()
	rec := &recorder{}
	h := staleHandler(t, rec, clock, false, opt("flapping", vDouble(0.3), vDouble(0.5)), opt("history", vInt(6)))
	for _, v := range []float64{5, 5, 5, 5, 5, 5, 50, 5, 50, 5, 50, 5} { // sent CRITICAL, OK, CRITICAL
		staleFeed(t, h, clock, "a", v)
		clock.add(time.Second)
	}
	require.True(t, h.flaps["host=a"].flapping, "a is flapping")
	require.Equal(t, Critical, h.groups["host=a"].level)
	n := len(rec.Events())
	clock.add(9 * time.Second)
	h.ResolveStale()
	ev := rec.Events()
	require.Len(t, ev, n+1, "resolved while flapping")
	assert.Equal(t, OK, ev[n].Level)
	assert.Equal(t, 10*time.Second, ev[n].Stale)
	assert.NotContains(t, h.flaps, "host=a")
	assert.NotContains(t, h.groups, "host=a")
}

// flapOpenIncident feeds host a into h until it flaps at level OK with its
// incident open: sent CRITICAL, OK, CRITICAL, then the last OK held back.
func flapOpenIncident(t *testing.T, h *Handler, rec interface{ Events() []Event }, clock *fakeClock) {
	t.Helper()
	for _, v := range []float64{5, 5, 5, 5, 5, 5, 50, 5, 50, 5, 50, 5, 50} {
		staleFeed(t, h, clock, "a", v)
		clock.add(time.Second)
	}
	ev := rec.Events()
	require.Len(t, ev, 3)
	require.Equal(t, []Level{Critical, OK, Critical}, []Level{ev[0].Level, ev[1].Level, ev[2].Level})
	require.Equal(t, OK, h.groups["host=a"].level, "setup: a is at OK")
	require.True(t, h.flaps["host=a"].flapping, "setup: a flaps, its recovery held back")
}

// TestResolveStaleFlappingOpenIncident: a group at OK whose recovery
// .flapping() held back still has its incident open: it is resolved when
// silent for d.
func TestResolveStaleFlappingOpenIncident(t *testing.T) {
	clock := newFakeClock()
	rec := &recorder{}
	h := staleHandler(t, rec, clock, false, opt("flapping", vDouble(0.3), vDouble(0.5)), opt("history", vInt(6)))
	flapOpenIncident(t, h, rec, clock)
	clock.add(time.Hour)
	h.ResolveStale()
	ev := rec.Events()
	require.Len(t, ev, 4, "the open incident is resolved")
	assert.Equal(t, OK, ev[3].Level)
	assert.Equal(t, Critical, ev[3].PreviousLevel)
	assert.Equal(t, ev[2].ID, ev[3].ID)
	assert.Equal(t, 10*time.Second, ev[3].Stale)
	assert.NotContains(t, h.groups, "host=a")
	assert.NotContains(t, h.flaps, "host=a")
}

// TestResolveStaleFlappingOpenIncidentRestart: such a group is saved (and
// snapshotted) at its incident's level, so a restart keeps the incident,
// and resolves it d after.
func TestResolveStaleFlappingOpenIncidentRestart(t *testing.T) {
	clock := newFakeClock()
	store := newMemStore()
	rec := &durable{store: store}
	flap := []*agent.Option{opt("flapping", vDouble(0.3), vDouble(0.5)), opt("history", vInt(6))}
	h := staleHandler(t, rec, clock, false, flap...)
	flapOpenIncident(t, h, rec, clock)
	h.Flush()
	ns, _, _ := store.LoadState("t1", "squadcast2")
	require.Len(t, ns.Groups, 1, "the open incident is saved")
	assert.Equal(t, Critical, ns.Groups[0].Level, "at the level of its last event")
	snap, err := h.Snapshot()
	require.NoError(t, err)
	_, groups, err := decodeSnapshot(snap.Snapshot)
	require.NoError(t, err)
	require.Len(t, groups, 1, "and snapshotted")
	assert.Equal(t, Critical, groups[0].Level)
	h.Close()

	rec2 := &durable{store: store}
	h = staleHandler(t, rec2, clock, false, flap...)
	clock.add(10 * time.Second)
	h.ResolveStale()
	ev := rec2.Events()
	require.Len(t, ev, 1, "resolved d after the restart")
	assert.Equal(t, OK, ev[0].Level)
	assert.Equal(t, Critical, ev[0].PreviousLevel)
	assert.Equal(t, rec.Events()[2].ID, ev[0].ID)
}

// TestResolveStaleFlappingNoIncident: a group that .flapping() kept from
// sending any event has no incident: it is neither resolved nor saved.
func TestResolveStaleFlappingNoIncident(t *testing.T) {
	clock := newFakeClock()
	store := newMemStore()
	rec := &durable{store: store}
	h := staleHandler(t, rec, clock, false, opt("flapping", vDouble(0.1), vDouble(0.2)), opt("history", vInt(4)))
	for _, v := range []float64{5, 50, 5, 50, 5} {
		staleFeed(t, h, clock, "a", v)
		clock.add(time.Second)
	}
	h.Flush()
	require.Empty(t, rec.Events(), "setup: every event held back")
	require.Equal(t, Critical, h.groups["host=a"].level, "setup: a is at CRITICAL")
	ns, _, _ := store.LoadState("t1", "squadcast2")
	assert.Empty(t, ns.Groups, "no incident to keep")
	_, ok := h.StaleWait()
	assert.False(t, ok, "no incident to resolve")
	clock.add(time.Hour)
	h.ResolveStale()
	assert.Empty(t, rec.Events())
}
