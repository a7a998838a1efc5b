package squadcast

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

func TestParseRateLimit(t *testing.T) {
	good := []struct {
		in   string
		want RateLimit
		str  string
	}{
		{in: "300/m", want: RateLimit{300, time.Minute}, str: "300/m"},
		{in: "15/m", want: RateLimit{15, time.Minute}, str: "15/m"},
		{in: "5/s", want: RateLimit{5, time.Second}, str: "5/s"},
		{in: "1000/h", want: RateLimit{1000, time.Hour}, str: "1000/h"},
		{in: " 7 / s ", want: RateLimit{7, time.Second}, str: "7/s"},
		{in: "1000000/s", want: RateLimit{1000000, time.Second}, str: "1000000/s"},
		{in: "", want: RateLimit{}, str: "none"},
		{in: "none", want: RateLimit{}, str: "none"},
		{in: "NONE", want: RateLimit{}, str: "none"},
	}
	for _, tt := range good {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRateLimit(tt.in)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.str, got.String())
			again, err := ParseRateLimit(got.String())
			require.NoError(t, err)
			require.Equal(t, got, again, "String round-trips")
			var v RateLimit
			require.NoError(t, v.Set(tt.in))
			require.Equal(t, tt.want, v)
		})
	}
	bad := []struct{ in, want string }{
		{in: "5", want: `rate limit "5": want N/s, N/m or N/h`},
		{in: "5/d", want: `rate limit "5/d": unknown unit "d"`},
		{in: "5/min", want: `unknown unit "min"`},
		{in: "0/s", want: "count must be a whole number from 1 to 1000000"},
		{in: "-1/s", want: "count must be a whole number"},
		{in: "1.5/s", want: "count must be a whole number"},
		{in: "x/m", want: "count must be a whole number"},
		{in: "1000001/s", want: "count must be a whole number"},
		{in: "/m", want: "count must be a whole number"},
	}
	for _, tt := range bad {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParseRateLimit(tt.in)
			require.ErrorContains(t, err, tt.want)
			require.ErrorIs(t, err, errRateSyntax)
			var v RateLimit
			require.Error(t, v.Set(tt.in))
		})
	}
	require.InDelta(t, 5.0, float64(RateLimit{300, time.Minute}.limit()), 1e-9)
	require.True(t, RateLimit{5, time.Second}.stricter(RateLimit{}))
	require.True(t, RateLimit{15, time.Minute}.stricter(RateLimit{300, time.Minute}))
	require.False(t, RateLimit{}.stricter(RateLimit{15, time.Minute}))
}

// recorder is a server that answers 200 and records the alert ids it got,
// in order; answer, when set, picks another status for a request.
type recorder struct {
	*server
	mu     sync.Mutex
	ids    []string
	answer func(id string, w http.ResponseWriter) bool // true when it answered
}

func newRecorder(t *testing.T) *recorder {
	rec := &recorder{}
	rec.server = newServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var body webhookBody
		_ = json.Unmarshal(b, &body)
		id := body.EventID + "/" + body.Description
		rec.mu.Lock()
		answer := rec.answer
		rec.ids = append(rec.ids, id)
		rec.mu.Unlock()
		if answer != nil && answer(id, w) {
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	return rec
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ids...)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ids)
}

func webhookEvent(id string, n int) udf.Event {
	return udf.Event{ID: id, Message: "m", Details: fmt.Sprint(n), Level: udf.Critical}
}

// settle waits until s, on a fake clock that does not move, can do
// nothing more: every event is scheduled, and none is due, ready or in flight.
func settle(t *testing.T, s *Sender) {
	t.Helper()
	require.Eventually(t, func() bool { return settled(s) }, 10*time.Second, time.Millisecond)
}

