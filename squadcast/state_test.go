package squadcast

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/influxdata/kapacitor/udf/agent"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// marker returns a state change that saves the group key for the test
// task node ("t", "n"), whose groups markers lists.
func marker(key string) *udf.StateChange {
	return &udf.StateChange{TaskID: "t", NodeID: "n", AsOf: 1,
		Put: []udf.SavedGroup{{Group: key, Level: udf.Critical, ID: key}}}
}

func markers(t *testing.T, s *Sender) []string {
	t.Helper()
	ns, _, err := s.LoadState("t", "n")
	require.NoError(t, err)
	var keys []string
	for _, g := range ns.Groups {
		keys = append(keys, g.Group)
	}
	return keys
}

// TestFlushOneTransaction: after a first Flush, a publisher's events wait
// for its next Flush, and go to disk with its state change
// in one transaction (one sync).
func TestFlushOneTransaction(t *testing.T) {
	h := newHoldServer(t) // holds requests: no delivery outcome is written
	s, _, _ := newTestSender(t, holdConfig(h, t.TempDir(), 1))
	p, err := s.Open(udf.Destination{})
	require.NoError(t, err)
	sf := p
	require.NoError(t, sf.Flush(nil), "nothing to write")

	before := s.cm.Commits()
	for i := range 3 {
		require.NoError(t, p.Publish(webhookEvent("a", i)))
	}
	require.NoError(t, sf.Flush(marker("burst1")))
	assert.Equal(t, before+1, s.cm.Commits(), "three events and a state save: one transaction")
	assert.Len(t, listOutbox(t, s.outbox), 3)
	assert.Equal(t, []string{"burst1"}, markers(t, s))

	// A state change alone (e.g. a suppressed event) is written too.
	require.NoError(t, sf.Flush(marker("burst2")))
	assert.Equal(t, before+2, s.cm.Commits())
	assert.Equal(t, []string{"burst1", "burst2"}, markers(t, s))
}

// TestFlushFailure: a failed transaction fails Flush with its
// error; its events and state save are written by the retry, which a later
// Flush waits for.
func TestFlushFailure(t *testing.T) {
	h := newHoldServer(t)
	cfg, _ := testConfig(t, holdConfig(h, t.TempDir(), 1))
	hk := (&fastHooks{}).hooks()
	var fails atomic.Int32
	failCommitsWhile(&hk, func() bool { return fails.Add(-1) >= 0 })
	s := startSender(t, cfg, hk)
	p, err := s.Open(udf.Destination{})
	require.NoError(t, err)
	sf := p
	require.NoError(t, sf.Flush(nil)) // the publisher's events now wait for its flushes
	require.NoError(t, p.Publish(webhookEvent("a", 0)))
	fails.Store(1)
	err = sf.Flush(marker("m"))
	require.ErrorContains(t, err, "injected disk failure")
	require.ErrorContains(t, err, "make 2 event(s) or state change(s)")
	require.NoError(t, sf.Flush(nil), "the retried transaction writes both")
	assert.Len(t, listOutbox(t, s.outbox), 1)
	assert.Equal(t, []string{"m"}, markers(t, s))
}

// TestLongGroupNotSaved: a group whose name is too long for the outbox
// is left out of the saved state, with a warning; the rest is saved.
func TestLongGroupNotSaved(t *testing.T) {
	h := newHoldServer(t)
	s, logs, _ := newTestSender(t, holdConfig(h, t.TempDir(), 1))
	p, err := s.Open(udf.Destination{})
	require.NoError(t, err)
	c := marker("kept")
	c.Put = append(c.Put, udf.SavedGroup{Group: strings.Repeat("g", 32<<10), Level: udf.Critical})
	c.Delete = []string{strings.Repeat("h", 32<<10)}
	require.NoError(t, p.Flush(c))
	assert.Equal(t, []string{"kept"}, markers(t, s))
	logged := entriesWith(logs, "alert state not saved for groups whose names are over 32 KiB: after a restart they start from OK")
	require.Len(t, logged, 1)
	assert.EqualValues(t, 2, logged[0].ContextMap()["groups"])
	assert.Equal(t, "t", logged[0].ContextMap()["task"])
}

