package squadcast

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// Outcome is what became of a delivery attempt, for its event and so for
// the log, the Observer's metrics and the outbox's dead letters. An
// attempt's result is delivered, retry, permanent or aborted; the
// scheduler turns a retry into OutcomeExpired once the event reached its
// max age.
type Outcome int8

const (
	// OutcomeDelivered means the event was accepted (2xx).
	OutcomeDelivered Outcome = iota
	// OutcomeRetry means the attempt failed and may succeed later (a
	// network error, 408, 429 or 5xx): the event will be tried again.
	OutcomeRetry
	// OutcomePermanent means retrying cannot help: 1xx, 3xx (after any
	// redirect that was followed), 4xx other than 408 and 429, any status
	// outside 100..599, an untrusted certificate or a redirect loop. The
	// event is dead-lettered.
	OutcomePermanent
	// OutcomeExpired means the attempt failed and the event reached its max
	// age: it is dead-lettered.
	OutcomeExpired
	// OutcomeAborted means the attempt was cut short because the Sender
	// stopped: the event stays in the outbox as it was. Observers do not
	// hear of it.
	OutcomeAborted
)

// String returns the result label of the metrics: "delivered", "retried"
// or "dead_lettered" (both OutcomePermanent and OutcomeExpired: see
// DeadReason), and "aborted".
func (o Outcome) String() string {
	switch o {
	case OutcomeDelivered:
		return "delivered"
	case OutcomeRetry:
		return "retried"
	case OutcomePermanent, OutcomeExpired:
		return "dead_lettered"
	case OutcomeAborted:
		return "aborted"
	}
	return "unknown"
}

// DeadLettered reports whether the event was given up.
func (o Outcome) DeadLettered() bool { return o == OutcomePermanent || o == OutcomeExpired }

// DeadReason returns why a dead letter was given up, as the outbox stores
// it: "permanent failure" or "max age exceeded"; "" for other outcomes.
func (o Outcome) DeadReason() string {
	switch o {
	case OutcomePermanent:
		return "permanent failure"
	case OutcomeExpired:
		return "max age exceeded"
	}
	return ""
}

// Classify says what an HTTP status means for a delivery: OutcomeDelivered,
// OutcomeRetry or OutcomePermanent. Squadcast does not document its
// throttling status or Retry-After; 429 and 5xx are retried as the usual
// signals of throttling and outages, 408 because the request may simply be
// sent again. 413 (body over 30 KB) and the other 4xx are permanent: the
// same body would be refused again.
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
