package squadcast

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest/observer"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast/outbox"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// coalesceStep is one event of a coalescing test: incident, number, level
// and the previous level it is published with.
type coalesceStep struct {
	id       string
	n        int
	level    udf.Level
	previous udf.Level
}

// coalesceSteps are the events of TestCoalesce, each case its own incident.
var coalesceSteps = []coalesceStep{
	// Rule 1: each later trigger replaces the earlier unsent one.
	{"replace", 0, udf.Warning, udf.OK}, {"replace", 1, udf.Critical, udf.Warning}, {"replace", 2, udf.Warning, udf.Critical},
	// Rule 2: a trigger never sent, then its resolve: neither goes.
	{"pair", 0, udf.Critical, udf.OK}, {"pair", 1, udf.OK, udf.Critical},
	// Both rules: the later trigger opens the incident as the earlier would have.
	{"both", 0, udf.Critical, udf.OK}, {"both", 1, udf.Warning, udf.Critical}, {"both", 2, udf.OK, udf.Warning},
	// Not rule 2: the trigger was published after another trigger (which
	// Squadcast may have open), so the resolve is needed.
	{"open", 0, udf.Warning, udf.Critical}, {"open", 1, udf.OK, udf.Warning},
	// Not rule 2: the trigger is not the first event waiting; the pair
	// after a resolve is not dropped (the rule stays simple), nor is the resolve.
	{"after", 0, udf.OK, udf.Critical}, {"after", 1, udf.Critical, udf.OK}, {"after", 2, udf.OK, udf.Critical},
	// A resolve alone, and two resolves, stay.
	{"ok", 0, udf.OK, udf.Warning}, {"ok", 1, udf.OK, udf.OK},
}

// coalesceSender starts a Sender on a fake clock whose endpoint "c" allows
// one request a minute (coalesce as given), publishes a first event that
// takes it, then coalesceSteps: they all wait.
func coalesceSender(t *testing.T, coalesce bool) (*Sender, *recorder, *fakeClock, *observer.ObservedLogs, *recordingObserver) {
	rec, obs := newRecorder(t), &recordingObserver{}
	s, logs, clk, _ := newClockSender(t, Config{
		Endpoints: []Endpoint{{Name: "c", URL: rec.URL + "/k/" + secretKey, Format: FormatIncidentWebhook,
			RateLimit: RateLimit{1, time.Minute}, Coalesce: coalesce}},
		Workers:  4,
		Observer: obs,
	})
	p, err := s.Open(udf.Destination{Endpoint: "c"})
	require.NoError(t, err)
	publish := func(st coalesceStep) {
		ev := webhookEvent(st.id, st.n)
		ev.Level, ev.PreviousLevel = st.level, st.previous
		require.NoError(t, p.Publish(ev))
		require.NoError(t, flushNow(p)) // one at a time: each is added on its own
	}
	publish(coalesceStep{"first", 0, udf.Critical, udf.OK})
	settle(t, s)
	require.Equal(t, []string{"first/0"}, rec.got())
	for _, st := range coalesceSteps {
		publish(st)
	}
	settle(t, s)
	return s, rec, clk, logs, obs
}

// drain advances clk a minute at a time until n requests arrived.
func drain(t *testing.T, s *Sender, rec *recorder, clk *fakeClock, n int) {
	t.Helper()
	for i := 0; rec.count() < n; i++ {
		require.Less(t, i, 100, "got %v", rec.got())
		clk.Advance(time.Minute)
		settle(t, s)
	}
	clk.Advance(10 * time.Minute)
	settle(t, s)
}

// outboxIDs lists the pending events of s's outbox as "incident/level".
func outboxIDs(t *testing.T, s *Sender) []string {
	var ids []string
	for _, e := range listOutbox(t, s.outbox) {
		if e.State == outbox.StatePending {
			ids = append(ids, e.Incident+"/"+e.Level)
		}
	}
	return ids
}

