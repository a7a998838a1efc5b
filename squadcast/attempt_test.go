package squadcast

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// roundTripFunc is a RoundTripper answering without a network.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// testAttempter is an attempter through rt, on a fixed clock, whose
// backoff picks the middle of the jitter and waits at least RetryWaitMin=1s.
func testAttempter(rt http.RoundTripper) *attempter {
	c := newFakeClock()
	return newAttempter(rt, Config{UserAgent: "test-agent/1", RetryWaitMin: time.Second, RetryWaitMax: time.Minute},
		hooks{clock: c, randN: func(n int64) int64 { return n / 2 }})
}

func testRequest(url string) attemptRequest {
	return attemptRequest{url: url, body: []byte(`{}`), timeout: time.Second, attempt: 1, secrets: urlSecrets(url)}
}

// TestAttemptEveryStatus: every status 100..599 gives the outcome Classify
// says, its status, and for a failure the start of the body and a wait
// before a retry; 429, and 503 with Retry-After, throttle the endpoint.
func TestAttemptEveryStatus(t *testing.T) {
	url := "https://api.squadcast.com/v2/incidents/api/" + secretKey
	for code := 100; code <= 599; code++ {
		for _, retryAfter := range []string{"", "7"} {
			var closed atomic.Bool
			a := testAttempter(roundTripFunc(func(r *http.Request) (*http.Response, error) {
				h := http.Header{}
				if retryAfter != "" {
					h.Set("Retry-After", retryAfter)
				}
				body := &closeRecorder{Reader: strings.NewReader("reply " + secretKey), closed: &closed}
				return &http.Response{StatusCode: code, Header: h, Body: body, Request: r}, nil
			}))
			res := a.attempt(context.Background(), testRequest(url))
			want := Classify(code)
			require.Equal(t, want, res.outcome, "status %d", code)
			require.Equal(t, code, res.status, "status %d", code)
			require.True(t, closed.Load(), "status %d: the body is closed", code)
			if want == OutcomeDelivered {
				require.Nil(t, res.err, "status %d", code)
				require.Zero(t, res.wait)
				continue
			}
			require.NotNil(t, res.err, "status %d", code)
			require.Equal(t, code, res.err.StatusCode)
			require.Equal(t, 1, res.err.Attempts)
			require.Equal(t, "reply [redacted]", res.err.Body)
			require.ErrorIs(t, res.err, res.err.Err)
			var se *StatusError
			require.ErrorAs(t, res.err, &se)
			require.Equal(t, code, se.StatusCode)
			wantThrottled := code == 429 || (code == 503 && retryAfter != "")
			require.Equal(t, wantThrottled, res.throttled, "status %d, Retry-After %q", code, retryAfter)
			switch {
			case want != OutcomeRetry:
				require.Zero(t, res.wait, "status %d", code)
			case (code == 429 || code == 503) && retryAfter != "":
				require.Equal(t, 7*time.Second, res.wait, "status %d: Retry-After", code)
			default:
				require.Equal(t, time.Second, res.wait, "status %d: a first retry waits RetryWaitMin", code)
			}
		}
	}
}

type closeRecorder struct {
	io.Reader
	closed *atomic.Bool
}

func (c *closeRecorder) Close() error { c.closed.Store(true); return nil }