// TestAlertStateInOutbox: the daemon's handler with the Sender's state
// store writes each burst's events and alert state in one transaction, and
// a restarted daemon on the same data dir (after a crash) carries the
// alert state on: no repeated trigger, and the recovery goes out.
func TestAlertStateInOutbox(t *testing.T) {
	h := newHoldServer(t)
	dir := t.TempDir()
	start := func() (*Sender, *udf.Handler) {
		s, _, _ := newTestSender(t, holdConfig(h, dir, 1))
		hd := udf.NewHandler(udf.HandlerConfig{Sink: s})
		res, err := hd.Init(&agent.InitRequest{TaskID: "cpu", NodeID: "squadcast2", Options: []*agent.Option{
			{Name: "crit", Values: []*agent.OptionValue{{Type: agent.ValueType_STRING, Value: &agent.OptionValue_StringValue{StringValue: `"v" > 90`}}}},
		}})
		require.NoError(t, err)
		require.True(t, res.Success, res.Error)
		return s, hd
	}
	point := func(hd *udf.Handler, group string, ts int64, v float64) bool {
		out, err := hd.Point(&agent.Point{Name: "cpu", Group: group, Time: ts, FieldsDouble: map[string]float64{"v": v}})
		require.NoError(t, err)
		return out != nil
	}

	s, hd := start()
	before := s.cm.Commits()
	require.True(t, point(hd, "host=a", 1, 95))
	require.True(t, point(hd, "host=b", 2, 99))
	hd.Flush()
	assert.Equal(t, before+1, s.cm.Commits(), "two events and the state of two groups: one transaction")
	kill(s) // a crash: nothing more is written

	s, hd = start()
	assert.Len(t, listOutbox(t, s.outbox), 2, "the events are still pending")
	assert.False(t, point(hd, "host=a", 3, 96), "still CRITICAL after the restart: no repeated trigger")
	assert.True(t, point(hd, "host=b", 4, 10), "the recovery goes out")
	hd.Flush()
	assert.Len(t, listOutbox(t, s.outbox), 3)
}

// TestOutcomesBatched: deliveries' deletions are not written one
// transaction each: they wait (at most opsDelay) and share one, or go with
// the next events; either way the outbox empties.
func TestOutcomesBatched(t *testing.T) {
	h := newHoldServer(t)
	h.hold.Store(false) // answer 200 at once
	s, _, _ := newTestSender(t, holdConfig(h, t.TempDir(), 4))
	p, err := s.Open(udf.Destination{})
	require.NoError(t, err)
	sf := p
	require.NoError(t, sf.Flush(nil))
	before := s.cm.Commits()
	const n = 20
	for i := range n {
		require.NoError(t, p.Publish(webhookEvent(fmt.Sprint("inc", i), 0)))
	}
	require.NoError(t, sf.Flush(nil))
	require.Eventually(t, func() bool { return s.Stats().Delivered == n }, 10*time.Second, time.Millisecond)
	require.Eventually(t, func() bool { return len(listOutbox(t, s.outbox)) == 0 }, 10*time.Second, 5*time.Millisecond,
		"the deletions are written within opsDelay")
	assert.Less(t, s.cm.Commits()-before, int64(1+n), "not one transaction per deletion")

	// A deletion waiting goes with the next events' transaction.
	require.NoError(t, p.Publish(webhookEvent("x", 0)))
	require.NoError(t, sf.Flush(nil))
	require.Eventually(t, func() bool { return s.Stats().Delivered == n+1 }, 10*time.Second, time.Millisecond)
	require.NoError(t, p.Publish(webhookEvent("y", 0)))
	require.NoError(t, sf.Flush(nil))
	ids := func() []string {
		var ids []string
		for _, e := range listOutbox(t, s.outbox) {
			ids = append(ids, e.Incident)
		}
		return ids
	}()
	assert.NotContains(t, ids, "x", "x's deletion was written with y")
}