// TestCoalesce: on a coalescing endpoint whose events wait for a rate
// limit, the rules remove what Squadcast would not miss, from memory and
// from the outbox, each counted and logged; what stays goes in order.
func TestCoalesce(t *testing.T) {
	s, rec, clk, logs, obs := coalesceSender(t, true)
	want := []string{"replace/WARNING", "open/WARNING", "open/OK",
		"after/OK", "after/CRITICAL", "after/OK", "ok/OK", "ok/OK"}
	require.Eventually(t, func() bool { return len(outboxIDs(t, s)) == len(want) }, 10*time.Second, time.Millisecond)
	require.ElementsMatch(t, want, outboxIDs(t, s), "the outbox holds no coalesced event")
	require.Equal(t, uint64(7), s.Stats().Coalesced)
	require.Equal(t, len(want), s.Stats().Queued)

	entries := entriesWith(logs, "squadcast event coalesced, not sent")
	var dropped []string
	for _, e := range entries {
		require.Equal(t, "c", e.ContextMap()["endpoint"])
		dropped = append(dropped, fmt.Sprintf("%s %s: %s", e.ContextMap()["incident"], e.ContextMap()["level"], e.ContextMap()["dropped"]))
	}
	require.Equal(t, []string{
		"replace WARNING: " + whyReplaced, "replace CRITICAL: " + whyReplaced,
		"pair CRITICAL: " + whyNeverOpened, "pair OK: " + whyNotNeeded,
		"both CRITICAL: " + whyReplaced, "both WARNING: " + whyNeverOpened, "both OK: " + whyNotNeeded,
	}, dropped)
	obs.mu.Lock()
	require.Equal(t, []string{"c WARNING", "c CRITICAL", "c CRITICAL", "c OK", "c CRITICAL", "c WARNING", "c OK"}, obs.coalesced)
	obs.mu.Unlock()

	drain(t, s, rec, clk, 1+len(want))
	got := perIncident(rec.got())
	require.Equal(t, []string{"2"}, got["replace"])
	require.Empty(t, got["pair"])
	require.Empty(t, got["both"])
	require.Equal(t, []string{"0", "1"}, got["open"])
	require.Equal(t, []string{"0", "1", "2"}, got["after"])
	require.Equal(t, []string{"0", "1"}, got["ok"])
	require.Len(t, rec.got(), 1+len(want))
	require.Eventually(t, func() bool { return len(outboxIDs(t, s)) == 0 }, 10*time.Second, time.Millisecond)
	require.Zero(t, s.Stats().Queued)
}

// TestCoalesceOff: without coalescing, the same events are all delivered,
// each incident's in order, and nothing is counted.
func TestCoalesceOff(t *testing.T) {
	s, rec, clk, logs, _ := coalesceSender(t, false)
	drain(t, s, rec, clk, 1+len(coalesceSteps))
	got := perIncident(rec.got())
	want := map[string][]string{"first": {"0"}}
	for _, st := range coalesceSteps {
		want[st.id] = append(want[st.id], fmt.Sprint(st.n))
	}
	require.Equal(t, want, got)
	require.Len(t, rec.got(), 1+len(coalesceSteps))
	require.Zero(t, s.Stats().Coalesced)
	require.Empty(t, entriesWith(logs, "squadcast event coalesced, not sent"))
}

// TestCoalesceInFlight: the head of an incident, in flight, is never
// replaced nor dropped; the events behind it are coalesced among themselves.
func TestCoalesceInFlight(t *testing.T) {
	h := newHoldServer(t)
	cfg := holdConfig(h, t.TempDir(), 1)
	cfg.Endpoints[0].Coalesce = true
	s, _, _, _ := newClockSender(t, cfg)
	p, err := s.Open(udf.Destination{})
	require.NoError(t, err)
	publish := func(n int, l, prev udf.Level) {
		ev := webhookEvent("h", n)
		ev.Level, ev.PreviousLevel = l, prev
		require.NoError(t, p.Publish(ev))
		require.NoError(t, flushNow(p))
	}
	publish(0, udf.Critical, udf.OK)
	require.Equal(t, "h/0", <-h.arrived) // held: in flight
	publish(1, udf.Warning, udf.Critical)
	publish(2, udf.Critical, udf.Warning) // replaces h/1, not h/0
	publish(3, udf.OK, udf.Critical)      // h/2 is not the first: stays
	levels := func() []udf.Level {
		s.sched.mu.Lock()
		defer s.sched.mu.Unlock()
		var ls []udf.Level
		for _, inc := range s.sched.incidents {
			for _, j := range inc.jobs {
				ls = append(ls, j.level)
			}
		}
		return ls
	}
	require.Eventually(t, func() bool { return len(levels()) == 3 }, 10*time.Second, time.Millisecond)
	require.Equal(t, []udf.Level{udf.Critical, udf.Critical, udf.OK}, levels())
	require.Equal(t, uint64(1), s.Stats().Coalesced)
	require.Eventually(t, func() bool { return len(outboxIDs(t, s)) == 3 }, 10*time.Second, time.Millisecond)
}

