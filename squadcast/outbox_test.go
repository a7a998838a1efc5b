package squadcast

import (
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// TestCrashBeforeDelivery: events published and flushed, then a crash
// before any was delivered (one in flight): a new Sender on the same data
// dir delivers them all, each incident in order.
func TestCrashBeforeDelivery(t *testing.T) {
	h := newHoldServer(t)
	dir := t.TempDir()
	s := pendingAfterCrash(t, h, dir, 5, "a", "b", "c") // a/0 was in flight
	require.Zero(t, s.Stats().Delivered)

	o, err := OpenOutbox(OutboxPath(dir), true)
	require.NoError(t, err)
	l := listOutbox(t, o)
	require.NoError(t, o.Close())
	require.Len(t, l, 15)
	for i, e := range l {
		require.Equal(t, StatePending, e.State)
		require.Equal(t, uint64(i+1), e.Seq, "sequence numbers follow publish order")
		require.Equal(t, []string{"a", "b", "c"}[i%3], e.Incident)
	}

	h.hold.Store(false)
	s2, logs, _ := newTestSender(t, holdConfig(h, dir, 4))
	require.Equal(t, 15, s2.Stats().Pending)
	loaded := entriesWith(logs, "loaded the outbox")
	require.Len(t, loaded, 1)
	require.Equal(t, int64(15), loaded[0].ContextMap()["pending"])
	closeAndWait(t, s2)
	require.Equal(t, Stats{Delivered: 15}, s2.Stats())
	per := perIncident(h.got())
	for _, id := range []string{"a", "b", "c"} {
		require.Equal(t, counting(5), per[id], "incident %s in order", id)
	}
	o, err = OpenOutbox(OutboxPath(dir), true)
	require.NoError(t, err)
	defer o.Close()
	require.Empty(t, listOutbox(t, o))
}

// TestDeleteOnlyAfter2xx: a 500 leaves the event in the outbox, with its
// attempts and the redacted error; after a crash, the next Sender
// delivers it (200) and only then deletes it.
func TestDeleteOnlyAfter2xx(t *testing.T) {
	h := newHoldServer(t)
	h.hold.Store(false)
	h.status.Store(http.StatusInternalServerError)
	dir := t.TempDir()
	s, _, _, _ := newClockSender(t, holdConfig(h, dir, 1)) // the clock stands still: no retry
	p, err := s.Open(udf.Destination{})
	require.NoError(t, err)
	require.NoError(t, p.Publish(webhookEvent("a", 0)))
	require.NoError(t, flushNow(p))
	require.Eventually(t, func() bool {
		l := listOutbox(t, s.outbox)
		return len(l) == 1 && l[0].Attempts == 1
	}, 10*time.Second, time.Millisecond, "the failed attempt is written")
	kill(s)

	o, err := OpenOutbox(OutboxPath(dir), true)
	require.NoError(t, err)
	l := listOutbox(t, o)
	require.NoError(t, o.Close())
	require.Len(t, l, 1)
	e := l[0]
	require.Equal(t, StatePending, e.State)
	require.Equal(t, "default", e.Endpoint)
	require.Equal(t, "a", e.Incident)
	require.Equal(t, udf.Critical.String(), e.Level)
	require.Equal(t, FormatIncidentWebhook, e.Format)
	require.Equal(t, 1, e.Attempts)
	require.Equal(t, "http status 500 Internal Server Error: answer for key [redacted]", e.LastError)
	require.Equal(t, clockStart, e.Created)
	require.True(t, e.NextAttempt.After(clockStart))

	h.status.Store(http.StatusOK)
	s2, _, _ := newTestSender(t, holdConfig(h, dir, 1))
	closeAndWait(t, s2)
	require.Equal(t, []string{"a/0"}, h.got())
	require.Equal(t, uint64(1), s2.Stats().Retried, "its second attempt overall")
	o, err = OpenOutbox(OutboxPath(dir), true)
	require.NoError(t, err)
	defer o.Close()
	require.Empty(t, listOutbox(t, o))
}

// TestFlushWaitsForCommit: Flush returns only once its events are in the
// file; Publish does not wait for the disk.
func TestFlushWaitsForCommit(t *testing.T) {
	h := newHoldServer(t)
	cfg, _ := testConfig(t, holdConfig(h, "", 1))
	entered, release := make(chan struct{}, 100), make(chan struct{})
	fh := &fastHooks{}
	hk := fh.hooks()
	var blocked atomic.Bool
	blocked.Store(true)
	hk.beforeCommit = func() error {
		if blocked.Load() {
			entered <- struct{}{}
			<-release
		}
		return nil
	}
	s := startSender(t, cfg, hk)
	p, err := s.Open(udf.Destination{})
	require.NoError(t, err)
	require.NoError(t, p.Publish(webhookEvent("a", 0)), "publish returns with the committer blocked")
	flushed := make(chan error, 1)
	go func() { flushed <- flushNow(p) }()
	<-entered
	require.NoError(t, p.Publish(webhookEvent("a", 1)), "publish returns with the committer blocked")
	select {
	case <-flushed:
		t.Fatal("Flush returned before the commit")
	default:
	}
	require.Empty(t, listOutbox(t, s.outbox))
	blocked.Store(false)
	close(release)
	require.NoError(t, <-flushed)
	l := listOutbox(t, s.outbox) // no waiting: it is there
	require.NotEmpty(t, l)
	require.Equal(t, "a", l[0].Incident)
	require.NoError(t, flushNow(p))
	require.Len(t, listOutbox(t, s.outbox), 2)
	require.NoError(t, flushNow(p), "nothing new: returns at once")
}

// TestFlushReportsWriteFailure: when a write fails, Flush says so, the
// events are delivered from memory anyway, and the write is retried.
func TestFlushReportsWriteFailure(t *testing.T) {
	h := newHoldServer(t)
	h.hold.Store(false)
	cfg, logs := testConfig(t, holdConfig(h, "", 1))
	fh := &fastHooks{}
	hk := fh.hooks()
	var fails atomic.Int32
	fails.Store(1)
	failCommitsWhile(&hk, func() bool { return fails.Add(-1) >= 0 })
	s := startSender(t, cfg, hk)
	p, err := s.Open(udf.Destination{})
	require.NoError(t, err)
	require.NoError(t, p.Publish(webhookEvent("a", 0)))
	err = flushNow(p)
	require.ErrorContains(t, err, "make 1 event(s) or state change(s) of endpoint default durable")
	require.ErrorContains(t, err, "injected disk failure")
	require.NotContains(t, err.Error(), secretKey)
	require.NoError(t, flushNow(p), "the retried write succeeds")
	require.Eventually(t, func() bool { return s.Stats().Delivered == 1 }, 10*time.Second, time.Millisecond)
	closeAndWait(t, s)
	require.Equal(t, []string{"a/0"}, h.got())
	require.Len(t, entriesWith(logs, "cannot write the outbox; delivering its new events from memory, and retrying the write"), 1)
	o, err := OpenOutbox(OutboxPath(cfg.DataDir), true)
	require.NoError(t, err)
	defer o.Close()
	require.Empty(t, listOutbox(t, o))
}

// TestConcurrentFlush: many publishers publishing and flushing at once;
// everything each one flushed is in the file, in its publish order.
func TestConcurrentFlush(t *testing.T) {
	const (
		publishers = 8
		perPub     = 100
		flushEvery = 10
	)
	h := newHoldServer(t)
	dir := t.TempDir()
	s, _, _ := newTestSender(t, holdConfig(h, dir, 1))
	publishConcurrently(t, s, publishers, func(g int, p udf.Publisher) {
		for n := range perPub {
			if err := p.Publish(webhookEvent(fmt.Sprintf("p%d", g), n)); err != nil {
				t.Error(err)
			}
			if n%flushEvery == flushEvery-1 {
				if err := flushNow(p); err != nil {
					t.Error(err)
				}
			}
		}
	})
	commits := s.cm.Commits()
	kill(s)
	t.Logf("%d events in %d transactions", publishers*perPub, commits)

	o, err := OpenOutbox(OutboxPath(dir), true)
	require.NoError(t, err)
	defer o.Close()
	l := listOutbox(t, o)
	require.Len(t, l, publishers*perPub)
	next := map[string]int{}
	var last uint64
	for _, e := range l {
		require.Greater(t, e.Seq, last)
		last = e.Seq
		require.Equal(t, StatePending, e.State)
		next[e.Incident]++
	}
	require.Len(t, next, publishers)
	for id, n := range next {
		require.Equal(t, perPub, n, id)
	}
}

// BenchmarkPublishFlush measures Publish and Flush with the outbox (each
// event written and synced) while the events are delivered to a local
// server that accepts everything (and deleted from the outbox): one event
// per Flush, 100 per Flush, and one per Flush from 8 publishers per CPU
// sharing transactions. events/txn counts all transactions, deletes included.
func BenchmarkPublishFlush(b *testing.B) {
	srv := newServer(b, func(w http.ResponseWriter, r *http.Request) {})
	run := func(b *testing.B, perFlush int, parallel bool) {
		s, err := New(Config{
			Endpoints: []Endpoint{{Name: "default", URL: srv.URL + "/v2/incidents/api/" + secretKey}},
			DataDir:   b.TempDir(),
			QueueSize: 1 << 30,
		})
		require.NoError(b, err)
		ev := kapacitorEvents["warning with tags, html and unicode"]
		b.ReportAllocs()
		b.ResetTimer()
		if parallel {
			var id atomic.Int64
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				p, _ := s.Open(udf.Destination{})
				e := ev
				e.ID = strconv.FormatInt(id.Add(1), 10)
				for pb.Next() {
					if err := p.Publish(e); err != nil {
						b.Error(err)
					}
					if err := flushNow(p); err != nil {
						b.Error(err)
					}
				}
			})
		} else {
			p, _ := s.Open(udf.Destination{})
			for i := 0; i < b.N; i++ {
				if err := p.Publish(ev); err != nil {
					b.Fatal(err)
				}
				if i%perFlush == perFlush-1 || i == b.N-1 {
					if err := flushNow(p); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/float64(max(s.cm.Commits(), 1)), "events/txn")
		closeNow(s)
	}
	b.Run("1-per-flush", func(b *testing.B) { run(b, 1, false) })
	b.Run("100-per-flush", func(b *testing.B) { run(b, 100, false) })
	b.Run("parallel-1-per-flush", func(b *testing.B) { run(b, 1, true) })
}
