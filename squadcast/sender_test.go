package squadcast

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// TestPerIncidentOrdering publishes 50 incidents x 20 events from several
// goroutines to a server that is slow and fails at random, and checks that
// each incident's events arrive once each, in order, never two at a time.
func TestPerIncidentOrdering(t *testing.T) {
	const (
		incidents  = 50
		perInc     = 20
		publishers = 5
	)
	srv := newOrderServer(t)
	s, _, _ := newTestSender(t, Config{
		Endpoints: []Endpoint{{Name: "default", URL: srv.URL + "/v2/incidents/api/" + secretKey, Format: FormatIncidentWebhook}},
		Workers:   8,
	})

	publishConcurrently(t, s, publishers, func(g int, p udf.Publisher) {
		// Publisher g owns incidents g, g+publishers, ...; it interleaves them.
		for seq := range perInc {
			for inc := g; inc < incidents; inc += publishers {
				ev := udf.Event{ID: fmt.Sprintf("inc-%02d", inc), Message: "m", Details: strconv.Itoa(seq), Level: udf.Critical}
				if seq == perInc-1 {
					ev.Level = udf.OK
				}
				if err := p.Publish(ev); err != nil {
					t.Error(err)
				}
			}
		}
	})
	closeAndWait(t, s)

	srv.mu.Lock()
	defer srv.mu.Unlock()
	require.Empty(t, srv.overlap, "two events of one incident in flight at once")
	require.Len(t, srv.accepted, incidents)
	want := make([]int, perInc)
	for i := range want {
		want[i] = i
	}
	for id, got := range srv.accepted {
		require.Equal(t, want, got, "incident %s", id)
	}
	st := s.Stats()
	require.Equal(t, uint64(incidents*perInc), st.Published)
	require.Equal(t, uint64(incidents*perInc), st.Delivered)
	require.Zero(t, st.DeadLettered)
	require.Zero(t, st.Dropped)
	require.Zero(t, st.Queued)
	require.Zero(t, st.Pending, "every delivered event was deleted from the outbox")
	require.Positive(t, st.Retried, "the server failed some requests")
	require.Greater(t, srv.maxParallel.Load(), int64(1), "incidents are delivered in parallel")
}

// orderServer is a slow Incident Webhook endpoint that fails one request
// in five (503): it records, per incident, the sequence numbers (the
// descriptions) it accepted, any incident with two requests in flight at
// once, and the most requests in flight at once.
type orderServer struct {
	*server
	mu          sync.Mutex
	accepted    map[string][]int
	inFlight    map[string]int
	overlap     []string
	concurrent  atomic.Int64
	maxParallel atomic.Int64
}

func newOrderServer(t *testing.T) *orderServer {
	o := &orderServer{accepted: map[string][]int{}, inFlight: map[string]int{}}
	o.server = newServer(t, o.serve)
	return o
}

func (o *orderServer) serve(w http.ResponseWriter, r *http.Request) {
	var body webhookBody
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	seq, _ := strconv.Atoi(body.Description)
	o.mu.Lock()
	o.inFlight[body.EventID]++
	if o.inFlight[body.EventID] > 1 {
		o.overlap = append(o.overlap, body.EventID)
	}
	o.mu.Unlock()
	n := o.concurrent.Add(1)
	for {
		m := o.maxParallel.Load()
		if n <= m || o.maxParallel.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(time.Duration(rand.IntN(1000)) * time.Microsecond) // a slow server, not an assertion
	fail := rand.IntN(5) == 0
	o.concurrent.Add(-1)
	o.mu.Lock()
	o.inFlight[body.EventID]--
	if !fail {
		o.accepted[body.EventID] = append(o.accepted[body.EventID], seq)
	}
	o.mu.Unlock()
	if fail {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// gate is a server that holds every request until released, and records
// the incidents in the order their requests arrived.
type gate struct {
	*server
	mu      sync.Mutex
	order   []string
	arrived chan string
	release chan struct{}
	once    sync.Once
}

func newGate(t *testing.T) *gate {
	g := &gate{arrived: make(chan string, 1000), release: make(chan struct{})}
	g.server = newServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var body webhookBody
		_ = json.Unmarshal(b, &body)
		id := body.EventID + "/" + body.Description
		g.mu.Lock()
		g.order = append(g.order, id)
		g.mu.Unlock()
		g.arrived <- id
		<-g.release
		w.WriteHeader(http.StatusOK)
	})
	t.Cleanup(g.open) // before the server's Close, which waits for the handlers
	return g
}

func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

func (g *gate) received() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.order...)
}

// TestFairness: an incident with many queued events does not hold up
// another incident; they take turns.
func TestFairness(t *testing.T) {
	g := newGate(t)
	s, _, _ := newTestSender(t, Config{
		Endpoints: []Endpoint{{Name: "default", URL: g.URL + "/k/" + secretKey, Format: FormatIncidentWebhook}},
		Workers:   1,
	})
	p, err := s.Open(udf.Destination{})
	require.NoError(t, err)
	ev := func(id string, n int) udf.Event {
		return udf.Event{ID: id, Message: "m", Details: strconv.Itoa(n), Level: udf.Critical}
	}
	require.NoError(t, p.Publish(ev("a", 0)))
	require.Equal(t, "a/0", <-g.arrived) // a/0 is in flight, the only worker is busy
	for i := 1; i < 100; i++ {
		require.NoError(t, p.Publish(ev("a", i)))
	}
	require.NoError(t, p.Publish(ev("b", 0)))
	require.NoError(t, p.Publish(ev("b", 1)))
	require.NoError(t, flushNow(p)) // all written and scheduled
	g.open()
	closeAndWait(t, s)

	got := g.received()
	require.Len(t, got, 102)
	require.Equal(t, []string{"a/0", "b/0", "a/1", "b/1", "a/2", "a/3"}, got[:6])
}

