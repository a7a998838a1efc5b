package squadcast

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// DefaultPriorities are the Incident Webhook priorities of the levels a
// task gives no .priority() for.
var DefaultPriorities = [udf.Critical + 1]string{udf.Info: "P5", udf.Warning: "P3", udf.Critical: "P1"}

// TICKscript option names of the Incident Webhook options.
const (
	optTag      = "tag"
	optPriority = "priority"
)

// incidentOptions are what a task adds to its Incident Webhook bodies: its
// .tag()s and the priority of each level. Parsed once, at Open, they are
// valid: no tag key is empty, "level" or given twice, keys and values are
// valid UTF-8, and every non-OK level has a priority P1..P5.
type incidentOptions struct {
	// tags are the task's .tag()s, nil without any; never modified. They
	// are added after the point's tags: a .tag() wins over a point tag of
	// the same key.
	tags map[string]string
	// priorities holds the priority ("P1".."P5") of each non-OK level:
	// DefaultPriorities, changed by .priority(level, p). The zero value
	// (all "") renders no priority.
	priorities [udf.Critical + 1]string
}

// parseIncidentOptions validates a task's .tag(key, value) calls, then its
// .priority(level, p) calls, each in the order given. Errors are
// *udf.OptionError naming the option and its values.
func parseIncidentOptions(d udf.Destination) (incidentOptions, error) {
	o := incidentOptions{priorities: DefaultPriorities}
	for _, c := range d.Tags {
		if err := o.addTag(c[0], c[1]); err != nil {
			return incidentOptions{}, err
		}
	}
	var set [udf.Critical + 1]bool
	for _, c := range d.Priorities {
		if err := o.setPriority(c[0], c[1], &set); err != nil {
			return incidentOptions{}, err
		}
	}
	return o, nil
}

// addTag adds the tag of .tag(key, value).
func (o *incidentOptions) addTag(key, value string) error {
	fail := func(reason string) error {
		return &udf.OptionError{Option: optTag, Value: callValue(key, value), Reason: reason}
	}
	switch {
	case key == "":
		return fail("empty tag key")
	case key == "level":
		return fail("the tag 'level' is the event's level, set by the daemon: use another key")
	case !utf8.ValidString(key) || !utf8.ValidString(value):
		return fail("not valid UTF-8")
	}
	if _, dup := o.tags[key]; dup {
		return fail("the tag " + udf.QuoteValue(key) + " is given more than once")
	}
	if o.tags == nil {
		o.tags = make(map[string]string)
	}
	o.tags[key] = value
	return nil
}

// setPriority sets the priority of .priority(level, p); set records the
// levels given a priority so far.
func (o *incidentOptions) setPriority(level, priority string, set *[udf.Critical + 1]bool) error {
	fail := func(reason string) error {
		return &udf.OptionError{Option: optPriority, Value: callValue(level, priority), Reason: reason}
	}
	l, err := udf.ParseLevel(level)
	if err != nil || l == udf.OK {
		return fail("the level must be CRITICAL, WARNING or INFO (a resolve has no priority)")
	}
	p := strings.ToUpper(priority)
	if len(p) != 2 || p[0] != 'P' || p[1] < '1' || p[1] > '5' {
		return fail("the priority must be one of 'P1', 'P2', 'P3', 'P4', 'P5'")
	}
	if set[l] {
		return fail("the priority of " + l.String() + " is given more than once")
	}
	set[l] = true
	o.priorities[l] = p
	return nil
}

// callValue renders the two arguments of a call as a TICKscript writes them.
func callValue(a, b string) string { return udf.QuoteValue(a) + ", " + udf.QuoteValue(b) }

// checkIncidentOnly refuses .tag() and .priority() for a task whose
// target sends a format other than the Incident Webhook, which alone has
// fields for them.
func checkIncidentOnly(d udf.Destination, t *target) error {
	if t.format == FormatIncidentWebhook {
		return nil
	}
	var opt string
	switch {
	case len(d.Tags) > 0:
		opt = optTag
	case len(d.Priorities) > 0:
		opt = optPriority
	default:
		return nil
	}
	return &udf.OptionError{Option: opt,
		Reason: fmt.Sprintf("only the %s format has tags and priorities, and this task sends the %s format (endpoint %s): add .format('%s') or remove .%s()",
			FormatIncidentWebhook, t.format, t.name, FormatIncidentWebhook, opt)}
}
