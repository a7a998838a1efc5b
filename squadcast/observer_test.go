package squadcast

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// recordingObserver records what an Observer hears.
type recordingObserver struct {
	mu        sync.Mutex
	got       []string // "endpoint result"
	age       []time.Duration
	levels    []udf.Level // of each attempt
	accepted  []string    // "endpoint source"
	coalesced []string    // "endpoint level"
	stale     []string    // endpoint
}

func (o *recordingObserver) StaleResolved(endpoint string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.stale = append(o.stale, endpoint)
}

func (o *recordingObserver) Coalesced(endpoint string, level udf.Level) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.coalesced = append(o.coalesced, endpoint+" "+level.String())
}

func (o *recordingObserver) Accepted(endpoint string, source Source) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.accepted = append(o.accepted, endpoint+" "+string(source))
}

func (o *recordingObserver) Attempted(endpoint string, level udf.Level, r Outcome, took, age time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, endpoint+" "+r.String())
	o.levels = append(o.levels, level)
	if took < 0 || age < 0 {
		o.got = append(o.got, "negative duration")
	}
	o.age = append(o.age, age)
}

func (o *recordingObserver) results() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.got...)
}

// TestObserverAndHeaders: the Observer hears every attempt with the
// endpoint's name (and "inline" for a task's URL, never the URL), and each
// request carries the endpoint's headers.
func TestObserverAndHeaders(t *testing.T) {
	var fails atomic.Int32
	fails.Store(1)
	var mu sync.Mutex
	headers := map[string][]string{} // path -> X-Team values
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		headers[r.URL.Path] = append(headers[r.URL.Path], r.Header.Get("X-Team")+"|"+r.Header.Get("User-Agent")+"|"+r.Header.Get("Content-Type"))
		mu.Unlock()
		switch {
		case strings.HasPrefix(r.URL.Path, "/bad/"):
			w.WriteHeader(http.StatusBadRequest)
		case strings.HasPrefix(r.URL.Path, "/flaky/") && fails.Add(-1) >= 0:
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			w.WriteHeader(http.StatusAccepted)
		}
	})
	obs := &recordingObserver{}
	s, _, _ := newTestSender(t, Config{
		Endpoints: []Endpoint{
			{Name: "prod", URL: srv.URL + "/flaky/" + secretKey, Headers: map[string]string{"X-Team": "infra", "User-Agent": "team-agent"}},
			{Name: "broken", URL: srv.URL + "/bad/" + secretKey},
		},
		Observer: obs,
	})
	publish := func(d udf.Destination, id string) {
		t.Helper()
		p, err := s.Open(d)
		require.NoError(t, err)
		require.NoError(t, p.Publish(webhookEvent(id, 0)))
	}
	publish(udf.Destination{Endpoint: "prod"}, "a")
	publish(udf.Destination{Endpoint: "broken"}, "b")
	publish(udf.Destination{URL: srv.URL + "/inline/" + secretKey}, "c")
	publish(udf.Destination{Endpoint: "prod", URL: srv.URL + "/inline2/" + secretKey}, "d")
	require.Eventually(t, func() bool { st := s.Stats(); return st.Delivered == 3 && st.DeadLettered == 1 }, 10*time.Second, time.Millisecond)

	assert.ElementsMatch(t, []string{"prod retried", "prod delivered", "broken dead_lettered", "inline delivered", "inline delivered"}, obs.results())
	assert.Empty(t, s.Waiting(), "nothing waits once delivered or given up")
	obs.mu.Lock()
	assert.Equal(t, []udf.Level{udf.Critical, udf.Critical, udf.Critical, udf.Critical, udf.Critical}, obs.levels, "each attempt with its event's level")
	obs.mu.Unlock()
	obs.mu.Lock()
	assert.Equal(t, []string{"prod udf", "broken udf", "inline udf", "inline udf"}, obs.accepted, "each event, with its source, as it is taken")
	obs.mu.Unlock()
	for _, r := range obs.results() {
		assert.NotContains(t, r, secretKey)
		assert.NotContains(t, r, "127.0.0.1")
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"infra|team-agent|application/json", "infra|team-agent|application/json"}, headers["/flaky/"+secretKey], "the endpoint's headers, on every attempt")
	assert.Equal(t, []string{"|kapacitor-squadcast|application/json"}, headers["/inline/"+secretKey], "an inline URL without an endpoint gets no headers")
	assert.Equal(t, []string{"infra|team-agent|application/json"}, headers["/inline2/"+secretKey], "an inline URL takes its endpoint's headers")
}

