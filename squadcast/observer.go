package squadcast

import (
	"strings"
	"time"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// InlineLabel is the endpoint name an Observer hears for the events of
// tasks that give their own URL (option .url): never the URL or its host.
const InlineLabel = "inline"

// Observer hears the outcome of every delivery attempt, for metrics. Its
// methods are called concurrently (Attempted on the delivery workers): it
// must be safe for that, and quick. Attempts cut short by Close (OutcomeAborted) are not
// reported.
type Observer interface {
	// Attempted reports one HTTP attempt: the endpoint's name (InlineLabel
	// for a task's own URL), the event's level, the attempt's outcome
	// (OutcomeDelivered, OutcomeRetry, OutcomePermanent or OutcomeExpired;
	// its String is the result label), how long the attempt took, and how
	// long ago the event was published (its age when delivered or given up).
	Attempted(endpoint string, level udf.Level, o Outcome, took, age time.Duration)
	// Accepted reports an event taken for delivery to the endpoint (named
	// as for Attempted), and where it came from. It is called on the
	// goroutine that hands the event over: a Kapacitor connection's, or a
	// relay request's.
	Accepted(endpoint string, source Source)
	// Coalesced reports an event of the endpoint (named as for Attempted)
	// that coalescing removed unsent (Endpoint.Coalesce): it is never
	// delivered. It is called on the goroutine that added the incident's
	// later event: the outbox committer's, the loader's, or New's.
	Coalesced(endpoint string, level udf.Level)
	// StaleResolved reports an OK event of a task's .resolveStale() (its
	// group received no data for the task's duration: udf.Event.Stale)
	// taken for delivery to the endpoint (named as for Attempted). It is
	// called on the Kapacitor connection's goroutine, after Accepted.
	StaleResolved(endpoint string)
}

// Source says where an event came from.
type Source string

// The sources of events.
const (
	// SourceUDF is an @squadcast() or @squadcast_batch() node (udf).
	SourceUDF Source = "udf"
	// SourceRelay is Kapacitor's .post(), through the relay (udf/relay).
	SourceRelay Source = "relay"
)

// observerLabel is the name an Observer hears for a target's name.
func observerLabel(name string) string {
	if strings.HasPrefix(name, "inline:") {
		return InlineLabel
	}
	return name
}
