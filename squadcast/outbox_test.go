package squadcast

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast/outbox"
	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// holdServer holds every request until the client goes away (hold is
// true), or answers with status and records the alert ids in order.
type holdServer struct {
	*server
	hold    atomic.Bool
	status  atomic.Int32
	arrived chan string
	mu      sync.Mutex
	ids     []string
}

func newHoldServer(t *testing.T) *holdServer {
	h := &holdServer{arrived: make(chan string, 10000)}
	h.hold.Store(true)
	h.status.Store(http.StatusOK)
	h.server = newServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body) // read it all, so the server notices the client going away
		body := decodeWebhook(t, b)
		id := body.EventID + "/" + body.Description
		if h.hold.Load() {
			h.arrived <- id
			<-r.Context().Done()
			return
		}
		status := int(h.status.Load())
		if status/100 == 2 {
			h.mu.Lock()
			h.ids = append(h.ids, id)
			h.mu.Unlock()
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, "answer for key "+secretKey)
	})
	return h
}

func (h *holdServer) got() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.ids...)
}

func holdConfig(h *holdServer, dir string, workers int) Config {
	return Config{
		Endpoints: []Endpoint{{Name: "default", URL: h.URL + "/v2/incidents/api/" + secretKey, Format: FormatIncidentWebhook}},
		DataDir:   dir,
		Workers:   workers,
	}
}

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

// TestDeadLetters: a 400 dead-letters the incident's head at once, and its
// later events are still delivered, in order; the dead letter is logged,
// counted, and kept in the outbox, where RetryDead and Drop work on it.
func TestDeadLetters(t *testing.T) {
	rec := newRecorder(t)
	flushed := make(chan struct{})
	rec.answer = func(id string, w http.ResponseWriter) bool {
		if id == "x/0" {
			<-flushed // the later events are queued behind it
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, "bad key "+secretKey)
			return true
		}
		return false
	}
	s, logs, _ := newTestSender(t, Config{
		Endpoints: []Endpoint{{Name: "default", URL: rec.URL + "/v2/incidents/api/" + secretKey, Format: FormatIncidentWebhook}},
		Workers:   1,
	})
	p, err := s.Open(udf.Destination{})
	require.NoError(t, err)
	for n := range 3 {
		require.NoError(t, p.Publish(webhookEvent("x", n)))
	}
	require.NoError(t, flushNow(p))
	close(flushed)
	closeAndWait(t, s)
	require.Equal(t, []string{"x/0", "x/1", "x/2"}, rec.got())
	st := s.Stats()
	require.Equal(t, uint64(1), st.DeadLettered)
	require.Equal(t, uint64(2), st.Delivered)
	dead := entriesWith(logs, "squadcast event dead-lettered")
	require.Len(t, dead, 1)
	f := dead[0].ContextMap()
	require.Equal(t, "error", dead[0].Level.String())
	require.Equal(t, "default", f["endpoint"])
	require.Equal(t, "x", f["incident"])
	require.Equal(t, "permanent failure", f["reason"])
	require.Equal(t, int64(1), f["attempts"])
	require.Equal(t, int64(2), f["later_events"])
	require.Equal(t, "bad key [redacted]", f["response"])
	assertNoSecret(t, logs, secretKey, secretPath)

	o, err := OpenOutbox(OutboxPath(s.cfg.DataDir), false)
	require.NoError(t, err)
	defer o.Close()
	l := listOutbox(t, o)
	require.Len(t, l, 1)
	e := l[0]
	require.Equal(t, StateDead, e.State)
	require.Equal(t, uint64(1), e.Seq)
	require.Equal(t, "permanent failure", e.DeadReason)
	require.Equal(t, "http status 400 Bad Request: bad key [redacted]", e.LastError)
	require.False(t, e.DeadAt.IsZero())

	n, err := o.RetryDead()
	require.NoError(t, err)
	require.Equal(t, 1, n)
	l = listOutbox(t, o)
	require.Len(t, l, 1)
	require.Equal(t, OutboxEntry{State: StatePending, Seq: 1, Endpoint: "default", Incident: "x", Level: "CRITICAL",
		Format: FormatIncidentWebhook, Created: e.Created, Size: e.Size}, l[0], "attempts, error and reason cleared")
	n, err = o.RetryDead()
	require.NoError(t, err)
	require.Zero(t, n)

	dropped, err := o.Drop(7, 1, 1)
	require.NoError(t, err)
	require.Equal(t, []uint64{1}, dropped)
	require.Empty(t, listOutbox(t, o))
}