// TestRateLimit: with a limit of 5/s (one request every 200ms), on a fake
// clock that the test moves, exactly one request more goes per 200ms,
// whatever the number of workers; an endpoint without a limit is not held up.
func TestRateLimit(t *testing.T) {
	limited, free := newRecorder(t), newRecorder(t)
	s, _, clk, _ := newClockSender(t, Config{
		Endpoints: []Endpoint{
			{Name: "limited", URL: limited.URL + "/k/" + secretKey, Format: FormatIncidentWebhook, RateLimit: RateLimit{5, time.Second}},
			{Name: "free", URL: free.URL + "/k/" + secretKey, Format: FormatIncidentWebhook},
		},
		Workers: 4,
	})
	pl, err := s.Open(udf.Destination{Endpoint: "limited"})
	require.NoError(t, err)
	pf, err := s.Open(udf.Destination{Endpoint: "free"})
	require.NoError(t, err)
	for i := range 20 {
		require.NoError(t, pl.Publish(webhookEvent(fmt.Sprintf("l%02d", i), 0)))
		require.NoError(t, pf.Publish(webhookEvent(fmt.Sprintf("f%02d", i), 0)))
	}
	require.NoError(t, flushNow(pl))
	require.NoError(t, flushNow(pf))
	settle(t, s)
	require.Equal(t, 20, free.count(), "no limit, no wait")
	require.Equal(t, 1, limited.count(), "the bucket holds one token")

	clk.Advance(time.Second)
	settle(t, s)
	require.Equal(t, 6, limited.count(), "5 more in a second")
	clk.Advance(999 * time.Millisecond)
	settle(t, s)
	require.Equal(t, 10, limited.count(), "4 in the next 999ms")
	clk.Advance(time.Millisecond)
	settle(t, s)
	require.Equal(t, 11, limited.count())
	clk.Advance(time.Hour)
	settle(t, s)
	require.Equal(t, 20, limited.count(), "a backlog does not become a burst: it was spaced while waiting")
	require.Equal(t, uint64(40), s.Stats().Delivered)
}

// TestRateLimitInheritedByInlineURL: an inline URL takes the rate limit
// of the endpoint it names (each URL its own bucket); URLs shared by
// endpoints get the strictest limit.
func TestRateLimitInheritedByInlineURL(t *testing.T) {
	s, _, _ := newTestSender(t, Config{Endpoints: []Endpoint{
		{Name: "default", URL: secretURL, RateLimit: RateLimit{15, time.Minute}},
		{Name: "same", URL: secretURL, RateLimit: RateLimit{300, time.Minute}},
		{Name: "none", URL: "https://x.example/k/" + secretKey},
	}})
	p, err := s.Open(udf.Destination{URL: "https://y.example/k/" + secretKey})
	require.NoError(t, err)
	tg := p.(*publisher).t
	require.Equal(t, RateLimit{15, time.Minute}, tg.rate)
	require.Equal(t, "default", tg.settings)
	p, err = s.Open(udf.Destination{Endpoint: "none", URL: "https://y.example/k/" + secretKey})
	require.NoError(t, err)
	require.True(t, p.(*publisher).t.rate.IsZero())

	s.sched.mu.Lock()
	defer s.sched.mu.Unlock()
	a := s.sched.throttle(secretURL, RateLimit{300, time.Minute})
	b := s.sched.throttle(secretURL, RateLimit{15, time.Minute})
	c := s.sched.throttle(secretURL, RateLimit{})
	require.Same(t, a, b)
	require.Same(t, a, c)
	require.Equal(t, RateLimit{15, time.Minute}, a.limit)
	require.Equal(t, 4*time.Second, a.interval, "15/m: one request every 4s")
}

