package squadcast

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// The retry policy, as go-retryablehttp's policy types: pure functions that
// its Client would call between the attempts of its Do, called here by the
// attempt (attempt.go), since the scheduler, not the Client, does the
// waiting between attempts.

// checkRetry classifies one attempt's response or error (err is the HTTP
// client's): network errors (except certificate and redirect-loop errors)
// and statuses Classify calls OutcomeRetry are retryable; a success is
// neither retried nor an error; anything else is a permanent failure. The
// error it returns is the cause to report: a *StatusError for a status, the
// request's own error for a permanent transport error, and nil for a
// retryable one (the request's error is the one to report). It returns
// false, with the cause, once ctx (the Sender's) is done.
var checkRetry retryablehttp.CheckRetry = func(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, context.Cause(ctx)
	}
	if err != nil {
		if permanentTransportError(err) {
			return false, err
		}
		return true, nil
	}
	switch Classify(resp.StatusCode) {
	case OutcomeDelivered:
		return false, nil
	case OutcomeRetry:
		return true, &StatusError{StatusCode: resp.StatusCode}
	}
	return false, &StatusError{StatusCode: resp.StatusCode}
}

// errTooManyRedirects stops a delivery that redirects in circles.
var errTooManyRedirects = errors.New("stopped after 10 redirects")

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

// backoffPolicy returns the Backoff: backoffDuration on clock c with the
// randomness randN. wait, when set (in tests), gets each computed wait and
// returns the one to use.
func backoffPolicy(c clock, randN func(int64) int64, wait func(time.Duration) time.Duration) retryablehttp.Backoff {
	return func(min, max time.Duration, attempt int, resp *http.Response) time.Duration {
		d := backoffDuration(min, max, attempt, resp, c.Now(), randN)
		if wait != nil {
			return wait(d)
		}
		return d
	}
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