// TestAttemptRequest: a POST of the body with the endpoint's headers,
// Content-Type application/json and the User-Agent unless they set one.
func TestAttemptRequest(t *testing.T) {
	var got *http.Request
	var body []byte
	a := testAttempter(roundTripFunc(func(r *http.Request) (*http.Response, error) {
		got = r
		body, _ = io.ReadAll(r.Body)
		return &http.Response{StatusCode: 202, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
	}))
	req := testRequest("https://api.squadcast.com/v2/incidents/api/" + secretKey)
	req.headers = map[string]string{"X-Team": "infra", "Content-Type": "text/plain"}
	req.body = []byte(`{"a":1}`)
	res := a.attempt(context.Background(), req)
	require.Equal(t, OutcomeDelivered, res.outcome)
	require.Equal(t, http.MethodPost, got.Method)
	assert.Equal(t, "application/json", got.Header.Get("Content-Type"))
	assert.Equal(t, "infra", got.Header.Get("X-Team"))
	assert.Equal(t, "test-agent/1", got.Header.Get("User-Agent"))
	assert.Equal(t, `{"a":1}`, string(body))

	req.headers = map[string]string{"User-Agent": "team-agent"}
	a.attempt(context.Background(), req)
	assert.Equal(t, "team-agent", got.Header.Get("User-Agent"))
}

// TestAttemptErrors: network errors are retried, certificate errors and
// redirect loops are not; a timeout is an AttemptTimeoutError; the
// Sender's context ending aborts. No error shows the URL's secrets.
func TestAttemptErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	refused := "http://" + ln.Addr().String() + "/v2/incidents/api/" + secretKey + "?token=" + querySecret
	require.NoError(t, ln.Close())
	transport := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(transport.CloseIdleConnections)

	var errs []error
	res := testAttempter(transport).attempt(context.Background(), testRequest(refused))
	errs = append(errs, res.err)
	require.Equal(t, OutcomeRetry, res.outcome)
	require.Equal(t, time.Second, res.wait)
	require.ErrorContains(t, res.err, "connection refused")
	require.Zero(t, res.status)

	certErr := roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, x509.UnknownAuthorityError{} })
	res = testAttempter(certErr).attempt(context.Background(), testRequest(refused))
	require.Equal(t, OutcomePermanent, res.outcome)
	require.Zero(t, res.wait)
	errs = append(errs, res.err)

	loop := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		h := http.Header{"Location": {r.URL.String()}}
		return &http.Response{StatusCode: 308, Header: h, Body: http.NoBody, Request: r}, nil
	})
	res = testAttempter(loop).attempt(context.Background(), testRequest(refused))
	require.Equal(t, OutcomePermanent, res.outcome)
	require.ErrorIs(t, res.err, errTooManyRedirects)
	errs = append(errs, res.err)

	hang := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		<-r.Context().Done()
		return nil, context.Cause(r.Context())
	})
	req := testRequest(refused)
	req.timeout = 20 * time.Millisecond
	res = testAttempter(hang).attempt(context.Background(), req)
	require.Equal(t, OutcomeRetry, res.outcome)
	var te *AttemptTimeoutError
	require.ErrorAs(t, res.err, &te)
	require.Equal(t, req.timeout, te.Timeout)
	require.ErrorContains(t, res.err, "attempt timed out after 20ms")
	errs = append(errs, res.err)

	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(ErrAborted)
	res = testAttempter(hang).attempt(ctx, testRequest(refused))
	require.Equal(t, OutcomeAborted, res.outcome)
	require.ErrorIs(t, res.err, ErrAborted)
	errs = append(errs, res.err)

	for _, e := range errs {
		for ; e != nil; e = errors.Unwrap(e) {
			require.NotContains(t, e.Error(), secretKey)
			require.NotContains(t, e.Error(), querySecret)
		}
	}
}

// TestAttemptBadURL: a request that cannot be built fails permanently.
func TestAttemptBadURL(t *testing.T) {
	res := testAttempter(http.DefaultTransport).attempt(context.Background(), testRequest("http://\x7f/"))
	require.Equal(t, OutcomePermanent, res.outcome)
	require.ErrorContains(t, res.err, "build request")
	require.Equal(t, 1, res.err.Attempts)
}

// TestOutcomeText: the result labels of the metrics and the reasons of
// the dead letters.
func TestOutcomeText(t *testing.T) {
	for o, want := range map[Outcome][2]string{
		OutcomeDelivered: {"delivered", ""},
		OutcomeRetry:     {"retried", ""},
		OutcomePermanent: {"dead_lettered", "permanent failure"},
		OutcomeExpired:   {"dead_lettered", "max age exceeded"},
		OutcomeAborted:   {"aborted", ""},
	} {
		assert.Equal(t, want[0], o.String())
		assert.Equal(t, want[1], o.DeadReason())
		assert.Equal(t, want[1] != "", o.DeadLettered())
	}
	assert.Equal(t, "unknown", Outcome(-1).String())
}

// TestBackoffPolicy: the Backoff reads the clock for Retry-After dates and
// hands its result to the wait hook.
func TestBackoffPolicy(t *testing.T) {
	c := newFakeClock()
	var seen []time.Duration
	b := backoffPolicy(c, func(n int64) int64 { return n - 1 }, func(d time.Duration) time.Duration {
		seen = append(seen, d)
		return time.Microsecond
	})
	resp := &http.Response{StatusCode: 429, Header: http.Header{"Retry-After": {c.Now().Add(90 * time.Second).Format(http.TimeFormat)}}}
	require.Equal(t, time.Microsecond, b(time.Second, time.Hour, 0, resp))
	require.Equal(t, time.Microsecond, b(time.Second, time.Hour, 3, nil))
	require.Equal(t, []time.Duration{90 * time.Second, 8 * time.Second}, seen)

	require.Equal(t, 8*time.Second, backoffPolicy(c, func(n int64) int64 { return n - 1 }, nil)(time.Second, time.Hour, 3, nil))
}