// TestCoalesceAttempted: an event that had an attempt counts as sent: a
// later trigger does not replace it, and its resolve is delivered.
func TestCoalesceAttempted(t *testing.T) {
	rec := newRecorder(t)
	rec.answer = func(id string, w http.ResponseWriter) bool {
		if id == "a/0" {
			w.WriteHeader(http.StatusInternalServerError)
			return true
		}
		return false
	}
	s, _, clk, _ := newClockSender(t, Config{
		Endpoints: []Endpoint{{Name: "default", URL: rec.URL + "/k/" + secretKey, Format: FormatIncidentWebhook, Coalesce: true}},
		Workers:   1,
	})
	p, err := s.Open(udf.Destination{})
	require.NoError(t, err)
	ev := webhookEvent("a", 0)
	require.NoError(t, p.Publish(ev))
	require.NoError(t, flushNow(p))
	settle(t, s) // a/0 failed: it waits for its retry
	require.Equal(t, []string{"a/0"}, rec.got())
	ev = webhookEvent("a", 1)
	ev.Level, ev.PreviousLevel = udf.OK, udf.Critical
	require.NoError(t, p.Publish(ev))
	require.NoError(t, flushNow(p))
	settle(t, s)
	require.Zero(t, s.Stats().Coalesced)
	rec.mu.Lock()
	rec.answer = nil
	rec.mu.Unlock()
	clk.Advance(time.Hour)
	require.Eventually(t, func() bool { return rec.count() == 3 }, 10*time.Second, time.Millisecond)
	require.Equal(t, []string{"a/0", "a/0", "a/1"}, rec.got())
}

// TestCoalesceReady: a pair dropped while its incident is in the ready
// queue leaves it there without events, and take skips it.
func TestCoalesceReady(t *testing.T) {
	sc := newScheduler(newFakeClock())
	tg := &target{name: "c", url: "http://squadcast.invalid/k", coalesce: true}
	ev := func(id string, seq uint64, l udf.Level) *job {
		return &job{target: tg, id: id, level: l, seq: seq, opens: l != udf.OK}
	}
	require.Empty(t, sc.add([]*job{ev("pair", 1, udf.Critical)}))
	removed := sc.add([]*job{ev("pair", 2, udf.OK), ev("other", 3, udf.Warning)})
	require.Len(t, removed, 2)
	require.Equal(t, []uint64{1, 2}, []uint64{removed[0].j.seq, removed[1].j.seq})
	inc, j, ok := sc.take()
	require.True(t, ok)
	require.Equal(t, uint64(3), j.seq)
	require.Zero(t, sc.done(inc))
	sc.mu.Lock()
	defer sc.mu.Unlock()
	require.Empty(t, sc.incidents)
	require.Empty(t, sc.ready)
}

// TestCoalesceAtStart: the events loaded from the outbox at start are
// coalesced too: of each incident's three CRITICAL triggers, the last goes.
func TestCoalesceAtStart(t *testing.T) {
	h := newHoldServer(t)
	dir := t.TempDir()
	pendingAfterCrash(t, h, dir, 3, "a", "b")
	h.hold.Store(false)
	cfg := holdConfig(h, dir, 4)
	cfg.Endpoints[0].Coalesce = true
	s, _, _ := newTestSender(t, cfg)
	closeAndWait(t, s)
	require.Equal(t, Stats{Delivered: 2, Coalesced: 4}, s.Stats())
	require.Equal(t, map[string][]string{"a": {"2"}, "b": {"2"}}, perIncident(h.got()))
	o, err := OpenOutbox(OutboxPath(dir), true)
	require.NoError(t, err)
	defer o.Close()
	require.Empty(t, listOutbox(t, o))
}

// TestCoalesceKeepsPlace: a trigger that replaces an earlier one takes its
// place in line: renotifications of an incident do not send it to the back.
func TestCoalesceKeepsPlace(t *testing.T) {
	rec := newRecorder(t)
	s, _, clk, _ := newClockSender(t, Config{
		Endpoints: []Endpoint{{Name: "c", URL: rec.URL + "/k/" + secretKey, Format: FormatIncidentWebhook,
			RateLimit: RateLimit{1, time.Minute}, Coalesce: true}},
		Workers: 2,
	})
	p, err := s.Open(udf.Destination{Endpoint: "c"})
	require.NoError(t, err)
	for _, st := range []coalesceStep{
		{"first", 0, udf.Critical, udf.OK}, // takes the slot
		{"x", 0, udf.Warning, udf.OK}, {"y", 0, udf.Warning, udf.OK},
		{"x", 1, udf.Warning, udf.Warning}, {"x", 2, udf.Warning, udf.Warning},
	} {
		ev := webhookEvent(st.id, st.n)
		ev.Level, ev.PreviousLevel = st.level, st.previous
		require.NoError(t, p.Publish(ev))
		require.NoError(t, flushNow(p))
		settle(t, s)
	}
	drain(t, s, rec, clk, 3)
	require.Equal(t, []string{"first/0", "x/2", "y/0"}, rec.got())
	require.Equal(t, uint64(2), s.Stats().Coalesced)
}
