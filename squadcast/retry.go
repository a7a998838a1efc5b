package squadcast

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Outcome is what an HTTP status means for a delivery.
type Outcome int

const (
	// OutcomeDelivered means the event was accepted (2xx).
	OutcomeDelivered Outcome = iota
	// OutcomeRetry means the attempt may succeed later: 408, 429 and 5xx.
	OutcomeRetry
	// OutcomePermanent means retrying cannot help: 1xx, 3xx (after any
	// redirect that was followed), 4xx other than 408 and 429, and any
	// status outside 100..599.
	OutcomePermanent
)

// String returns "delivered", "retry" or "permanent".
func (o Outcome) String() string {
	switch o {
	case OutcomeDelivered:
		return "delivered"
	case OutcomeRetry:
		return "retry"
	case OutcomePermanent:
		return "permanent"
	}
	return "unknown"
}

// Classify says what an HTTP status means for a delivery. Squadcast does not
// document its throttling status or Retry-After; 429 and 5xx are retried as
// the usual signals of throttling and outages, 408 because the request may
// simply be sent again. 413 (body over 30 KB) and the other 4xx are
// permanent: the same body would be refused again.
func Classify(status int) Outcome {
	switch {
	case status >= 200 && status <= 299:
		return OutcomeDelivered
	case status == http.StatusRequestTimeout, status == http.StatusTooManyRequests:
		return OutcomeRetry
	case status >= 500 && status <= 599:
		return OutcomeRetry
	}
	return OutcomePermanent
}

// StatusError is an HTTP response that was not a success.
type StatusError struct {
	// StatusCode is the response's status code.
	StatusCode int
}

// Error returns a message like "http status 503 Service Unavailable".
func (e *StatusError) Error() string {
	if t := http.StatusText(e.StatusCode); t != "" {
		return fmt.Sprintf("http status %d %s", e.StatusCode, t)
	}
	return fmt.Sprintf("http status %d", e.StatusCode)
}

// DeliveryError is the error of a failed delivery attempt. It never holds
// the webhook URL's path or query.
type DeliveryError struct {
	// Attempts is the number of HTTP attempts made for the event so far.
	Attempts int
	// StatusCode is the response's status, 0 when there was none.
	StatusCode int
	// Body is the start of the error response's body (at most 4 KiB,
	// redacted), for the log.
	Body string
	// Err is the cause: a *StatusError, a (redacted) *url.Error, or the
	// context's cause when the attempt was aborted.
	Err error
}

// Error returns a message like "delivery attempt 3 failed: http status 503 Service Unavailable".
func (e *DeliveryError) Error() string {
	return fmt.Sprintf("delivery attempt %d failed: %v", e.Attempts, e.Err)
}

// Unwrap returns the cause.
func (e *DeliveryError) Unwrap() error { return e.Err }

// maxSummaryBody caps how much of the response body goes into a stored last error.
const maxSummaryBody = 200

// summary is the cause and the start of the response body, as stored in
// the outbox's last error: "http status 400 Bad Request: invalid key".
func (e *DeliveryError) summary() string {
	s := e.Err.Error()
	if e.Body == "" {
		return s
	}
	body := strings.Join(strings.Fields(e.Body), " ")
	if len(body) > maxSummaryBody {
		cut := maxSummaryBody
		for cut > 0 && !utf8.RuneStart(body[cut]) {
			cut--
		}
		body = body[:cut] + "…"
	}
	return s + ": " + body
}

// ErrAborted is the cause of attempts cut short because the Sender stopped
// (Close's context ended first); their events stay in the outbox.
var ErrAborted = errors.New("delivery aborted: the sender was closed")

// errTooManyRedirects stops a delivery that redirects in circles.
var errTooManyRedirects = errors.New("stopped after 10 redirects")

// maxErrorBody caps how much of an error response's body is kept for the log.
const maxErrorBody = 4 << 10

// maxDrain caps how much of a response body is read to reuse the connection.
const maxDrain = 64 << 10

// checkRetry is the Client's CheckRetry. It classifies one attempt for the
// scheduler (the Client makes one attempt per Do): network errors (except
// certificate and redirect-loop errors) and statuses Classify calls
// OutcomeRetry are retryable, with the wait before the next attempt from
// the Client's Backoff; anything else that is not a success is permanent.
// It returns false, with the cause, once ctx (the Sender's) is done.
func (s *Sender) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, context.Cause(ctx)
	}
	j := jobFrom(ctx)
	var cause error
	if err != nil {
		if permanentTransportError(err) {
			if j != nil {
				j.retryable = false
			}
			return false, err
		}
	} else {
		switch Classify(resp.StatusCode) {
		case OutcomeDelivered:
			return false, nil
		case OutcomePermanent:
			if j != nil {
				j.status, j.retryable = resp.StatusCode, false
			}
			return false, &StatusError{StatusCode: resp.StatusCode}
		}
		cause = &StatusError{StatusCode: resp.StatusCode}
	}
	if j != nil {
		j.retryable = true
		if resp != nil {
			j.status = resp.StatusCode
			j.throttled = throttled(resp, s.clock.Now())
		}
		j.wait = s.client.Backoff(s.cfg.RetryWaitMin, s.cfg.RetryWaitMax, max(j.attempts-1, 0), resp)
	}
	// A nil cause leaves the request's own error as the one reported.
	return true, cause
}