// TestThrottlePausesEndpoint: a 429 with Retry-After pauses every incident
// of that endpoint (URL) until then, but not another endpoint's.
func TestThrottlePausesEndpoint(t *testing.T) {
	a, b := newRecorder(t), newRecorder(t)
	var throttled atomic.Bool
	a.answer = func(id string, w http.ResponseWriter) bool {
		if id == "x/0" && !throttled.Swap(true) {
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(http.StatusTooManyRequests)
			return true
		}
		return false
	}
	s, logs, clk, _ := newClockSender(t, Config{
		Endpoints: []Endpoint{
			{Name: "a", URL: a.URL + "/k/" + secretKey, Format: FormatIncidentWebhook},
			{Name: "b", URL: b.URL + "/k/" + secretKey, Format: FormatIncidentWebhook},
		},
		Workers:      1,
		RetryWaitMin: time.Second, RetryWaitMax: 5 * time.Minute,
	})
	pa, err := s.Open(udf.Destination{Endpoint: "a"})
	require.NoError(t, err)
	pb, err := s.Open(udf.Destination{Endpoint: "b"})
	require.NoError(t, err)
	require.NoError(t, pa.Publish(webhookEvent("x", 0)))
	require.NoError(t, flushNow(pa))
	require.Eventually(t, func() bool { return !waitingDue(s)["x"].IsZero() }, 10*time.Second, time.Millisecond)

	// y was not even tried; z, on another endpoint, was delivered.
	require.NoError(t, pa.Publish(webhookEvent("y", 0)))
	require.NoError(t, pb.Publish(webhookEvent("z", 0)))
	require.NoError(t, flushNow(pa))
	require.NoError(t, flushNow(pb))
	require.Eventually(t, func() bool { return b.count() == 1 }, 10*time.Second, time.Millisecond)
	settle(t, s)
	require.Equal(t, []string{"x/0"}, a.got())
	until := clockStart.Add(30 * time.Second)
	require.Equal(t, map[string]time.Time{"x": until, "y": until}, waitingDue(s))
	retry := entriesWith(logs, "squadcast delivery attempt failed, will retry")
	require.Len(t, retry, 1)
	require.Equal(t, true, retry[0].ContextMap()["endpoint_paused"])

	clk.Advance(29 * time.Second)
	settle(t, s)
	require.Equal(t, 1, a.count(), "still paused")
	clk.Advance(time.Second)
	require.Eventually(t, func() bool { return a.count() == 3 }, 10*time.Second, time.Millisecond)
	require.ElementsMatch(t, []string{"x/0", "x/0", "y/0"}, a.got())
}

// TestLongBackoffDoesNotBlock: with one worker, an incident waiting out a
// long backoff holds neither the worker nor the other incidents.
func TestLongBackoffDoesNotBlock(t *testing.T) {
	rec := newRecorder(t)
	rec.answer = func(id string, w http.ResponseWriter) bool {
		if strings.HasPrefix(id, "slow/") {
			w.WriteHeader(http.StatusBadGateway)
			return true
		}
		return false
	}
	s, _, clk, fh := newClockSender(t, Config{
		Endpoints:    []Endpoint{{Name: "default", URL: rec.URL + "/k/" + secretKey, Format: FormatIncidentWebhook}},
		Workers:      1,
		RetryWaitMin: time.Minute, RetryWaitMax: time.Hour,
	})
	p, err := s.Open(udf.Destination{})
	require.NoError(t, err)
	require.NoError(t, p.Publish(webhookEvent("slow", 0)))
	require.NoError(t, p.Publish(webhookEvent("slow", 1)))
	for i := range 10 {
		require.NoError(t, p.Publish(webhookEvent(fmt.Sprintf("fast%d", i), 0)))
	}
	require.NoError(t, flushNow(p))
	require.Eventually(t, func() bool { return s.Stats().Delivered == 10 }, 10*time.Second, time.Millisecond)
	settle(t, s)
	require.Equal(t, []time.Duration{time.Minute}, fh.recorded(), "one failed attempt, a minute's backoff")
	require.Equal(t, map[string]time.Time{"slow": clockStart.Add(time.Minute)}, waitingDue(s))
	require.Equal(t, "slow/0", rec.got()[0])
	require.NotContains(t, rec.got(), "slow/1", "order: the incident's next event waits for its head")

	// The backoff grows: 1m, then 1m + (2m-1m)/2 (randN picks the middle).
	clk.Advance(time.Minute)
	require.Eventually(t, func() bool { return len(fh.recorded()) == 2 }, 10*time.Second, time.Millisecond)
	require.Equal(t, time.Minute+30*time.Second, fh.recorded()[1])
	require.Equal(t, uint64(1), s.Stats().Retried)
}

