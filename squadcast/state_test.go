package squadcast

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/influxdata/kapacitor/udf/agent"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

var bucketTest = []byte("test")

// marker returns a state save that writes key in a test bucket, failing
// with fail() when it returns an error.
func marker(key string, fail func() error) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		if fail != nil {
			if err := fail(); err != nil {
				return err
			}
		}
		b, err := tx.CreateBucketIfNotExists(bucketTest)
		if err != nil {
			return err
		}
		return b.Put([]byte(key), []byte("x"))
	}
}

func markers(t *testing.T, s *Sender) []string {
	t.Helper()
	var keys []string
	require.NoError(t, s.outbox.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTest)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, _ []byte) error { keys = append(keys, string(k)); return nil })
	}))
	return keys
}

// TestFlushStateOneTransaction: after a first FlushState, a publisher's
// events wait for its next FlushState, and go to disk with its state save
// in one transaction (one sync).
func TestFlushStateOneTransaction(t *testing.T) {
	h := newHoldServer(t) // holds requests: no delivery outcome is written
	s, _, _ := newTestSender(t, holdConfig(h, t.TempDir(), 1))
	p, err := s.Open(udf.Destination{})
	require.NoError(t, err)
	sf := p.(udf.StateFlusher)
	require.NoError(t, sf.FlushState(nil), "nothing to write")

	before := s.commits.Load()
	for i := range 3 {
		require.NoError(t, p.Publish(webhookEvent("a", i)))
	}
	require.NoError(t, sf.FlushState(marker("burst1", nil)))
	assert.Equal(t, before+1, s.commits.Load(), "three events and a state save: one transaction")
	assert.Len(t, listOutbox(t, s.outbox), 3)
	assert.Equal(t, []string{"burst1"}, markers(t, s))

	// A state change alone (e.g. a suppressed event) is written too.
	require.NoError(t, sf.FlushState(marker("burst2", nil)))
	assert.Equal(t, before+2, s.commits.Load())
	assert.Equal(t, []string{"burst1", "burst2"}, markers(t, s))
}

// TestFlushStateFailure: a failed transaction fails FlushState with its
// error; its events and state save are written by the retry, which a later
// FlushState waits for.
func TestFlushStateFailure(t *testing.T) {
	h := newHoldServer(t)
	cfg, _ := testConfig(t, holdConfig(h, t.TempDir(), 1))
	hk := (&fastHooks{}).hooks()
	var fails atomic.Int32
	failCommitsWhile(&hk, func() bool { return fails.Add(-1) >= 0 })
	s := startSender(t, cfg, hk)
	p, err := s.Open(udf.Destination{})
	require.NoError(t, err)
	sf := p.(udf.StateFlusher)
	require.NoError(t, sf.FlushState(nil)) // the publisher's events now wait for its flushes
	require.NoError(t, p.Publish(webhookEvent("a", 0)))
	fails.Store(1)
	err = sf.FlushState(marker("m", nil))
	require.ErrorContains(t, err, "injected disk failure")
	require.ErrorContains(t, err, "make 2 event(s) or state change(s)")
	require.NoError(t, sf.FlushState(nil), "the retried transaction writes both")
	assert.Len(t, listOutbox(t, s.outbox), 1)
	assert.Equal(t, []string{"m"}, markers(t, s))
}

// TestRefusedStateSave: a state save that bbolt refuses (here a key over
// its limit) would fail every retry: it is logged and left out, and the
// events of its transaction, and of other publishers, are written without
// waiting for it.
func TestRefusedStateSave(t *testing.T) {
	h := newHoldServer(t)
	s, logs, _ := newTestSender(t, holdConfig(h, t.TempDir(), 1))
	p, err := s.Open(udf.Destination{})
	require.NoError(t, err)
	other, err := s.Open(udf.Destination{})
	require.NoError(t, err)
	sf, otherSF := p.(udf.StateFlusher), other.(udf.StateFlusher)
	require.NoError(t, sf.FlushState(nil))
	require.NoError(t, otherSF.FlushState(nil))

	require.NoError(t, p.Publish(webhookEvent("a", 0)))
	refused := func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketTest)
		if err != nil {
			return err
		}
		return b.Put(make([]byte, bolt.MaxKeySize+1), []byte("x"))
	}
	require.NoError(t, sf.FlushState(refused), "the events are durable")
	require.NoError(t, other.Publish(webhookEvent("b", 0)))
	require.NoError(t, otherSF.FlushState(marker("kept", nil)), "the committer goes on")
	require.NoError(t, sf.FlushState(marker("later", nil)))

	assert.Equal(t, []string{"pending:a", "pending:b"}, states(listOutbox(t, s.outbox)))
	assert.Equal(t, []string{"kept", "later"}, markers(t, s))
	logged := entriesWith(logs, "alert state change not saved: the outbox file refuses it (the events are written without it; after a restart those groups start from older state)")
	require.Len(t, logged, 1)
	assert.Contains(t, logged[0].ContextMap()["error"], "key too large")
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
		st, err := s.StateStore()
		require.NoError(t, err)
		hd := udf.NewHandler(udf.HandlerConfig{Sink: s, State: st})
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
	before := s.commits.Load()
	require.True(t, point(hd, "host=a", 1, 95))
	require.True(t, point(hd, "host=b", 2, 99))
	hd.Flush()
	assert.Equal(t, before+1, s.commits.Load(), "two events and the state of two groups: one transaction")
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
	sf := p.(udf.StateFlusher)
	require.NoError(t, sf.FlushState(nil))
	before := s.commits.Load()
	const n = 20
	for i := range n {
		require.NoError(t, p.Publish(webhookEvent(fmt.Sprint("inc", i), 0)))
	}
	require.NoError(t, sf.FlushState(nil))
	require.Eventually(t, func() bool { return s.Stats().Delivered == n }, 10*time.Second, time.Millisecond)
	require.Eventually(t, func() bool { return len(listOutbox(t, s.outbox)) == 0 }, 10*time.Second, 5*time.Millisecond,
		"the deletions are written within opsDelay")
	assert.Less(t, s.commits.Load()-before, int64(1+n), "not one transaction per deletion")

	// A deletion waiting goes with the next events' transaction.
	require.NoError(t, p.Publish(webhookEvent("x", 0)))
	require.NoError(t, sf.FlushState(nil))
	require.Eventually(t, func() bool { return s.Stats().Delivered == n+1 }, 10*time.Second, time.Millisecond)
	require.NoError(t, p.Publish(webhookEvent("y", 0)))
	require.NoError(t, sf.FlushState(nil))
	ids := func() []string {
		var ids []string
		for _, e := range listOutbox(t, s.outbox) {
			ids = append(ids, e.Incident)
		}
		return ids
	}()
	assert.NotContains(t, ids, "x", "x's deletion was written with y")
}
