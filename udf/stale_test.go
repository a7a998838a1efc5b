package udf

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/influxdata/kapacitor/udf/agent"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeClock is a Clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// staleHandler returns an initialized handler on clock, with
// .crit('"v" < 10'), .resolveStale(10s) and opts.
func staleHandler(t *testing.T, sink Sink, clock Clock, batch bool, opts ...*agent.Option) *Handler {
	t.Helper()
	h := NewHandler(HandlerConfig{Sink: sink, Hostname: "testhost", Clock: clock, Batch: batch})
	opts = append([]*agent.Option{str("crit", `"v" < 10`), opt("resolveStale", vDur(10*time.Second))}, opts...)
	res, err := h.Init(&agent.InitRequest{TaskID: "t1", NodeID: "squadcast2", Options: opts})
	require.NoError(t, err)
	require.True(t, res.Success, res.Error)
	return h
}

// staleFeed sends a point of host at the clock's time.
func staleFeed(t *testing.T, h *Handler, clock *fakeClock, host string, v float64) {
	t.Helper()
	_, err := h.Point(point("host="+host, clock.Now().UnixNano(), map[string]float64{"v": v}, map[string]string{"host": host, "cpu": "total"}))
	require.NoError(t, err)
}

// wantWait checks how long the handler would wait for its next stale check.
func wantWait(t *testing.T, h *Handler, want time.Duration) {
	t.Helper()
	wait, ok := h.StaleWait()
	require.True(t, ok, "a group is tracked")
	assert.Equal(t, want, wait)
}

// TestResolveStalePerGroup: each alerting group has its own clock; a
// point (even one that sends nothing) restarts it; a silent group is
// resolved once d has passed, not before, with an OK event that resolves
// its incident; it then alerts afresh.
func TestResolveStalePerGroup(t *testing.T) {
	clock := newFakeClock()
	rec := &recorder{}
	h := staleHandler(t, rec, clock, false)
	_, ok := h.StaleWait()
	assert.False(t, ok, "no group alerts: nothing to wait for")

	start := clock.Now()
	staleFeed(t, h, clock, "a", 5) // CRITICAL
	staleFeed(t, h, clock, "b", 5) // CRITICAL
	staleFeed(t, h, clock, "c", 50)
	wantWait(t, h, 10*time.Second)
	clock.add(4 * time.Second)
	staleFeed(t, h, clock, "b", 6) // still CRITICAL: no event, but data
	require.Len(t, rec.Events(), 2)

	clock.add(6*time.Second - 1)
	h.ResolveStale()
	require.Len(t, rec.Events(), 2, "not before 10s of silence")
	wantWait(t, h, 1)

	clock.add(1)
	h.ResolveStale()
	ev := rec.Events()
	require.Len(t, ev, 3, "a is resolved, b (seen 6s ago) is not")
	ok3 := ev[2]
	assert.Equal(t, "cpu:host=a", ok3.ID, "the incident's id")
	assert.Equal(t, OK, ok3.Level)
	assert.Equal(t, Critical, ok3.PreviousLevel)
	assert.Equal(t, 10*time.Second, ok3.Stale)
	assert.Equal(t, "cpu:host=a is OK (no data for 10s)", ok3.Message)
	assert.Equal(t, start.Add(10*time.Second), ok3.Time, "the time is the wall clock's at resolution")
	assert.Equal(t, 10*time.Second, ok3.Duration, "from the trigger's point time to the resolution")
	assert.Equal(t, "cpu", ok3.Name)
	assert.Equal(t, map[string]string{"host": "a"}, ok3.Tags, "the tags of the group key")
	assert.Empty(t, ok3.Fields)
	assert.True(t, ok3.Recoverable)
	assert.Contains(t, ok3.Details, `"Stale":10000000000`)
	assert.NotContains(t, ev[0].Details, `"Stale"`, "other events' details are the alert node's")
	assert.Equal(t, "cpu:host=a is CRITICAL", ev[0].Message)
	assert.Zero(t, ev[0].Stale)
	assert.NotContains(t, h.groups, "host=a", "a resolved group is forgotten")
	wantWait(t, h, 4*time.Second)

	clock.add(4 * time.Second)
	h.ResolveStale()
	ev = rec.Events()
	require.Len(t, ev, 4)
	assert.Equal(t, "cpu:host=b", ev[3].ID)
	assert.Equal(t, 14*time.Second, ev[3].Duration)
	_, ok = h.StaleWait()
	assert.False(t, ok, "no group alerts any more")

	// a reports again: a new alert, as after any recovery.
	clock.add(time.Minute)
	staleFeed(t, h, clock, "a", 5)
	ev = rec.Events()
	require.Len(t, ev, 5)
	assert.Equal(t, Critical, ev[4].Level)
	assert.Equal(t, OK, ev[4].PreviousLevel, "a new incident")
	assert.Zero(t, ev[4].Duration)
	wantWait(t, h, 10*time.Second)

	// A recovery by a point stops the group's clock.
	staleFeed(t, h, clock, "a", 50)
	clock.add(time.Hour)
	h.ResolveStale()
	assert.Len(t, rec.Events(), 6, "a's recovery, and no stale resolution")
}

