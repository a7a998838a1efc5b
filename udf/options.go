package udf

import (
	"fmt"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/influxdata/kapacitor/udf/agent"
)

// Option names, exactly as they are written in a TICKscript (without the dot).
const (
	optCrit         = "crit"
	optWarn         = "warn"
	optInfo         = "info"
	optCritReset    = "critReset"
	optWarnReset    = "warnReset"
	optInfoReset    = "infoReset"
	optID           = "id"
	optMessage      = "message"
	optDetails      = "details"
	optEndpoint     = "endpoint"
	optURL          = "url"
	optFormat       = "format"
	optFlapping     = "flapping"
	optHistory      = "history"
	optNoRecoveries = "noRecoveries"
	optRenotify     = "renotify"
	optAllEvents    = "allEvents"
	optLevelField   = "levelField"
	optLevelTag     = "levelTag"
	optTag          = "tag"
	optPriority     = "priority"
	optAll          = "all"
)

// repeatable lists the options that may be given more than once: those
// handed to the Sink in Destination.Tags and Destination.Priorities.
var repeatable = map[string]bool{optTag: true, optPriority: true}

// DefaultEndpoint is the endpoint events go to when a task names none.
const DefaultEndpoint = "default"

// DefaultHistory is the alert node's default flapping history.
const DefaultHistory = 21

var (
	tString   = []agent.ValueType{agent.ValueType_STRING}
	tStrings2 = []agent.ValueType{agent.ValueType_STRING, agent.ValueType_STRING}
	tDoubles2 = []agent.ValueType{agent.ValueType_DOUBLE, agent.ValueType_DOUBLE}
	tInt      = []agent.ValueType{agent.ValueType_INT}
	tDuration = []agent.ValueType{agent.ValueType_DURATION}
	tNone     = []agent.ValueType{}
)

// optionInfo lists the options @squadcast() accepts and their argument types.
// Kapacitor checks TICKscripts against it when a task is defined.
var optionInfo = map[string]*agent.OptionInfo{
	optCrit:         {ValueTypes: tString},
	optWarn:         {ValueTypes: tString},
	optInfo:         {ValueTypes: tString},
	optCritReset:    {ValueTypes: tString},
	optWarnReset:    {ValueTypes: tString},
	optInfoReset:    {ValueTypes: tString},
	optID:           {ValueTypes: tString},
	optMessage:      {ValueTypes: tString},
	optDetails:      {ValueTypes: tString},
	optEndpoint:     {ValueTypes: tString},
	optURL:          {ValueTypes: tString},
	optFormat:       {ValueTypes: tString},
	optFlapping:     {ValueTypes: tDoubles2},
	optHistory:      {ValueTypes: tInt},
	optNoRecoveries: {ValueTypes: tNone},
	optRenotify:     {ValueTypes: tDuration},
	optAllEvents:    {ValueTypes: tNone},
	optLevelField:   {ValueTypes: tString},
	optLevelTag:     {ValueTypes: tString},
	optTag:          {ValueTypes: tStrings2},
	optPriority:     {ValueTypes: tStrings2},
}

// batchOptionInfo lists the options of @squadcast_batch(): those of
// @squadcast() and .all().
var batchOptionInfo = func() map[string]*agent.OptionInfo {
	m := make(map[string]*agent.OptionInfo, len(optionInfo)+1)
	for k, v := range optionInfo {
		m[k] = v
	}
	m[optAll] = &agent.OptionInfo{ValueTypes: tNone}
	return m
}()

// levelOptions maps each level to the options that set its expression and
// its reset expression.
var levelOptions = [...]struct {
	level       Level
	name, reset string
}{{Critical, optCrit, optCritReset}, {Warning, optWarn, optWarnReset}, {Info, optInfo, optInfoReset}}