// TestDeadLetterMaxAge: an event that keeps failing is retried until its
// max age, on a fake clock; then it is dead, and the next event goes.
func TestDeadLetterMaxAge(t *testing.T) {
	rec := newRecorder(t)
	rec.answer = func(id string, w http.ResponseWriter) bool {
		if id == "x/0" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		return false
	}
	s, logs, clk, _ := newClockSender(t, Config{
		Endpoints:    []Endpoint{{Name: "default", URL: rec.URL + "/v2/incidents/api/" + secretKey, Format: FormatIncidentWebhook}},
		RetryWaitMin: time.Minute, RetryWaitMax: 5 * time.Minute, MaxAge: 10 * time.Minute,
	})
	p, err := s.Open(udf.Destination{})
	require.NoError(t, err)
	require.NoError(t, p.Publish(webhookEvent("x", 0)))
	require.NoError(t, p.Publish(webhookEvent("x", 1)))
	require.NoError(t, flushNow(p))
	deadline := clockStart.Add(10 * time.Minute)
	var dues []time.Time
	for s.Stats().DeadLettered == 0 {
		settle(t, s)
		due := waitingDue(s)["x"]
		if due.IsZero() {
			continue // dead-lettered meanwhile
		}
		dues = append(dues, due)
		clk.Advance(due.Sub(clk.Now()))
	}
	require.Eventually(t, func() bool { return s.Stats().Delivered == 1 }, 10*time.Second, time.Millisecond)
	require.Equal(t, deadline, dues[len(dues)-1], "the last attempt is at the max age")
	for i := 1; i < len(dues); i++ {
		require.True(t, dues[i].After(dues[i-1]))
	}
	attempts := int64(len(dues) + 1)
	require.Equal(t, attempts, int64(strings.Count(strings.Join(rec.got(), " "), "x/0")))
	dead := entriesWith(logs, "squadcast event dead-lettered")
	require.Len(t, dead, 1)
	f := dead[0].ContextMap()
	require.Equal(t, "max age exceeded", f["reason"])
	require.Equal(t, attempts, f["attempts"])
	require.Equal(t, 10*time.Minute, f["age"])
	require.Equal(t, []string{"x/1"}, rec.got()[len(rec.got())-1:])
}

// TestOutboxFileErrors: a missing file is created, and a corrupt file, a
// file that is not an outbox, a newer layout and a locked file give clear
// errors, never a panic.
func TestOutboxFileErrors(t *testing.T) {
	t.Run("missing file is created", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a", "b")
		_, err := OpenOutbox(OutboxPath(dir), true)
		require.ErrorIs(t, err, fs.ErrNotExist)
		require.ErrorContains(t, err, "has the daemon run with this data dir?")
		s, _, _ := newTestSender(t, Config{DataDir: dir})
		closeAndWait(t, s)
		fi, err := os.Stat(OutboxPath(dir))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
		o, err := OpenOutbox(OutboxPath(dir), true)
		require.NoError(t, err)
		require.Empty(t, listOutbox(t, o))
		require.NoError(t, o.Close())
	})
	t.Run("garbage", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(OutboxPath(dir), []byte(strings.Repeat("not a bbolt file\n", 1000)), 0o600))
		_, err := New(Config{DataDir: dir})
		require.ErrorContains(t, err, "open outbox "+OutboxPath(dir)+": the file is corrupt or not an outbox")
		_, err = OpenOutbox(OutboxPath(dir), true)
		require.ErrorContains(t, err, "corrupt or not an outbox")
	})
	t.Run("truncated", func(t *testing.T) {
		dir := t.TempDir()
		s, _, _ := newTestSender(t, Config{DataDir: dir})
		closeAndWait(t, s)
		b, err := os.ReadFile(OutboxPath(dir))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(OutboxPath(dir), b[:100], 0o600))
		_, err = New(Config{DataDir: dir})
		require.ErrorContains(t, err, "open outbox "+OutboxPath(dir))
	})
	t.Run("another bbolt file", func(t *testing.T) {
		dir := t.TempDir()
		db, err := bolt.Open(OutboxPath(dir), 0o600, nil)
		require.NoError(t, err)
		require.NoError(t, db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("nodes")); return err }))
		require.NoError(t, db.Close())
		_, err = New(Config{DataDir: dir})
		require.ErrorContains(t, err, "the file is not an outbox (it has no meta bucket)")
	})
	t.Run("newer layout", func(t *testing.T) {
		dir := t.TempDir()
		db, err := bolt.Open(OutboxPath(dir), 0o600, nil)
		require.NoError(t, err)
		require.NoError(t, db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucket(bucketMeta)
			if err != nil {
				return err
			}
			return b.Put(keyVersion, []byte("2"))
		}))
		require.NoError(t, db.Close())
		_, err = New(Config{DataDir: dir})
		require.ErrorContains(t, err, "the file's layout version 2 is not supported (want 1)")
	})
	t.Run("in use", func(t *testing.T) {
		s, _, _ := newTestSender(t, Config{})
		for _, ro := range []bool{true, false} {
			_, err := OpenOutbox(OutboxPath(s.cfg.DataDir), ro)
			require.ErrorIs(t, err, ErrOutboxInUse)
			require.ErrorContains(t, err, "the data dir is in use by a running daemon; stop it first")
		}
	})
}