// TestRateLimitPriority: under a rate limit, each slot goes to the waiting
// incident whose next event matters most: CRITICAL triggers, then
// resolves, then WARNING, then INFO, oldest first within a class; the
// events of one incident keep their order. With FirstInFirstOut (the
// baseline make bench measures priority against), in the order they came.
func TestRateLimitPriority(t *testing.T) {
	for _, tc := range []struct {
		name string
		fifo bool
		want []string
	}{
		{"priority", false, []string{"w0/0", "c/0", "r/0", "w1/0", "w2/0", "w3/0", "w4/0", "x/0", "x/1", "i/0"}},
		{"first-in-first-out", true, []string{"w0/0", "w1/0", "w2/0", "w3/0", "w4/0", "x/0", "x/1", "i/0", "r/0", "c/0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder(t)
			s, _, clk, _ := newClockSender(t, Config{
				Endpoints:       []Endpoint{{Name: "limited", URL: rec.URL + "/k/" + secretKey, Format: FormatIncidentWebhook, RateLimit: RateLimit{5, time.Second}}},
				Workers:         4,
				FirstInFirstOut: tc.fifo,
			})
			p, err := s.Open(udf.Destination{Endpoint: "limited"})
			require.NoError(t, err)
			event := func(id string, n int, l udf.Level) {
				ev := webhookEvent(id, n)
				ev.Level = l
				require.NoError(t, p.Publish(ev))
			}
			for i := range 5 {
				event(fmt.Sprintf("w%d", i), 0, udf.Warning)
			}
			event("x", 0, udf.Warning) // then CRITICAL: its events keep their order
			event("x", 1, udf.Critical)
			require.NoError(t, flushNow(p))
			settle(t, s)
			require.Equal(t, []string{"w0/0"}, rec.got(), "the bucket holds one token")

			// Later events, more important than the backlog of warnings.
			event("i", 0, udf.Info)
			event("r", 0, udf.OK)
			event("c", 0, udf.Critical)
			require.NoError(t, flushNow(p))
			settle(t, s)
			for range 10 {
				clk.Advance(200 * time.Millisecond)
				settle(t, s)
			}
			require.Equal(t, tc.want, rec.got())
		})
	}
}

// TestPauseReleasesByPriority: when a throttling pause ends, the waiting
// incidents go in the order of their importance, not of their arrival.
func TestPauseReleasesByPriority(t *testing.T) {
	rec := newRecorder(t)
	var throttled atomic.Bool
	throttled.Store(true)
	rec.answer = func(id string, w http.ResponseWriter) bool {
		if id == "first/0" && throttled.CompareAndSwap(true, false) {
			w.Header().Set("Retry-After", "10")
			w.WriteHeader(http.StatusTooManyRequests)
			return true
		}
		return false
	}
	s, _, clk, _ := newClockSender(t, Config{
		Endpoints: []Endpoint{{Name: "default", URL: rec.URL + "/k/" + secretKey, Format: FormatIncidentWebhook}},
		Workers:   1,
	})
	p, err := s.Open(udf.Destination{})
	require.NoError(t, err)
	first := webhookEvent("first", 0)
	first.Level = udf.Info
	require.NoError(t, p.Publish(first))
	require.NoError(t, flushNow(p))
	require.Eventually(t, func() bool { return rec.count() == 1 }, 10*time.Second, time.Millisecond)
	settle(t, s) // the endpoint is paused for 10s
	for i, l := range []udf.Level{udf.Info, udf.Warning, udf.OK, udf.Critical} {
		ev := webhookEvent(fmt.Sprintf("e%d", i), 0)
		ev.Level = l
		require.NoError(t, p.Publish(ev))
	}
	require.NoError(t, flushNow(p))
	settle(t, s)
	require.Equal(t, 1, rec.count(), "paused")
	clk.Advance(11 * time.Second)
	require.Eventually(t, func() bool { return rec.count() == 6 }, 10*time.Second, time.Millisecond)
	require.Equal(t, []string{"first/0", "e3/0", "e2/0", "e1/0", "first/0", "e0/0"}, rec.got(),
		"CRITICAL, resolve, WARNING, then the INFO ones, the oldest (the retried one) first")
}
