package squadcast

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-retryablehttp"
)

// One HTTP attempt: a request in, an attemptResult out. The scheduler
// (scheduler.go) decides when an event's attempt goes, and the worker
// (worker.go) what its result means for the event; the attempt only posts
// it once.
//
// It uses a plain *http.Client, not go-retryablehttp's Client. That
// Client's Do retries by sleeping between attempts on the calling
// goroutine, which would hold a worker through every backoff (minutes, on
// a Retry-After) and keep other incidents waiting; here the scheduler
// holds a waiting event, and a worker only ever makes one attempt. A
// retryablehttp.Client limited to one attempt (RetryMax 0) would add
// nothing but a second error path (its ErrorHandler), a logger to adapt
// and redact, and results that have to be smuggled out of its hooks. What
// go-retryablehttp gives is its policy, used as its authors meant it:
// checkRetry (a retryablehttp.CheckRetry) and the Backoff (a
// retryablehttp.Backoff, which honours Retry-After), pure functions the
// attempt calls once the response is in (retry.go).

// attemptRequest is one HTTP attempt to make: a POST of body to url.
type attemptRequest struct {
	url     string
	headers map[string]string // the endpoint's; Content-Type is always application/json
	body    []byte
	timeout time.Duration // bounds the attempt, redirects and response body included; 0 for none
	attempt int           // the event's attempt number: 1 for its first
	secrets []string      // parts of url never to show
}

// attemptResult is what came of one HTTP attempt.
type attemptResult struct {
	// outcome is OutcomeDelivered, OutcomeRetry, OutcomePermanent or
	// OutcomeAborted (the Sender's context ended).
	outcome Outcome
	status  int            // the response's status, 0 without a response
	err     *DeliveryError // why it failed, redacted; nil when delivered
	wait    time.Duration  // before the next attempt (OutcomeRetry)
	// throttled is a 429, or a 503 with Retry-After (OutcomeRetry): the
	// endpoint is paused for wait.
	throttled bool
}

// attempter makes the HTTP attempts of a Sender. It is safe for
// concurrent use.
type attempter struct {
	client           *http.Client
	userAgent        string // sent unless the endpoint's headers set one
	waitMin, waitMax time.Duration
	backoff          retryablehttp.Backoff
	now              func() time.Time
}

// newAttempter returns an attempter posting through transport, with the
// retry waits and user agent of cfg, and the Sender's clock, randomness
// and retry wait hook.
func newAttempter(transport http.RoundTripper, cfg Config, h hooks) *attempter {
	return &attempter{
		client:    &http.Client{Transport: transport, CheckRedirect: checkRedirect},
		userAgent: cfg.UserAgent,
		waitMin:   cfg.RetryWaitMin,
		waitMax:   cfg.RetryWaitMax,
		backoff:   backoffPolicy(h.clock, h.randN, h.wait),
		now:       h.clock.Now,
	}
}

// attempt posts r's body once, within r's timeout, and classifies what
// came of it with checkRetry; a retry gets its wait from the Backoff. A
// response body is read through a cap (drained on a success, its start
// kept for the error otherwise) before the timeout ends. ctx ending aborts
// the attempt.
func (a *attempter) attempt(ctx context.Context, r attemptRequest) attemptResult {
	actx, cancel := ctx, context.CancelFunc(func() {})
	var timeout error
	if r.timeout > 0 {
		timeout = &AttemptTimeoutError{Timeout: r.timeout}
		actx, cancel = context.WithTimeoutCause(ctx, r.timeout, timeout)
	}
	defer cancel() // once the response body is read: the timeout covers it
	req, err := http.NewRequestWithContext(actx, http.MethodPost, r.url, bytes.NewReader(r.body))
	if err != nil {
		return attemptResult{outcome: OutcomePermanent,
			err: &DeliveryError{Attempts: r.attempt, Err: redactError(fmt.Errorf("build request: %w", err), r.secrets)}}
	}
	for k, v := range r.headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", a.userAgent)
	}
	resp, err := a.client.Do(req)
	if err != nil && timeout != nil && errors.Is(context.Cause(actx), timeout) {
		err = timedOut(err, timeout)
	}

	retry, cause := checkRetry(ctx, resp, err)
	var res attemptResult
	if resp != nil {
		res.status = resp.StatusCode
	}
	switch {
	case err == nil && !retry && cause == nil:
		drainBody(resp.Body)
		return res
	case retry:
		res.outcome = OutcomeRetry
		if resp != nil {
			res.throttled = throttled(resp, a.now())
		}
		res.wait = a.backoff(a.waitMin, a.waitMax, max(r.attempt-1, 0), resp)
	case ctx.Err() != nil:
		res.outcome = OutcomeAborted
	default:
		res.outcome = OutcomePermanent
	}
	if cause == nil {
		cause = err // a retryable network error: the request's own error
	}
	res.err = failure(r, resp, cause)
	return res
}

// failure returns the redacted error of a failed attempt, with the status
// and the start of the body of its response, if any, which it closes.
func failure(r attemptRequest, resp *http.Response, cause error) *DeliveryError {
	de := &DeliveryError{Attempts: r.attempt, Err: redactError(cause, nil)}
	if resp != nil {
		de.StatusCode = resp.StatusCode
		de.Body = readErrorBody(resp.Body)
	}
	de.Err = redactError(de.Err, r.secrets)
	de.Body = redactText(de.Body, r.secrets)
	return de
}

// timedOut puts the attempt's timeout in front of the transport's error,
// inside the *url.Error the client returns: `Post "…": attempt timed out
// after 10s (…)`.
func timedOut(err, timeout error) error {
	if ue, ok := err.(*url.Error); ok {
		c := *ue
		c.Err = fmt.Errorf("%w (%w)", timeout, ue.Err)
		return &c
	}
	return fmt.Errorf("%w (%w)", timeout, err)
}

// maxErrorBody caps how much of an error response's body is kept for the log.
const maxErrorBody = 4 << 10

// maxDrain caps how much of a response body is read to reuse the connection.
const maxDrain = 64 << 10

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
