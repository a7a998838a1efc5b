package squadcast

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest/observer"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

func TestClassifyEveryStatus(t *testing.T) {
	// Written out, not computed: the codes that are not permanent.
	retry := map[int]bool{408: true, 429: true}
	for c := 500; c <= 599; c++ {
		retry[c] = true
	}
	for code := 100; code <= 599; code++ {
		want := OutcomePermanent
		switch {
		case code >= 200 && code <= 299:
			want = OutcomeDelivered
		case retry[code]:
			want = OutcomeRetry
		}
		require.Equal(t, want, Classify(code), "status %d", code)
	}
	for _, code := range []int{-1, 0, 1, 99, 600, 999, 1000} {
		require.Equal(t, OutcomePermanent, Classify(code), "status %d", code)
	}
	// The ones that matter most, spelled out.
	for code, want := range map[int]Outcome{
		200: OutcomeDelivered, 202: OutcomeDelivered, 204: OutcomeDelivered,
		301: OutcomePermanent, 302: OutcomePermanent, 307: OutcomePermanent, 308: OutcomePermanent,
		400: OutcomePermanent, 401: OutcomePermanent, 403: OutcomePermanent, 404: OutcomePermanent,
		405: OutcomePermanent, 409: OutcomePermanent, 413: OutcomePermanent, 422: OutcomePermanent,
		408: OutcomeRetry, 429: OutcomeRetry, 500: OutcomeRetry, 501: OutcomeRetry, 502: OutcomeRetry,
		503: OutcomeRetry, 504: OutcomeRetry,
	} {
		require.Equal(t, want, Classify(code), "status %d", code)
	}
	require.Equal(t, "retried", OutcomeRetry.String())
}

func TestBackoffDuration(t *testing.T) {
	now := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	min, max := time.Second, 5*time.Minute
	top := func(n int64) int64 { return n - 1 }
	bottom := func(int64) int64 { return 0 }
	resp := func(code int, retryAfter string) *http.Response {
		h := http.Header{}
		if retryAfter != "" {
			h.Set("Retry-After", retryAfter)
		}
		return &http.Response{StatusCode: code, Header: h}
	}
	tests := []struct {
		name    string
		attempt int
		resp    *http.Response
		randN   func(int64) int64
		want    time.Duration
	}{
		{name: "first retry, network error", attempt: 0, randN: top, want: min},
		{name: "attempt 3, top of the jitter", attempt: 3, randN: top, want: 8 * time.Second},
		{name: "attempt 3, bottom of the jitter", attempt: 3, randN: bottom, want: min},
		{name: "capped at max", attempt: 12, randN: top, want: max},
		{name: "huge attempt does not overflow", attempt: 200, randN: top, want: max},
		{name: "500 ignores Retry-After", attempt: 1, resp: resp(500, "120"), randN: top, want: 2 * time.Second},
		{name: "429 seconds", attempt: 5, resp: resp(429, "7"), randN: top, want: 7 * time.Second},
		{name: "503 seconds", attempt: 0, resp: resp(503, "42"), randN: top, want: 42 * time.Second},
		{name: "429 http-date", resp: resp(429, now.Add(90*time.Second).Format(http.TimeFormat)), randN: top, want: 90 * time.Second},
		{name: "503 rfc850 date", resp: resp(503, now.Add(30*time.Second).Format(time.RFC850)), randN: top, want: 30 * time.Second},
		{name: "date in the past waits min", resp: resp(429, now.Add(-time.Hour).Format(http.TimeFormat)), randN: top, want: min},
		{name: "zero seconds waits min", resp: resp(429, "0"), randN: top, want: min},
		{name: "retry-after capped at max", resp: resp(429, "86400"), randN: top, want: max},
		{name: "invalid retry-after falls back", attempt: 2, resp: resp(429, "soon"), randN: top, want: 4 * time.Second},
		{name: "negative retry-after falls back", attempt: 2, resp: resp(503, "-5"), randN: bottom, want: min},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, backoffDuration(min, max, tt.attempt, tt.resp, now, tt.randN))
		})
	}
	// Real randomness stays within [min, min*2^attempt].
	r := func(n int64) int64 { return time.Now().UnixNano() % n }
	for attempt := 0; attempt < 10; attempt++ {
		d := backoffDuration(min, max, attempt, nil, now, r)
		require.GreaterOrEqual(t, d, min)
		require.LessOrEqual(t, d, min<<attempt)
	}
}

