package squadcast

import (
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// TestSpillWhenQueueFull: with QueueSize events in memory, Publish still
// takes every event (none is dropped); the others wait in the outbox only,
// and are delivered, each incident in order, while memory never holds
// more than QueueSize.
func TestSpillWhenQueueFull(t *testing.T) {
	var s *Sender
	var maxQueued atomic.Int64
	h := newHoldServer(t)
	h.hold.Store(false)
	release := make(chan struct{})
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		if q := int64(s.Stats().Queued); q > maxQueued.Load() {
			maxQueued.Store(q)
		}
		h.Config.Handler.ServeHTTP(w, r)
	})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	cfg := holdConfig(h, t.TempDir(), 1)
	cfg.Endpoints[0].URL = srv.URL + "/v2/incidents/api/" + secretKey
	cfg.QueueSize = 3
	s, _, _ = newTestSender(t, cfg)
	p, err := s.Open(udf.Destination{})
	require.NoError(t, err)
	for n := range 10 {
		for _, id := range []string{"a", "b"} {
			require.NoError(t, p.Publish(webhookEvent(id, n)), "no event is refused")
		}
	}
	require.NoError(t, flushNow(p))
	require.Equal(t, Stats{Published: 20, Queued: 3, Spilled: 17, Pending: 20}, s.Stats())

	close(release)
	closeAndWait(t, s)
	require.Equal(t, Stats{Published: 20, Delivered: 20}, s.Stats())
	require.LessOrEqual(t, maxQueued.Load(), int64(3), "memory holds at most QueueSize events")
	per := perIncident(h.got())
	require.Equal(t, counting(10), per["a"], "incident a in order")
	require.Equal(t, counting(10), per["b"], "incident b in order")
}

// TestSpilledSurviveRestart: a restart with more pending events than
// QueueSize loads only QueueSize of them at first, and delivers them all,
// in order.
func TestSpilledSurviveRestart(t *testing.T) {
	h := newHoldServer(t)
	dir := t.TempDir()
	pendingAfterCrash(t, h, dir, 6, "a", "b", "c")

	cfg := holdConfig(h, dir, 2)
	cfg.QueueSize = 4
	h.hold.Store(true) // hold the first attempts: the counts below are before any delivery
	s2, logs, _ := newTestSender(t, cfg)
	require.Equal(t, Stats{Queued: 4, Spilled: 14, Pending: 18}, s2.Stats())
	loaded := entriesWith(logs, "loaded the outbox")
	require.Len(t, loaded, 1)
	require.Equal(t, int64(18), loaded[0].ContextMap()["pending"])
	require.Equal(t, int64(14), loaded[0].ContextMap()["pending_left_on_disk"])
	<-h.arrived
	<-h.arrived // both workers busy; nothing was delivered

	h.hold.Store(false)
	closeNow(s2) // cuts the two held attempts: they stay pending
	s3, _, _ := newTestSender(t, cfg)
	closeAndWait(t, s3)
	require.Equal(t, Stats{Delivered: 18}, s3.Stats())
	per := perIncident(h.got())
	for _, id := range []string{"a", "b", "c"} {
		require.Equal(t, counting(6), per[id], "incident %s in order", id)
	}
}

// TestSpillOnAndOff: events published while deliveries go on, with a small
// memory queue, so that spilling starts and stops many times: each
// incident's events arrive in order, none is lost, and memory never holds
// more than QueueSize.
func TestSpillOnAndOff(t *testing.T) {
	var s *Sender
	var mu sync.Mutex
	var got []string
	var maxQueued atomic.Int64
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		body := decodeWebhook(t, b)
		time.Sleep(200 * time.Microsecond) // a slow endpoint, not an assertion
		if q := int64(s.Stats().Queued); q > maxQueued.Load() {
			maxQueued.Store(q)
		}
		mu.Lock()
		got = append(got, body.EventID+"/"+body.Description)
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	})
	s, _, _ = newTestSender(t, Config{
		Endpoints: []Endpoint{{Name: "default", URL: srv.URL + "/v2/incidents/api/" + secretKey, Format: FormatIncidentWebhook}},
		Workers:   4,
		QueueSize: 5,
	})
	p, err := s.Open(udf.Destination{})
	require.NoError(t, err)
	const perInc = 60
	ids := []string{"a", "b", "c", "d", "e", "f", "g"}
	spilledSeen := 0
	for n := range perInc {
		for _, id := range ids {
			require.NoError(t, p.Publish(webhookEvent(id, n)))
		}
		if n%3 == 0 {
			require.NoError(t, flushNow(p))
			if s.Stats().Spilled > 0 {
				spilledSeen++
			}
			time.Sleep(time.Millisecond) // let some be delivered, so that spilling stops
		}
	}
	closeAndWait(t, s)
	require.Equal(t, Stats{Published: perInc * uint64(len(ids)), Delivered: perInc * uint64(len(ids))}, s.Stats())
	require.Positive(t, spilledSeen, "the test spilled events")
	require.LessOrEqual(t, maxQueued.Load(), int64(5))
	mu.Lock()
	defer mu.Unlock()
	per := perIncident(got)
	for _, id := range ids {
		require.Equal(t, counting(perInc), per[id], "incident %s in order", id)
	}
}