// TestCorruptRecord: a record that does not decode stops the start with an
// error naming it (and how to drop it); the outbox lists it as corrupt,
// and once it is dropped the Sender starts and delivers the rest.
func TestCorruptRecord(t *testing.T) {
	for name, value := range map[string]string{
		"bad json":          `{"v":1,"endpoint":`,
		"newer record":      `{"v":3}`,
		"wrong field type":  `{"v":1,"attempts":"many"}`,
		"unknown level":     `{"v":1,"endpoint":"default","url":"https://h.example/k","format":"kapacitor","level":"LOUD","created":"2024-01-01T00:00:00Z","body":"e30="}`,
		"url without host":  `{"v":1,"endpoint":"default","url":"https:///k/` + secretKey + `","format":"kapacitor","level":"OK","created":"2024-01-01T00:00:00Z","body":"e30="}`,
		"missing body":      `{"v":1,"endpoint":"default","url":"https://h.example/k","format":"kapacitor","level":"OK","created":"2024-01-01T00:00:00Z"}`,
		"not json":          "\x00\x01",
		"missing endpoint ": `{"v":1,"url":"https://h.example/k","format":"kapacitor","level":"OK","created":"2024-01-01T00:00:00Z","body":"e30="}`,
	} {
		t.Run(name, func(t *testing.T) {
			h := newHoldServer(t)
			dir := t.TempDir()
			s, _, _ := newTestSender(t, holdConfig(h, dir, 1))
			p, err := s.Open(udf.Destination{})
			require.NoError(t, err)
			require.NoError(t, p.Publish(webhookEvent("a", 0)))
			require.NoError(t, p.Publish(webhookEvent("a", 1)))
			require.NoError(t, flushNow(p))
			kill(s)

			db, err := bolt.Open(OutboxPath(dir), 0o600, nil)
			require.NoError(t, err)
			require.NoError(t, db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketPending).Put(seqKey(2), []byte(value)) }))
			require.NoError(t, db.Close())

			_, err = New(holdConfig(h, dir, 1))
			var re *RecordError
			require.True(t, errors.As(err, &re), "%v", err)
			require.Equal(t, uint64(2), re.Seq)
			require.Equal(t, StatePending, re.State)
			require.ErrorContains(t, err, "outbox "+OutboxPath(dir)+": pending event 2 is corrupt: ")
			require.ErrorContains(t, err, "drop it with 'kapacitor-squadcast outbox drop --data-dir "+dir+" 2'")
			require.NotContains(t, err.Error(), secretKey)

			o, err := OpenOutbox(OutboxPath(dir), false)
			require.NoError(t, err)
			l := listOutbox(t, o)
			require.Equal(t, []string{"pending:a", "corrupt:"}, states(l))
			require.Equal(t, uint64(2), l[1].Seq)
			require.NotContains(t, l[1].LastError, secretKey)
			dropped, err := o.Drop(2)
			require.NoError(t, err)
			require.Equal(t, []uint64{2}, dropped)
			require.NoError(t, o.Close())

			h.hold.Store(false)
			s2, _, _ := newTestSender(t, holdConfig(h, dir, 1))
			closeAndWait(t, s2)
			require.Equal(t, []string{"a/0"}, h.got())
		})
	}
}

// TestRenderedBodiesStoredAsJSON: rendered bodies, of both formats, are
// stored as JSON text (a third smaller than base64), and read back byte
// for byte.
func TestRenderedBodiesStoredAsJSON(t *testing.T) {
	for _, format := range []string{FormatKapacitor, FormatIncidentWebhook} {
		body, err := Render(format, udf.Event{ID: "cpu:host=a", Message: "<b>", Level: udf.Critical, Tags: map[string]string{"host": "a"}})
		require.NoError(t, err)
		b, err := (&outbox.Record{Endpoint: "default", URL: secretURL, Format: format, Level: "CRITICAL", Created: clockStart, Body: body}).Encode()
		require.NoError(t, err)
		require.Contains(t, string(b), `"payload":{`, format)
		require.NotContains(t, string(b), `"body":`, format)
		got, err := outbox.Decode(b)
		require.NoError(t, err)
		require.NoError(t, checkRecord(got))
		require.Equal(t, string(body), string(got.Body), "%s: byte for byte", format)
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