// TestResolveStaleSavedWithState: a stale resolution is saved as the
// group's deletion, flushed with its event.
func TestResolveStaleSavedWithState(t *testing.T) {
	clock := newFakeClock()
	store := newMemStore()
	rec := &durable{store: store}
	h := staleHandler(t, rec, clock, false)
	staleFeed(t, h, clock, "a", 5)
	h.Flush()
	ns, _, _ := store.LoadState("t1", "squadcast2")
	require.Len(t, ns.Groups, 1)
	clock.add(10 * time.Second)
	h.ResolveStale()
	assert.True(t, h.flushPending(), "the resolution waits for the next Flush")
	saves := rec.saves
	h.Flush()
	assert.Equal(t, saves+1, rec.saves, "the event and the state in one Flush")
	ns, _, _ = store.LoadState("t1", "squadcast2")
	assert.Empty(t, ns.Groups, "the group is saved as OK")
	require.Len(t, rec.Events(), 2)
}

// TestResolveStaleAfterRestart: after a restart, every saved alerting
// group's clock starts at Init: resolved d later (late, never early), with
// the saved incident's id and what the group key tells of its tags; a
// point after the restart restarts its clock.
func TestResolveStaleAfterRestart(t *testing.T) {
	clock := newFakeClock()
	store := newMemStore()
	rec := &durable{store: store}
	h := staleHandler(t, rec, clock, false, str("id", `{{ index .Tags "host" }}-cpu`),
		str("message", `{{ .ID }} {{ .Level }} {{ index .Tags "host" }}{{ if .Stale }} silent {{ .Stale }}{{ end }}`))
	staleFeed(t, h, clock, "a", 5)
	staleFeed(t, h, clock, "b", 5)
	h.Flush()
	h.Close()
	require.Equal(t, "a-cpu", rec.Events()[0].ID)

	clock.add(9 * time.Second) // the daemon was down 9s: a and b were silent 9s
	rec2 := &durable{store: store}
	h = staleHandler(t, rec2, clock, false, str("id", `{{ index .Tags "host" }}-cpu`),
		str("message", `{{ .ID }} {{ .Level }} {{ index .Tags "host" }}{{ if .Stale }} silent {{ .Stale }}{{ end }}`))
	wantWait(t, h, 10*time.Second)
	clock.add(5 * time.Second)
	staleFeed(t, h, clock, "b", 5) // unchanged: no event
	clock.add(5*time.Second - 1)
	h.ResolveStale()
	assert.Empty(t, rec2.Events(), "never early: the clock restarted at Init")
	clock.add(1)
	h.ResolveStale()
	ev := rec2.Events()
	require.Len(t, ev, 1)
	assert.Equal(t, "a-cpu", ev[0].ID, "the saved id, not one rendered without the point's tags")
	assert.Equal(t, "a-cpu OK a silent 10s", ev[0].Message, "the tags the group key holds")
	assert.Empty(t, ev[0].Name, "a's measurement is unknown: no data since the restart")
	assert.Equal(t, Critical, ev[0].PreviousLevel)
	assert.Equal(t, 19*time.Second, ev[0].Duration, "from the trigger before the restart")
	clock.add(5 * time.Second)
	h.ResolveStale()
	require.Len(t, rec2.Events(), 2, "b, 10s after its point")
	assert.Equal(t, "b-cpu", rec2.Events()[1].ID)
	assert.Equal(t, "cpu", rec2.Events()[1].Name, "the measurement of b's point after the restart")
}

// TestResolveStaleRestore: a Restore that replaces the groups restarts
// the clock of the restored ones.
func TestResolveStaleRestore(t *testing.T) {
	clock := newFakeClock()
	rec := &recorder{}
	h := staleHandler(t, rec, clock, false)
	staleFeed(t, h, clock, "a", 5)
	snap, err := h.Snapshot()
	require.NoError(t, err)

	h2 := staleHandler(t, &recorder{}, clock, false)
	clock.add(8 * time.Second)
	_, err = h2.Restore(&agent.RestoreRequest{Snapshot: snap.Snapshot})
	require.NoError(t, err)
	require.Contains(t, h2.groups, "host=a")
	wantWait(t, h2, 10*time.Second)
}