// TestSpilledCorruptRecord: a spilled record that does not decode when the
// loader reads it is logged (with how to drop it) and left in the outbox;
// the events around it are delivered.
func TestSpilledCorruptRecord(t *testing.T) {
	h := newHoldServer(t)
	dir := t.TempDir()
	pendingAfterCrash(t, h, dir, 4, "a")
	db, err := bolt.Open(OutboxPath(dir), 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketPending).Put(seqKey(3), []byte(`{"v":1,"endpoint":`)) }))
	require.NoError(t, db.Close())

	h.hold.Store(false)
	cfg := holdConfig(h, dir, 1)
	cfg.QueueSize = 1
	s2, logs, _ := newTestSender(t, cfg)
	closeAndWait(t, s2)
	require.Equal(t, []string{"a/0", "a/1", "a/3"}, h.got())
	bad := entriesWith(logs, "outbox records that cannot be read are left in the outbox, not delivered (see 'outbox list' and 'outbox drop')")
	require.Len(t, bad, 1)
	require.Contains(t, bad[0].ContextMap()["error"], "pending event 3 is corrupt")
	require.Contains(t, bad[0].ContextMap()["error"], "outbox drop --data-dir "+dir+" 3")
	require.Equal(t, 1, s2.Stats().Pending, "the corrupt record stays")
}

// TestSpillBoundedWhenWritesFail: while the outbox's writes fail, spilled
// events wait in memory to be written; at most QueueSize of them, then
// Publish refuses more (counted as dropped) rather than grow without
// bound. Once the writes succeed again, spilling goes on.
func TestSpillBoundedWhenWritesFail(t *testing.T) {
	h := newHoldServer(t) // holds the attempts: nothing is delivered
	cfg, _ := testConfig(t, holdConfig(h, t.TempDir(), 1))
	cfg.QueueSize = 2
	hk := (&fastHooks{}).hooks()
	var failing atomic.Bool
	failing.Store(true)
	failCommitsWhile(&hk, failing.Load)
	s := startSender(t, cfg, hk)
	p, err := s.Open(udf.Destination{})
	require.NoError(t, err)
	for n := range 4 {
		require.NoError(t, p.Publish(webhookEvent("a", n)), "event %d", n)
	}
	require.ErrorContains(t, flushNow(p), "injected disk failure")
	err = p.Publish(webhookEvent("a", 4))
	require.ErrorIs(t, err, ErrOutboxBehind)
	require.ErrorContains(t, err, `"a"`)
	require.ErrorContains(t, err, "2 events wait to be written")
	require.NotContains(t, err.Error(), secretKey)
	require.Equal(t, Stats{Published: 4, Dropped: 1, Queued: 2, Spilled: 2}, s.Stats())

	failing.Store(false)
	require.Eventually(t, func() bool { return s.Stats().Pending == 4 }, 10*time.Second, time.Millisecond, "the retried write")
	require.NoError(t, p.Publish(webhookEvent("a", 5)), "spilling goes on once the writes succeed")
	require.NoError(t, flushNow(p))
	require.Equal(t, Stats{Published: 5, Dropped: 1, Queued: 2, Spilled: 3, Pending: 5}, s.Stats())
}

// TestSpilledEventWaitsForItsTransaction: an event held in memory and a
// later, spilled event of the same incident are written in one
// transaction; a loader woken (by a delivery) after the transaction is on
// disk but before its events are handed on must not read the spilled one
// back first: the incident's events are delivered in order.
func TestSpilledEventWaitsForItsTransaction(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var got []string
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		body := decodeWebhook(t, b)
		if body.EventID == "c" {
			<-release // held until the second transaction is on disk
		}
		mu.Lock()
		got = append(got, body.EventID+"/"+body.Description)
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	})
	cfg, _ := testConfig(t, Config{
		Endpoints: []Endpoint{{Name: "default", URL: srv.URL + "/v2/incidents/api/" + secretKey, Format: FormatIncidentWebhook}},
		Workers:   4,
		QueueSize: 2,
	})
	fh := &fastHooks{}
	hk := fh.hooks()
	var s *Sender
	var commits atomic.Int32
	hk.committed = func() {
		if commits.Add(1) != 2 {
			return
		}
		// The transaction with a/0 (in memory) and a/1 (spilled) is on
		// disk; c/0's delivery now makes room, and wakes the loader.
		close(release)
		deadline := time.Now().Add(2 * time.Second)
		for s.Stats().Delivered < 1 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond) // the loader's chance to run ahead
	}
	s = startSender(t, cfg, hk)
	p, err := s.Open(udf.Destination{})
	require.NoError(t, err)
	require.NoError(t, p.Publish(webhookEvent("c", 0)))
	// Flush (not flushNow): from then on Publish does not wake the
	// committer, so that a/0 and a/1 go in one transaction.
	require.NoError(t, p.Flush(nil)) // c/0 is sent, and held
	require.NoError(t, p.Publish(webhookEvent("a", 0)))
	require.NoError(t, p.Publish(webhookEvent("a", 1)))
	require.Equal(t, 1, s.Stats().Spilled, "a/1 is spilled")
	require.NoError(t, p.Flush(nil))
	closeAndWait(t, s)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []string{"c/0", "a/0", "a/1"}, got)
}
