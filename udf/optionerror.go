package udf

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/influxdata/kapacitor/udf/agent"
)

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

// formatValues renders option values as a TICKscript writes them, for
// errors: strings quoted (and cut when long), the url's never shown.
func formatValues(name string, vals []*agent.OptionValue) string {
	parts := make([]string, len(vals))
	for i, v := range vals {
		switch x := v.GetValue().(type) {
		case *agent.OptionValue_StringValue:
			parts[i] = QuoteValue(x.StringValue)
			if name == optURL {
				parts[i] = "'...'"
			}
		case *agent.OptionValue_DoubleValue:
			parts[i] = fmt.Sprintf("%g", x.DoubleValue)
		case *agent.OptionValue_IntValue:
			parts[i] = fmt.Sprint(x.IntValue)
		case *agent.OptionValue_DurationValue:
			parts[i] = time.Duration(x.DurationValue).String()
		case *agent.OptionValue_BoolValue:
			parts[i] = fmt.Sprint(x.BoolValue)
		}
	}
	return strings.Join(parts, ", ")
}

// typeName names a value type as TICKscript writes it.
func typeName(t agent.ValueType) string {
	switch t {
	case agent.ValueType_STRING:
		return "a string"
	case agent.ValueType_DOUBLE:
		return "a float"
	case agent.ValueType_INT:
		return "an integer"
	case agent.ValueType_DURATION:
		return "a duration"
	case agent.ValueType_BOOL:
		return "a boolean"
	}
	return strings.ToLower(t.String())
}

// QuoteValue renders an option's string value the way it is written in a
// TICKscript, quoted, and cut short (on a character boundary, marked
// "...") when it is long: an OptionError's Value.
func QuoteValue(s string) string {
	const max = 200
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return "'" + s + "'"
}