// TestResolveStaleNoRecoveries: with .noRecoveries() a stale group is
// forgotten without an event, and saved as OK.
func TestResolveStaleNoRecoveries(t *testing.T) {
	clock := newFakeClock()
	store := newMemStore()
	rec := &durable{store: store}
	h := staleHandler(t, rec, clock, false, opt("noRecoveries"))
	staleFeed(t, h, clock, "a", 5)
	h.Flush()
	clock.add(10 * time.Second)
	h.ResolveStale()
	h.Flush()
	assert.Len(t, rec.Events(), 1, "the trigger only")
	assert.Empty(t, h.groups)
	ns, _, _ := store.LoadState("t1", "squadcast2")
	assert.Empty(t, ns.Groups)
	staleFeed(t, h, clock, "a", 5)
	ev := rec.Events()
	require.Len(t, ev, 2, "a alerts again")
	assert.Equal(t, Critical, ev[1].Level)
	assert.False(t, ev[1].Recoverable)
	assert.Equal(t, OK, ev[1].PreviousLevel, "a new incident, as after a stale OK event")
	assert.Empty(t, h.prev, "no previousLevel is left behind")
}

// TestResolveStaleBatch: a group that gets no batch for d is resolved; one
// whose batches keep coming (even unchanged) is not.
func TestResolveStaleBatch(t *testing.T) {
	clock := newFakeClock()
	rec := &recorder{}
	h := staleHandler(t, rec, clock, true)
	now := func() int64 { return clock.Now().UnixNano() }
	sendBatch(t, h, "a", now(), now(), 50, 5)
	sendBatch(t, h, "b", now(), now(), 5)
	clock.add(6 * time.Second)
	sendBatch(t, h, "b", now(), now(), 7) // unchanged: no event
	require.Len(t, rec.Events(), 2)
	clock.add(4 * time.Second)
	h.ResolveStale()
	ev := rec.Events()
	require.Len(t, ev, 3)
	assert.Equal(t, "cpu:host=a", ev[2].ID)
	assert.Equal(t, OK, ev[2].Level)
	assert.Equal(t, "cpu:host=a is OK (no data for 10s)", ev[2].Message)
	assert.Equal(t, map[string]string{"host": "a"}, ev[2].Tags, "the batch's tags")
	assert.Nil(t, ev[2].Columns, "no batch, no rows")
	clock.add(6 * time.Second)
	h.ResolveStale()
	require.Len(t, rec.Events(), 4)
	assert.Equal(t, "cpu:host=b", rec.Events()[3].ID)

	// Inside a batch nothing is resolved: the batch may be the group's.
	sendBatch(t, h, "a", now(), now(), 5)
	require.Len(t, rec.Events(), 5)
	clock.add(10 * time.Second)
	require.NoError(t, h.BeginBatch(&agent.BeginBatch{Name: "cpu", Group: "host=a", Tags: map[string]string{"host": "a"}}))
	h.ResolveStale()
	_, ok := h.StaleWait()
	assert.False(t, ok, "no wake-up inside a batch")
	assert.Len(t, rec.Events(), 5, "not resolved inside a batch")
	_, _, err := h.EndBatch(&agent.EndBatch{Name: "cpu", Group: "host=a", Tmax: now(), Tags: map[string]string{"host": "a"}})
	require.NoError(t, err)
	h.ResolveStale()
	assert.Len(t, rec.Events(), 6, "resolved once the (empty) batch has ended")
}

// TestResolveStaleOptionErrors: a bad value fails Init naming the option.
func TestResolveStaleOptionErrors(t *testing.T) {
	crit := str("crit", `"v" < 10`)
	for _, tt := range []struct {
		name string
		o    *agent.Option
		want string
	}{
		{"zero", opt("resolveStale", vDur(0)), "option .resolveStale(0s): must be a positive duration, e.g. 10m"},
		{"negative", opt("resolveStale", vDur(-time.Minute)), "option .resolveStale(-1m0s): must be a positive duration, e.g. 10m"},
		{"a string", str("resolveStale", "10m"), "option .resolveStale: argument 1 must be a duration, got a string"},
		{"no argument", opt("resolveStale"), "option .resolveStale: takes 1 argument(s), got 0"},
		{"twice", opt("resolveStale", vDur(time.Minute), vDur(time.Minute)), "option .resolveStale: takes 1 argument(s), got 2"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, batch := range []bool{false, true} {
				h := NewHandler(HandlerConfig{Sink: &recorder{}, Batch: batch})
				res, err := h.Init(&agent.InitRequest{TaskID: "t", NodeID: "n", Options: []*agent.Option{crit, tt.o}})
				require.NoError(t, err, "a bad option fails the task, not the connection")
				assert.False(t, res.Success)
				assert.Equal(t, tt.want, res.Error)
			}
		})
	}
	o, err := ParseBatchOptions([]*agent.Option{crit, opt("resolveStale", vDur(time.Minute))})
	require.NoError(t, err)
	assert.Equal(t, time.Minute, o.ResolveStale)
	o, err = ParseOptions([]*agent.Option{crit})
	require.NoError(t, err)
	assert.Zero(t, o.ResolveStale, "off unless given")
}