// server is an httptest server whose handler is set per test and which
// counts requests.
type server struct {
	*httptest.Server
	requests atomic.Int64
}

func newServer(t testing.TB, h http.HandlerFunc) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		h(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// TestRetryAfterHonoured runs on a fake clock: each retry waits for
// Retry-After (seconds or a date, on 429 and 503) or the backoff (on 500),
// and the scheduler, not a worker, does the waiting.
func TestRetryAfterHonoured(t *testing.T) {
	var c *fakeClock
	var n atomic.Int64
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) {
		case 1:
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusTooManyRequests)
		case 2:
			w.Header().Set("Retry-After", c.Now().Add(37*time.Second).Format(http.TimeFormat))
			w.WriteHeader(http.StatusServiceUnavailable)
		case 3:
			w.Header().Set("Retry-After", "3") // ignored on 500
			w.WriteHeader(http.StatusInternalServerError)
		default:
			w.WriteHeader(http.StatusAccepted)
		}
	})
	s, _, clk, h := newClockSender(t, Config{
		Endpoints:    []Endpoint{{Name: "default", URL: srv.URL + "/v2/incidents/api/" + secretKey}},
		RetryWaitMin: time.Second, RetryWaitMax: time.Minute,
	})
	c = clk
	p, err := s.Open(udf.Destination{})
	require.NoError(t, err)
	require.NoError(t, p.Publish(udf.Event{ID: "a", Level: udf.Critical}))

	// randN returns n/2: attempt 3 waits 1s + (4s-1s)/2, rounded down to the nanosecond.
	want := []time.Duration{2 * time.Second, 37 * time.Second, time.Second + (3*time.Second+1)/2}
	for i, wait := range want {
		var due time.Time
		require.Eventually(t, func() bool { due = waitingDue(s)["a"]; return due.After(c.Now()) }, 10*time.Second, time.Millisecond)
		require.Equal(t, c.Now().Add(wait), due, "retry %d", i+1)
		require.Equal(t, int64(i+1), srv.requests.Load(), "no attempt before the wait is over")
		c.Advance(wait)
	}
	require.Eventually(t, func() bool { return s.Stats().Delivered == 1 }, 10*time.Second, time.Millisecond)
	require.Equal(t, want, h.recorded())
	require.Equal(t, int64(4), srv.requests.Load())
	require.Equal(t, uint64(3), s.Stats().Retried)
}