// throttled reports a response that slows the whole endpoint down: a 429,
// or a 503 with a valid Retry-After.
func throttled(resp *http.Response, now time.Time) bool {
	switch resp.StatusCode {
	case http.StatusTooManyRequests:
		return true
	case http.StatusServiceUnavailable:
		_, ok := parseRetryAfter(resp.Header.Get("Retry-After"), now)
		return ok
	}
	return false
}

// permanentTransportError reports errors no retry can fix: an untrusted
// certificate, or a redirect loop.
func permanentTransportError(err error) bool {
	var (
		verr *tls.CertificateVerificationError
		uerr x509.UnknownAuthorityError
		herr x509.HostnameError
		cerr x509.CertificateInvalidError
	)
	return errors.Is(err, errTooManyRedirects) ||
		errors.As(err, &verr) || errors.As(err, &uerr) || errors.As(err, &herr) || errors.As(err, &cerr)
}

// backoff is the Client's Backoff: see backoffDuration. The wait hook lets
// tests see the computed wait and shorten the real one.
func (s *Sender) backoff(min, max time.Duration, attempt int, resp *http.Response) time.Duration {
	d := backoffDuration(min, max, attempt, resp, s.clock.Now(), s.hooks.randN)
	if s.hooks.wait != nil {
		return s.hooks.wait(d)
	}
	return d
}

// backoffDuration returns the wait before retry number attempt+1 (attempt
// is 0 after an event's first attempt). On 429 and
// 503 with a valid Retry-After (seconds or HTTP-date) it is that delay,
// bounded to [min, max]. Otherwise it is exponential with full jitter: a
// random duration between min and min·2^attempt, the latter capped at max.
func backoffDuration(min, max time.Duration, attempt int, resp *http.Response, now time.Time, randN func(int64) int64) time.Duration {
	if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), now); ok {
			return clampDuration(d, min, max)
		}
	}
	ceiling := min
	for i := 0; i < attempt && ceiling < max; i++ {
		ceiling *= 2
		if ceiling <= 0 { // overflow
			ceiling = max
		}
	}
	if ceiling > max {
		ceiling = max
	}
	if ceiling <= min {
		return min
	}
	return min + time.Duration(randN(int64(ceiling-min)+1))
}

func clampDuration(d, min, max time.Duration) time.Duration {
	if d < min {
		return min
	}
	if d > max {
		return max
	}
	return d
}

// parseRetryAfter parses a Retry-After value: delay-seconds or an HTTP-date
// (RFC 9110 10.2.3). A date in the past means no wait.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		if n > int64(24*time.Hour/time.Second) {
			n = int64(24 * time.Hour / time.Second)
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	if d := t.Sub(now); d > 0 {
		return d, true
	}
	return 0, true
}

// errorHandler is the Client's ErrorHandler: it replaces go-retryablehttp's
// "giving up" error (which shows the full URL) by a *DeliveryError, keeping
// the start of the response body for the log and closing it. (send sets
// its Attempts to the event's count.)
func errorHandler(resp *http.Response, err error, tries int) (*http.Response, error) {
	de := &DeliveryError{Attempts: tries, Err: redactError(err, nil)}
	if resp != nil {
		de.StatusCode = resp.StatusCode
		de.Body = readErrorBody(resp.Body)
	}
	return nil, de
}

// readErrorBody returns the start of body as text, drains a bounded amount
// more so the connection can be reused, and closes it.
func readErrorBody(body io.ReadCloser) string {
	defer body.Close()
	b, _ := io.ReadAll(io.LimitReader(body, maxErrorBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(body, maxDrain))
	s := strings.ToValidUTF8(string(b), string(utf8.RuneError))
	return strings.TrimSpace(s)
}

// drainBody reads a bounded amount of body, so the connection can be
// reused, and closes it.
func drainBody(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, maxDrain))
	_ = body.Close()
}

// AttemptTimeoutError is the cause of an HTTP attempt that took longer than
// its endpoint's Timeout.
type AttemptTimeoutError struct {
	// Timeout is the endpoint's Timeout.
	Timeout time.Duration
}

// Error returns a message like "attempt timed out after 10s".
func (e *AttemptTimeoutError) Error() string {
	return fmt.Sprintf("attempt timed out after %s", e.Timeout)
}

// timeoutTransport bounds each HTTP attempt (each round trip, redirects
// included) by the Timeout of the endpoint of the job in the request's
// context; the deadline covers the response body until it is closed.
type timeoutTransport struct{ next http.RoundTripper }

func (t timeoutTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	j := jobFrom(req.Context())
	if j == nil || j.target.timeout <= 0 {
		return t.next.RoundTrip(req)
	}
	cause := &AttemptTimeoutError{Timeout: j.target.timeout}
	ctx, cancel := context.WithTimeoutCause(req.Context(), j.target.timeout, cause)
	resp, err := t.next.RoundTrip(req.WithContext(ctx))
	if err != nil {
		timedOut := errors.Is(context.Cause(ctx), cause)
		cancel()
		if timedOut {
			return nil, fmt.Errorf("%w (%w)", cause, err)
		}
		return nil, err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// cancelOnClose releases an attempt's context when its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// checkRedirect follows only redirects that keep the method and body (307
// and 308), at most 10; a 301, 302 or 303 would turn the POST into a GET, so
// it is returned as the response (and is a permanent failure).
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errTooManyRedirects
	}
	if req.Response != nil {
		switch req.Response.StatusCode {
		case http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
			return nil
		}
	}
	return http.ErrUseLastResponse
}