// TaskOptions are the parsed options of one @squadcast() node.
type TaskOptions struct {
	// Levels holds the expression of each level; nil where the level is unused.
	Levels [Critical + 1]*Expr
	// Resets holds the reset expression of each level (critReset etc.):
	// once at a level, the level holds until its reset expression is true.
	Resets [Critical + 1]*Expr
	// LevelField or LevelTag, when set, name where each point carries its
	// level, instead of expressions.
	LevelField, LevelTag string

	// ID, Message and Details are the alert node's id, message and details templates.
	ID, Message, Details *template.Template

	// AllEvents sends every non-OK point, not only changes of level.
	AllEvents bool
	// All (batch tasks only) takes a batch's level from its lowest point,
	// not its highest: the batch alerts only when all its points do.
	All bool
	// Renotify re-sends an unchanged level once this long has passed since
	// the last event (the alert node's stateChangesOnly(d)); 0 never.
	Renotify time.Duration
	// NoRecoveries drops OK events and marks events not recoverable.
	NoRecoveries bool
	// Flapping enables flapping detection with the thresholds FlapLow and
	// FlapHigh over History levels.
	Flapping          bool
	FlapLow, FlapHigh float64
	History           int

	// Destination says where events go, with the options of their
	// payload that the Sink validates (.tag and .priority).
	Destination Destination
}

// ParseOptions validates the options of an Init request of @squadcast().
// Every error is an *OptionError naming the option and, where it is not a
// secret, the value.
func ParseOptions(opts []*agent.Option) (*TaskOptions, error) {
	return parseOptions(opts, optionInfo)
}

// ParseBatchOptions validates the options of an Init request of
// @squadcast_batch(): those of ParseOptions, and .all().
func ParseBatchOptions(opts []*agent.Option) (*TaskOptions, error) {
	return parseOptions(opts, batchOptionInfo)
}

