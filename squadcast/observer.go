package squadcast

import (
	"strings"
	"time"
)

// Result is what became of one delivery attempt, as an Observer hears it.
type Result int8

const (
	// ResultDelivered means Squadcast accepted the event (2xx).
	ResultDelivered Result = iota
	// ResultRetried means the attempt failed and the event will be tried again.
	ResultRetried
	// ResultDeadLettered means the event was given up (a permanent failure,
	// or the max age reached) and moved to the dead letters.
	ResultDeadLettered
)

// String returns "delivered", "retried" or "dead_lettered".
func (r Result) String() string {
	switch r {
	case ResultDelivered:
		return "delivered"
	case ResultRetried:
		return "retried"
	case ResultDeadLettered:
		return "dead_lettered"
	}
	return "unknown"
}

// InlineLabel is the endpoint name an Observer hears for the events of
// tasks that give their own URL (option .url): never the URL or its host.
const InlineLabel = "inline"

// Observer hears the result of every delivery attempt, for metrics. Its
// method is called on the delivery workers, concurrently: it must be safe
// for that, and quick. Attempts cut short by Close are not reported.
type Observer interface {
	// Attempted reports one HTTP attempt: the endpoint's name (InlineLabel
	// for a task's own URL), its result, how long the attempt took, and how
	// long ago the event was published (its age when delivered or given up).
	Attempted(endpoint string, result Result, took, age time.Duration)
}

// observerLabel is the name an Observer hears for a target's name.
func observerLabel(name string) string {
	if strings.HasPrefix(name, "inline:") {
		return InlineLabel
	}
	return name
}