// TestDeliveryOutcomes runs a delivery against a server answering one
// status, on a fake clock, and checks the attempts made and the final log:
// a permanent answer dead-letters the event at once; a retryable one is
// retried until MaxAge, and the attempt at that age is the last.
func TestDeliveryOutcomes(t *testing.T) {
	tests := []struct {
		status       int
		wantAttempts int64
		wantOK       bool
		wantReason   string
	}{
		{status: 200, wantAttempts: 1, wantOK: true},
		{status: 202, wantAttempts: 1, wantOK: true},
		{status: 400, wantAttempts: 1, wantReason: "permanent failure"},
		{status: 404, wantAttempts: 1, wantReason: "permanent failure"},
		{status: 413, wantAttempts: 1, wantReason: "permanent failure"},
		{status: 302, wantAttempts: 1, wantReason: "permanent failure"},
		{status: 408, wantAttempts: 2, wantReason: "max age exceeded"},
		{status: 429, wantAttempts: 2, wantReason: "max age exceeded"},
		{status: 500, wantAttempts: 2, wantReason: "max age exceeded"},
		{status: 503, wantAttempts: 2, wantReason: "max age exceeded"},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.status), func(t *testing.T) {
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				if tt.status == 302 {
					w.Header().Set("Location", "/elsewhere")
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, "reply body")
			})
			s, logs, clk, _ := newClockSender(t, Config{
				Endpoints:    []Endpoint{{Name: "primary", URL: srv.URL + "/v2/incidents/api/" + secretKey}},
				RetryWaitMin: time.Second, RetryWaitMax: time.Minute, MaxAge: time.Hour,
			})
			p, err := s.Open(udf.Destination{Endpoint: "primary"})
			require.NoError(t, err)
			require.NoError(t, p.Publish(udf.Event{ID: "cpu:nil", TaskID: "t1", Level: udf.Warning}))
			if tt.wantAttempts > 1 {
				require.Eventually(t, func() bool { return !waitingDue(s)["cpu:nil"].IsZero() }, 10*time.Second, time.Millisecond)
				clk.Advance(2 * time.Hour) // the next attempt is capped at the max age
			}
			require.Eventually(t, func() bool { st := s.Stats(); return st.Delivered+st.DeadLettered == 1 }, 10*time.Second, time.Millisecond)
			closeAndWait(t, s)

			require.Equal(t, tt.wantAttempts, srv.requests.Load())
			st := s.Stats()
			require.Equal(t, uint64(1), st.Published)
			require.Equal(t, uint64(tt.wantAttempts-1), st.Retried)
			require.Zero(t, st.Queued)
			require.Zero(t, st.Pending)
			if tt.wantOK {
				require.Equal(t, Stats{Published: 1, Delivered: 1, Retried: 0}, st)
				ok := entriesWith(logs, "squadcast event delivered")
				require.Len(t, ok, 1)
				require.Equal(t, "debug", ok[0].Level.String())
				require.Empty(t, entriesWith(logs, "squadcast event dead-lettered"))
				return
			}
			require.Equal(t, uint64(1), st.DeadLettered)
			checkDeadLetter(t, s, logs, tt.status, tt.wantAttempts, tt.wantReason)
		})
	}
}

// checkDeadLetter checks the dead letter of TestDeliveryOutcomes: its log
// entry (with everything about it but a secret), and its record.
func checkDeadLetter(t *testing.T, s *Sender, logs *observer.ObservedLogs, status int, attempts int64, reason string) {
	failed := entriesWith(logs, "squadcast event dead-lettered")
	require.Len(t, failed, 1)
	require.Equal(t, "error", failed[0].Level.String())
	f := failed[0].ContextMap()
	require.Equal(t, "primary", f["endpoint"])
	require.Equal(t, "cpu:nil", f["incident"])
	require.Equal(t, "WARNING", f["level"])
	require.Equal(t, "t1", f["task"])
	require.Equal(t, attempts, f["attempts"])
	require.Equal(t, int64(status), f["status"])
	require.Equal(t, reason, f["reason"])
	require.Equal(t, "reply body", f["response"])
	require.Len(t, entriesWith(logs, "squadcast delivery attempt failed, will retry"), int(attempts-1))
	assertNoSecret(t, logs, secretKey, secretPath)

	o, err := OpenOutbox(OutboxPath(s.cfg.DataDir), true)
	require.NoError(t, err)
	defer o.Close()
	l := listOutbox(t, o)
	require.Len(t, l, 1)
	require.Equal(t, StateDead, l[0].State)
	require.Equal(t, reason, l[0].DeadReason)
	require.Equal(t, int(attempts), l[0].Attempts)
	require.Equal(t, (&StatusError{StatusCode: status}).Error()+": reply body", l[0].LastError)
}

// TestRequest checks what is sent: method, headers and the rendered body.
func TestRequest(t *testing.T) {
	type got struct {
		method, ctype, ua, path string
		body                    []byte
	}
	ch := make(chan got, 2)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ch <- got{r.Method, r.Header.Get("Content-Type"), r.Header.Get("User-Agent"), r.URL.Path, b}
	})
	s, _, _ := newTestSender(t, Config{
		Endpoints: []Endpoint{
			{Name: "k", URL: srv.URL + "/v1/incidents/kapacitor/" + secretKey},
			{Name: "w", URL: srv.URL + "/v2/incidents/api/" + secretKey, Format: FormatIncidentWebhook},
		},
		UserAgent: "test-agent/1",
	})
	ev := kapacitorEvents["warning with tags, html and unicode"]
	for _, name := range []string{"k", "w"} {
		p, err := s.Open(udf.Destination{Endpoint: name})
		require.NoError(t, err)
		require.NoError(t, p.Publish(ev))
		r := <-ch
		pub := p.(*publisher)
		want, err := render(pub.t.format, ev, &pub.inc) // with the task's default priorities
		require.NoError(t, err)
		require.Equal(t, http.MethodPost, r.method)
		require.Equal(t, "application/json", r.ctype)
		require.Equal(t, "test-agent/1", r.ua)
		require.Equal(t, string(want), string(r.body))
	}
}