func TestGroupKeyTags(t *testing.T) {
	for _, tt := range []struct {
		key, name string
		tags      map[string]string
	}{
		{"", "", nil},
		{"host=a", "", map[string]string{"host": "a"}},
		{"dc=x,host=a", "", map[string]string{"dc": "x", "host": "a"}},
		{"cpu\nhost=a", "cpu", map[string]string{"host": "a"}},
		{"cpu\n", "cpu", nil},
	} {
		name, tags := groupKeyTags(tt.key)
		assert.Equal(t, tt.name, name, "%q", tt.key)
		assert.Equal(t, tt.tags, tags, "%q", tt.key)
	}
}

// TestStaleTrackerEntries: a group going in and out of alert keeps one
// entry in the tracker's heap, and a forgotten group's is dropped once due.
func TestStaleTrackerEntries(t *testing.T) {
	s := newStaleTracker(10, time.Time{})
	for i := range 100 {
		s.touch("g", "cpu", time.Duration(i))
		s.forget("g")
	}
	assert.Len(t, s.due, 1)
	s.touch("h", "cpu", 5)
	var got []string
	s.expire(100, func(key string, _ staleGroup) { got = append(got, key) })
	assert.Equal(t, []string{"h"}, got, "g was forgotten")
	assert.Empty(t, s.seen)
	assert.Empty(t, s.due)
}

// TestServerResolveStaleWithoutInput: on a real connection, a silent
// group is resolved while no input comes at all (the connection wakes on
// its read deadline), and the connection serves on: keepalives, and the
// group's next point, a new alert.
func TestServerResolveStaleWithoutInput(t *testing.T) {
	rec := &recorder{}
	path, _ := startServer(t, rec)
	k := dial(t, path)
	require.True(t, k.init(str("crit", `"v" > 90`), opt("resolveStale", vDur(50*time.Millisecond))).Success)
	k.point("a", 1, 95)
	require.Equal(t, "CRITICAL", k.recv().GetPoint().GetFieldsString()["level"])
	require.Eventually(t, func() bool { return len(rec.Events()) == 2 }, 10*time.Second, 5*time.Millisecond,
		"the silent group is resolved without any input")
	ev := rec.Events()[1]
	assert.Equal(t, OK, ev.Level)
	assert.Equal(t, 50*time.Millisecond, ev.Stale)
	assert.Equal(t, "cpu:a is OK (no data for 50ms)", ev.Message)
	assert.Equal(t, int64(9), k.keepalive(9).Time)
	k.point("a", 2, 95)
	res := k.recv().GetPoint()
	assert.Equal(t, "CRITICAL", res.GetFieldsString()["level"])
	assert.Equal(t, int64(0), res.GetFieldsInt()["duration"], "a new alert")
	require.Eventually(t, func() bool { return len(rec.Events()) == 4 }, 10*time.Second, 5*time.Millisecond,
		"resolved again")
}

// TestResolveStaleInSweeps: when more groups fall silent at once than one
// sweep resolves, the rest are due at once for the next.
func TestResolveStaleInSweeps(t *testing.T) {
	clock := newFakeClock()
	rec := &recorder{}
	h := staleHandler(t, rec, clock, false)
	n := maxStalePerSweep + 100
	for i := range n {
		staleFeed(t, h, clock, fmt.Sprintf("h%05d", i), 5)
	}
	require.Len(t, rec.Events(), n)
	clock.add(10 * time.Second)
	h.ResolveStale()
	assert.Len(t, rec.Events(), n+maxStalePerSweep, "one sweep's worth")
	wait, ok := h.StaleWait()
	require.True(t, ok)
	assert.LessOrEqual(t, wait, time.Duration(0), "the rest are due now")
	h.ResolveStale()
	assert.Len(t, rec.Events(), 2*n, "every silent group resolved")
	_, ok = h.StaleWait()
	assert.False(t, ok)
}