func TestCloseDrains(t *testing.T) {
	var got atomic.Int64
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Millisecond) // a slow server, not an assertion
		got.Add(1)
	})
	s, _, _ := newTestSender(t, Config{Endpoints: []Endpoint{{Name: "default", URL: srv.URL + "/k/" + secretKey}}, Workers: 4})
	p, err := s.Open(udf.Destination{})
	require.NoError(t, err)
	for i := range 200 {
		require.NoError(t, p.Publish(udf.Event{ID: strconv.Itoa(i % 7), Level: udf.Critical}))
	}
	closeAndWait(t, s)
	require.Equal(t, int64(200), got.Load(), "every pending event was delivered before Close returned")
	require.Equal(t, Stats{Published: 200, Delivered: 200}, s.Stats())
	requireDone(t, s)

	err = p.Publish(udf.Event{ID: "late", Level: udf.OK})
	require.ErrorIs(t, err, ErrClosed)
	require.Equal(t, uint64(1), s.Stats().Dropped)
	require.NoError(t, s.Close(context.Background()), "Close twice is fine")
}

// TestCloseAborts: when Close's context ends, the attempt in flight is
// aborted; it and the queued events stay in the outbox, and Close says so.
func TestCloseAborts(t *testing.T) {
	g := newGate(t)
	s, logs, _ := newTestSender(t, Config{Endpoints: []Endpoint{{Name: "default", URL: g.URL + "/k/" + secretKey}}, Workers: 1})
	p, err := s.Open(udf.Destination{})
	require.NoError(t, err)
	for i := range 5 {
		require.NoError(t, p.Publish(udf.Event{ID: strconv.Itoa(i % 2), Message: strconv.Itoa(i), Level: udf.Critical}))
	}
	<-g.arrived // one in flight, four queued

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = s.Close(ctx)
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorContains(t, err, "5 event(s) still pending, kept in the outbox")
	require.Equal(t, Stats{Published: 5, Queued: 5, Pending: 5}, s.Stats())
	requireDone(t, s)
	aborted := entriesWith(logs, "squadcast delivery aborted by shutdown; the event stays in the outbox")
	require.Len(t, aborted, 1)
	require.Empty(t, entriesWith(logs, "squadcast event dead-lettered"))
	require.Len(t, g.received(), 1)

	o, err := OpenOutbox(OutboxPath(s.cfg.DataDir), true)
	require.NoError(t, err)
	defer o.Close()
	require.Equal(t, []string{"pending:0", "pending:1", "pending:0", "pending:1", "pending:0"}, states(listOutbox(t, o)))
}

// TestSameURLSharesIncidents: two publishers (different endpoint names, same
// URL) share the ordering of an incident; another URL does not.
func TestSameURLSharesIncidents(t *testing.T) {
	g := newGate(t)
	url := g.URL + "/k/" + secretKey
	s, _, _ := newTestSender(t, Config{
		Endpoints: []Endpoint{{Name: "a", URL: url}, {Name: "b", URL: url}, {Name: "c", URL: url + "-other"}},
		Workers:   4,
	})
	for _, name := range []string{"a", "b", "c"} {
		p, err := s.Open(udf.Destination{Endpoint: name, Format: FormatIncidentWebhook})
		require.NoError(t, err)
		require.NoError(t, p.Publish(udf.Event{ID: "x", Message: "m", Details: name, Level: udf.Critical}))
	}
	// a and c are in flight at once; b waits behind a.
	first := map[string]bool{<-g.arrived: true, <-g.arrived: true}
	require.Equal(t, map[string]bool{"x/a": true, "x/c": true}, first)
	s.sched.mu.Lock()
	require.Len(t, s.sched.incidents, 2)
	s.sched.mu.Unlock()
	g.open()
	closeAndWait(t, s)
	require.Equal(t, uint64(3), s.Stats().Delivered)
}

func requireDone(t *testing.T, s *Sender) {
	t.Helper()
	select {
	case <-s.cm.Done():
	default:
		t.Fatal("committer still running after Close returned")
	}
	// No goroutine of this package's is left (tests do not run in parallel,
	// and earlier tests closed their Senders); the committer may still be
	// returning from its function.
	buf := make([]byte, 1<<20)
	require.Eventually(t, func() bool {
		stacks := string(buf[:runtime.Stack(buf, true)])
		return !strings.Contains(stacks, "squadcast.(*Sender).") && !strings.Contains(stacks, "outbox.(*Committer[")
	}, 10*time.Second, time.Millisecond, "goroutines of a Sender are left")
}

// TestIncidentsMapDroppedAfterBurst: once a burst of more incidents than
// maxKeptIncidents is delivered, the emptied incidents map is made anew
// (a map keeps its capacity).
func TestIncidentsMapDroppedAfterBurst(t *testing.T) {
	release := make(chan struct{})
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		<-release
	})
	s, _, _ := newTestSender(t, Config{Endpoints: []Endpoint{{Name: "default", URL: srv.URL + "/k/" + secretKey}}})
	p, err := s.Open(udf.Destination{})
	require.NoError(t, err)
	n := maxKeptIncidents + 100
	for i := range n {
		require.NoError(t, p.Publish(udf.Event{ID: strconv.Itoa(i), Level: udf.Critical}))
	}
	require.NoError(t, flushNow(p))
	s.sched.mu.Lock()
	peak := s.sched.peak
	s.sched.mu.Unlock()
	require.Equal(t, n, peak, "every incident waits for the server")
	close(release)
	closeAndWait(t, s)
	require.Equal(t, uint64(n), s.Stats().Delivered)
	require.Empty(t, s.sched.incidents)
	require.Zero(t, s.sched.peak, "the map was made anew")
}