// TestRedirects: 307/308 are followed with the body; 301/302/303 are not
// (they would turn the POST into a GET) and are permanent; loops stop.
func TestRedirects(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, r.Method+" "+r.URL.Path+" "+string(b))
		mu.Unlock()
		switch r.URL.Path {
		case "/307/" + secretKey:
			http.Redirect(w, r, "/final/"+secretKey, http.StatusTemporaryRedirect)
		case "/loop/" + secretKey:
			http.Redirect(w, r, "/loop/"+secretKey, http.StatusPermanentRedirect)
		case "/302/" + secretKey:
			http.Redirect(w, r, "/final/"+secretKey, http.StatusFound)
		case "/final/" + secretKey:
			w.WriteHeader(http.StatusOK)
		}
	})
	s, logs, _ := newTestSender(t, Config{})
	for _, path := range []string{"/307/", "/302/", "/loop/"} {
		p, err := s.Open(udf.Destination{URL: srv.URL + path + secretKey, Format: FormatIncidentWebhook})
		require.NoError(t, err)
		require.NoError(t, p.Publish(udf.Event{ID: path, Message: "m", Details: "d", Level: udf.Critical}))
	}
	closeAndWait(t, s)

	st := s.Stats()
	require.Equal(t, uint64(1), st.Delivered)
	require.Equal(t, uint64(2), st.DeadLettered)
	require.Zero(t, st.Retried, "neither a 302 nor a redirect loop is retried")
	mu.Lock()
	defer mu.Unlock()
	finals := 0
	for _, b := range bodies {
		// The task gives no .priority(): CRITICAL has the default, P1.
		if b == "POST /final/"+secretKey+" "+`{"message":"m","description":"d","tags":{"level":"CRITICAL"},"status":"trigger","event_id":"/307/","priority":"P1"}`+"\n" {
			finals++
		}
		require.NotContains(t, b, "GET", "a redirect never turns the POST into a GET")
	}
	require.Equal(t, 1, finals, "307 followed with its body: %q", bodies)
	failed := entriesWith(logs, "squadcast event dead-lettered")
	require.Len(t, failed, 2)
	reasons := map[string]string{}
	for _, e := range failed {
		reasons[e.ContextMap()["incident"].(string)] = e.ContextMap()["error"].(string)
	}
	require.Contains(t, reasons["/302/"], "http status 302")
	require.Contains(t, reasons["/loop/"], "stopped after 10 redirects")
	assertNoSecret(t, logs, secretKey)
}

func TestStatusAndDeliveryErrorText(t *testing.T) {
	require.Equal(t, "http status 503 Service Unavailable", (&StatusError{StatusCode: 503}).Error())
	require.Equal(t, "http status 599", (&StatusError{StatusCode: 599}).Error())
	de := &DeliveryError{Attempts: 3, Err: &StatusError{StatusCode: 429}}
	require.Equal(t, "delivery attempt 3 failed: http status 429 Too Many Requests", de.Error())
	var se *StatusError
	require.True(t, errors.As(de, &se))
	require.Equal(t, "http status 429 Too Many Requests", de.summary())
	de.Body = "slow\n  down " + strings.Repeat("é", 300)
	sum := de.summary()
	require.True(t, strings.HasPrefix(sum, "http status 429 Too Many Requests: slow down éé"), sum)
	require.True(t, strings.HasSuffix(sum, "…"), sum)
	require.True(t, utf8.ValidString(sum))
	require.LessOrEqual(t, len(sum), len("http status 429 Too Many Requests: ")+maxSummaryBody+len("…"))
}
