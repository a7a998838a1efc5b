package relay

import "errors"

// ErrNotTaken is wrapped by the error of a Sink.Relay that did not take the
// alert at all (the daemon is stopping, or cannot hold more): unlike a
// failed write, the alert is not being delivered, so the answer is 503.
var ErrNotTaken = errors.New("the alert was not taken")

// Sink takes the relayed alerts. It is implemented by the daemon's sender.
// Its methods are called on the requests' goroutines, concurrently.
type Sink interface {
	// HasEndpoint reports whether name is a configured endpoint.
	HasEndpoint(name string) bool
	// Relay makes the alert durable and queues it for delivery to the
	// endpoint; body is the request's body exactly as received (sent as is
	// to an endpoint of Kapacitor's format). It returns once the alert is on
	// disk; an error means it is not durable (it is still being delivered
	// from memory): the handler answers 200 all the same (Kapacitor never
	// resends), and logs and counts it. An error wrapping ErrNotTaken means
	// the alert was not taken at all (the daemon is stopping, say): the
	// handler answers 503.
	//
	// The alert and the body are the Sink's to keep: the handler does not
	// touch them again. A panic is recovered, answered 500 and counted.
	Relay(endpoint string, a *Alert, body []byte) error
}

// Observer hears of every request, for metrics (a counter by result). It
// is called once per request, on the request's goroutine, concurrently:
// it must be safe for that, and quick.
type Observer interface {
	// Request is called with the result of each request, once its answer
	// is decided (just before it is written).
	Request(result Result)
}

// Result is what became of one request: one value per answer, for logs
// and metrics (a metric label: it never holds request data).
type Result string

// The results of a request, with the answer's status.
const (
	// ResultAccepted: the alert is durable and queued (200).
	ResultAccepted Result = "accepted"
	// ResultNotDurable: Sink.Relay failed to make the alert durable; it is
	// delivered from memory (200: Kapacitor never resends).
	ResultNotDurable Result = "not_durable"
	// ResultNotTaken: Sink.Relay did not take the alert (ErrNotTaken): the
	// daemon is stopping, or cannot hold more (503).
	ResultNotTaken Result = "not_taken"
	// ResultNotFound: the path is not /relay/<endpoint> (404).
	ResultNotFound Result = "not_found"
	// ResultBadMethod: the method is not POST (405).
	ResultBadMethod Result = "bad_method"
	// ResultUnauthorized: a token is required and the request has none,
	// or another (401).
	ResultUnauthorized Result = "unauthorized"
	// ResultBadContentType: the content type is not application/json (415).
	ResultBadContentType Result = "bad_content_type"
	// ResultTooLarge: the body is over Config.MaxBody (413).
	ResultTooLarge Result = "too_large"
	// ResultReadError: the body could not be read (the client went away,
	// or sent a broken body) (400).
	ResultReadError Result = "read_error"
	// ResultNotJSON: the body is not JSON (400).
	ResultNotJSON Result = "not_json"
	// ResultNotAlert: the body is JSON but not one of Kapacitor's alerts (400).
	ResultNotAlert Result = "not_alert"
	// ResultUnknownEndpoint: the endpoint is not configured (404).
	ResultUnknownEndpoint Result = "unknown_endpoint"
	// ResultPanic: the Sink (or the handler) panicked (500).
	ResultPanic Result = "panic"
)

// AllResults returns every Result, for metrics that want each label
// present from the start.
func AllResults() []Result {
	return []Result{ResultAccepted, ResultNotDurable, ResultNotTaken, ResultNotFound, ResultBadMethod,
		ResultUnauthorized, ResultBadContentType, ResultTooLarge, ResultReadError, ResultNotJSON,
		ResultNotAlert, ResultUnknownEndpoint, ResultPanic}
}

// nopObserver is the Observer of a Config without one.
type nopObserver struct{}

func (nopObserver) Request(Result) {}