// TestObserverStaleResolved: the Observer hears of each stale resolution
// (.resolveStale()) taken for delivery, by endpoint name ("inline" for a
// task's URL), and of no other event.
func TestObserverStaleResolved(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) })
	obs := &recordingObserver{}
	s, _, _ := newTestSender(t, Config{Endpoints: []Endpoint{{Name: "prod", URL: srv.URL + "/p/" + secretKey}}, Observer: obs})
	for i, d := range []udf.Destination{{Endpoint: "prod"}, {URL: srv.URL + "/inline/" + secretKey}} {
		p, err := s.Open(d)
		require.NoError(t, err)
		require.NoError(t, p.Publish(webhookEvent("a", i)))
		ok := webhookEvent("a", i)
		ok.Level, ok.PreviousLevel = udf.OK, udf.Critical
		require.NoError(t, p.Publish(ok))
		ok.Stale = time.Minute
		require.NoError(t, p.Publish(ok))
	}
	require.Eventually(t, func() bool { return s.Stats().Delivered == 6 }, 10*time.Second, time.Millisecond)
	obs.mu.Lock()
	defer obs.mu.Unlock()
	assert.Equal(t, []string{"prod", "inline"}, obs.stale)
	assert.Len(t, obs.accepted, 6)
}

// TestReady: a running Sender is ready; one whose outbox cannot be written,
// or that is closed, is not.
func TestReady(t *testing.T) {
	h := newHoldServer(t)
	h.hold.Store(false)
	cfg, _ := testConfig(t, holdConfig(h, "", 1))
	fh := &fastHooks{}
	hk := fh.hooks()
	var failing atomic.Bool
	failCommitsWhile(&hk, failing.Load)
	s := startSender(t, cfg, hk)
	require.NoError(t, s.Ready())

	failing.Store(true)
	p, err := s.Open(udf.Destination{})
	require.NoError(t, err)
	require.NoError(t, p.Publish(webhookEvent("a", 0)))
	require.Error(t, flushNow(p))
	err = s.Ready()
	require.ErrorContains(t, err, "the last outbox write failed")
	require.ErrorContains(t, err, "injected disk failure")

	failing.Store(false)
	require.NoError(t, flushNow(p), "the retried write succeeds")
	require.NoError(t, s.Ready())

	closeAndWait(t, s)
	require.ErrorIs(t, s.Ready(), ErrClosed)
}

// TestPostOnce: one request in the endpoint's format with its headers;
// a refusal is an error holding the status and the body, never the key.
func TestPostOnce(t *testing.T) {
	var mu sync.Mutex
	var bodies []map[string]any
	var team []string
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		var b map[string]any
		_ = json.NewDecoder(r.Body).Decode(&b)
		mu.Lock()
		bodies = append(bodies, b)
		team = append(team, r.Header.Get("X-Team"))
		mu.Unlock()
		if strings.HasPrefix(r.URL.Path, "/bad/") {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte("invalid key " + secretKey))
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	ev := udf.Event{ID: "x", Message: "m", Details: "d", Level: udf.Critical, Time: time.Unix(0, 0).UTC()}
	status, err := PostOnce(context.Background(), Endpoint{URL: srv.URL + "/ok/" + secretKey, Format: FormatIncidentWebhook, Headers: map[string]string{"X-Team": "infra"}}, ev)
	require.NoError(t, err)
	assert.Equal(t, http.StatusAccepted, status)
	status, err = PostOnce(context.Background(), Endpoint{URL: srv.URL + "/bad/" + secretKey}, ev)
	assert.Equal(t, http.StatusUnauthorized, status)
	var de *DeliveryError
	require.ErrorAs(t, err, &de)
	assert.Equal(t, http.StatusUnauthorized, de.StatusCode)
	assert.Contains(t, err.Error(), "http status 401 Unauthorized")
	assert.Contains(t, de.Body, "invalid key")
	assert.NotContains(t, err.Error()+de.Body, secretKey)
	_, err = PostOnce(context.Background(), Endpoint{URL: "ftp://h/" + secretKey}, ev)
	require.ErrorContains(t, err, "scheme")
	assert.NotContains(t, err.Error(), secretKey)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, bodies, 2)
	assert.Equal(t, "trigger", bodies[0]["status"], "incident-webhook format")
	assert.Equal(t, "CRITICAL", bodies[1]["level"], "kapacitor format by default")
	assert.Equal(t, []string{"infra", ""}, team)
}
