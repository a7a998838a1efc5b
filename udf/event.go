package udf

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Level is an alert level, ordered like Kapacitor's: OK < INFO < WARNING < CRITICAL.
type Level int8

// The alert levels, in Kapacitor's order.
const (
	OK Level = iota
	Info
	Warning
	Critical
)

var levelNames = [...]string{"OK", "INFO", "WARNING", "CRITICAL"}

// String returns the level's name as Kapacitor spells it ("OK", "INFO", "WARNING", "CRITICAL").
func (l Level) String() string {
	if l >= OK && l <= Critical {
		return levelNames[l]
	}
	return "unknown"
}

// MarshalText encodes the level as its name, as Kapacitor's alert JSON does.
func (l Level) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText decodes a level name, case-insensitively.
func (l *Level) UnmarshalText(text []byte) error {
	v, err := ParseLevel(string(text))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// ParseLevel parses a level name ("ok", "Info", "WARNING", ...), case-insensitively.
func ParseLevel(s string) (Level, error) {
	for i, n := range levelNames {
		if strings.EqualFold(s, n) {
			return Level(i), nil
		}
	}
	return OK, fmt.Errorf("unknown alert level %q (want OK, INFO, WARNING or CRITICAL)", s)
}

// Destination says where a task's events go, and how the Sink renders
// them, as given by its options. Exactly one of Endpoint and URL is set;
// Format may be empty for the default.
type Destination struct {
	// Endpoint is the name of a configured endpoint (option .endpoint), "default" unless set.
	Endpoint string
	// URL is an inline webhook URL (option .url). It is a secret: never log or print it.
	URL string
	// Format is the payload format (option .format): "kapacitor" or "incident-webhook".
	Format string
	// Tags are the task's .tag(key, value) calls, in the order given,
	// each its key and value as written; nil without any.
	// Priorities are its .priority(level, priority) calls, in the order
	// given, each its level and priority as written; nil without any.
	// These options are the Sink's (they set fields of its payload): udf
	// hands them over unchecked, and the Sink validates them in Open,
	// refusing them with an *OptionError naming .tag or .priority.
	Tags, Priorities [][2]string
}

// Event is one alert event: a level change (or, later, a re-notification)
// for one alert id, with everything a payload needs. Its fields mean what the
// same names mean in Kapacitor's alert node and its alert JSON.
type Event struct {
	// TaskID and NodeID identify the Kapacitor task and node that produced the event.
	TaskID string
	NodeID string

	ID       string
	Message  string
	Details  string
	Time     time.Time // the point's time, in UTC
	Duration time.Duration
	Level    Level
	// PreviousLevel is the level of the previous event sent for the same ID (OK for the first).
	PreviousLevel Level
	// Recoverable is false when the task suppresses recoveries.
	Recoverable bool

	// Name is the measurement name; Group is Kapacitor's group ("nil" without groupBy).
	Name  string
	Group string
	// Tags and Fields are the point's; fields are float64, int64, string or bool.
	Tags   map[string]string
	Fields map[string]interface{}

	// Columns and Values, for an event of a batch task, hold the batch's
	// points as the rows of the alert's data, as the alert node's
	// BufferedBatchMessage.ToRow builds them: Columns are "time", then the
	// first point's field names and its tags that are not the batch's,
	// sorted; Values hold one row per point, its time a time.Time in UTC
	// and nil where a point lacks a column. Both are nil for a stream event
	// (whose data is its point: Tags and Fields).
	Columns []string
	Values  [][]interface{}
}

// OptionError reports a bad TICKscript option of @squadcast().
type OptionError struct {
	// Option is the TICKscript method name without the dot, e.g. "crit".
	Option string
	// Value is the offending value as it may be shown (never a secret), or "".
	Value string
	// Reason says what is wrong.
	Reason string
}

// Error returns a message like `option .crit('"x" <'): parse error: ...`.
func (e *OptionError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("option .%s: %s", e.Option, e.Reason)
	}
	return fmt.Sprintf("option .%s(%s): %s", e.Option, e.Value, e.Reason)
}

// maxLoggedID is the longest alert id a log line or an error shows in full.
const maxLoggedID = 256

// LoggedID returns id as logs and errors show it: in full up to 256 bytes,
// else its first 256 bytes (whole characters) and its length, so that an id
// built by a runaway template does not make a log line of tens of KB.
func LoggedID(id string) string {
	if len(id) <= maxLoggedID {
		return id
	}
	cut := maxLoggedID
	for cut > 0 && !utf8.RuneStart(id[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes)", id[:cut], len(id))
}