func parseOptions(opts []*agent.Option, optionInfo map[string]*agent.OptionInfo) (*TaskOptions, error) {
	vals := make(map[string][]*agent.OptionValue, len(opts))
	var tags, priorities [][2]string // the Sink's options, in order
	for _, o := range opts {
		name := o.GetName()
		info, ok := optionInfo[name]
		if !ok {
			if name == optAll {
				return nil, &OptionError{Option: name, Reason: "is for batch tasks: use @squadcast_batch()"}
			}
			return nil, &OptionError{Option: name, Reason: "unknown option"}
		}
		if _, dup := vals[name]; dup && !repeatable[name] {
			return nil, &OptionError{Option: name, Value: formatValues(name, o.GetValues()), Reason: "given more than once; give it once"}
		}
		v := o.GetValues()
		if len(v) != len(info.ValueTypes) {
			return nil, &OptionError{Option: name, Reason: fmt.Sprintf("takes %d argument(s), got %d", len(info.ValueTypes), len(v))}
		}
		for i, want := range info.ValueTypes {
			if got := v[i].GetType(); got != want {
				return nil, &OptionError{Option: name, Reason: fmt.Sprintf("argument %d must be %s, got %s", i+1, typeName(want), typeName(got))}
			}
		}
		vals[name] = v
		switch name {
		case optTag:
			tags = append(tags, [2]string{v[0].GetStringValue(), v[1].GetStringValue()})
		case optPriority:
			priorities = append(priorities, [2]string{v[0].GetStringValue(), v[1].GetStringValue()})
		}
	}
	str := func(name string) (string, bool) {
		v, ok := vals[name]
		if !ok {
			return "", false
		}
		return v[0].GetStringValue(), true
	}
	has := func(name string) bool { _, ok := vals[name]; return ok }

	to := &TaskOptions{History: DefaultHistory}
	nlevels := 0
	for _, lo := range levelOptions {
		for _, o := range []struct {
			name string
			dst  **Expr
		}{{lo.name, &to.Levels[lo.level]}, {lo.reset, &to.Resets[lo.level]}} {
			src, ok := str(o.name)
			if !ok {
				continue
			}
			e, err := CompileExpr(src)
			if err != nil {
				return nil, &OptionError{Option: o.name, Value: QuoteValue(src), Reason: err.Error()}
			}
			*o.dst = e
		}
		if to.Levels[lo.level] != nil {
			nlevels++
		} else if to.Resets[lo.level] != nil {
			return nil, &OptionError{Option: lo.reset, Reason: fmt.Sprintf("needs .%s(): a level must be set before it can be reset", lo.name)}
		}
	}

	to.LevelField, _ = str(optLevelField)
	to.LevelTag, _ = str(optLevelTag)
	switch {
	case has(optLevelField) && has(optLevelTag):
		return nil, &OptionError{Option: optLevelTag, Reason: "give .levelField() or .levelTag(), not both"}
	case (has(optLevelField) || has(optLevelTag)) && nlevels > 0:
		name := optLevelField
		if has(optLevelTag) {
			name = optLevelTag
		}
		return nil, &OptionError{Option: name, Reason: "takes the level from the point: it cannot be combined with .crit(), .warn() or .info()"}
	case has(optLevelField) && to.LevelField == "":
		return nil, &OptionError{Option: optLevelField, Value: "''", Reason: "empty field name"}
	case has(optLevelTag) && to.LevelTag == "":
		return nil, &OptionError{Option: optLevelTag, Value: "''", Reason: "empty tag name"}
	case nlevels == 0 && !has(optLevelField) && !has(optLevelTag):
		return nil, &OptionError{Option: optCrit, Reason: "no level: give at least one of .crit(), .warn() or .info(), e.g. .crit('\"usage_idle\" < 10'), or take it from the point with .levelField() or .levelTag()"}
	}

	sample := sampleDetails()
	for _, t := range []struct {
		name, def string
		dst       **template.Template
	}{
		{optID, DefaultIDTemplate, &to.ID},
		{optMessage, DefaultMessageTemplate, &to.Message},
		{optDetails, DefaultDetailsTemplate, &to.Details},
	} {
		text, ok := str(t.name)
		if !ok {
			text = t.def
		}
		tmpl, err := parseTemplate(t.name, text, sample)
		if err != nil {
			return nil, &OptionError{Option: t.name, Value: QuoteValue(text), Reason: err.Error()}
		}
		*t.dst = tmpl
	}

	to.AllEvents = has(optAllEvents)
	to.All = has(optAll)
	to.NoRecoveries = has(optNoRecoveries)
	if v, ok := vals[optRenotify]; ok {
		to.Renotify = time.Duration(v[0].GetDurationValue())
		if to.Renotify <= 0 {
			return nil, &OptionError{Option: optRenotify, Value: to.Renotify.String(), Reason: "must be a positive duration"}
		}
		if to.AllEvents {
			return nil, &OptionError{Option: optRenotify, Reason: "has no effect with .allEvents(), which sends every non-OK point: give one of them"}
		}
	}
	if v, ok := vals[optFlapping]; ok {
		to.Flapping = true
		to.FlapLow, to.FlapHigh = v[0].GetDoubleValue(), v[1].GetDoubleValue()
		value := fmt.Sprintf("%g, %g", to.FlapLow, to.FlapHigh)
		if !inUnit(to.FlapLow) || !inUnit(to.FlapHigh) {
			return nil, &OptionError{Option: optFlapping, Value: value, Reason: "thresholds are fractions of changes: both must be between 0 and 1"}
		}
		if to.FlapLow > to.FlapHigh {
			return nil, &OptionError{Option: optFlapping, Value: value, Reason: "the low threshold must not exceed the high one"}
		}
	}
	if v, ok := vals[optHistory]; ok {
		n := v[0].GetIntValue()
		if n < 2 || n > 10000 {
			return nil, &OptionError{Option: optHistory, Value: fmt.Sprint(n), Reason: "must be between 2 and 10000"}
		}
		if !to.Flapping {
			return nil, &OptionError{Option: optHistory, Reason: "is the history of .flapping(), which is not set"}
		}
		to.History = int(n)
	}

	endpoint, hasEndpoint := str(optEndpoint)
	url, hasURL := str(optURL)
	format, _ := str(optFormat)
	to.Destination = Destination{Endpoint: endpoint, URL: url, Format: format, Tags: tags, Priorities: priorities}
	if hasEndpoint && endpoint == "" {
		return nil, &OptionError{Option: optEndpoint, Value: "''", Reason: "empty endpoint name"}
	}
	if hasEndpoint && hasURL {
		return nil, &OptionError{Option: optURL, Reason: "give .endpoint() or .url(), not both"}
	}
	if endpoint == "" && url == "" {
		to.Destination.Endpoint = DefaultEndpoint
	}
	return to, nil
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

// inUnit reports whether f is in 0..1 (NaN is not).
func inUnit(f float64) bool { return f >= 0 && f <= 1 }

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
