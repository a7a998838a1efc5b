package udf

import (
	"fmt"
	"text/template"
	"time"

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
	optResolveStale = "resolveStale"
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
	optResolveStale: {ValueTypes: tDuration},
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
	// ResolveStale, when not 0, resolves an alerting group that has
	// received no data for this long (wall-clock time); see Handler.ResolveStale.
	ResolveStale time.Duration

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

// parseOptions validates a node's options against info, in steps, each
// step's errors before the next's.
func parseOptions(opts []*agent.Option, info map[string]*agent.OptionInfo) (*TaskOptions, error) {
	v, err := readOptions(opts, info)
	if err != nil {
		return nil, err
	}
	to := &TaskOptions{History: DefaultHistory}
	for _, parse := range []func(*optionValues) error{
		to.parseLevels, to.parseLevelSource, to.parseTemplates, to.parseSettings, to.parseStale, to.parseDestination,
	} {
		if err := parse(v); err != nil {
			return nil, err
		}
	}
	return to, nil
}

// optionValues are a node's options, checked against their OptionInfo.
type optionValues struct {
	// vals holds each option's values, by name (the last call's, for a
	// repeatable option).
	vals map[string][]*agent.OptionValue
	// tags and priorities are the arguments of each call of .tag() and
	// .priority(), in order.
	tags, priorities [][2]string
}

// readOptions checks that each option is known, given once unless it is
// repeatable, and has the arguments its OptionInfo says (Kapacitor checks
// them too, when a task is defined).
func readOptions(opts []*agent.Option, info map[string]*agent.OptionInfo) (*optionValues, error) {
	v := &optionValues{vals: make(map[string][]*agent.OptionValue, len(opts))}
	for _, o := range opts {
		name := o.GetName()
		oi, ok := info[name]
		if !ok {
			if name == optAll {
				return nil, &OptionError{Option: name, Reason: "is for batch tasks: use @squadcast_batch()"}
			}
			return nil, &OptionError{Option: name, Reason: "unknown option"}
		}
		if _, dup := v.vals[name]; dup && !repeatable[name] {
			return nil, &OptionError{Option: name, Value: formatValues(name, o.GetValues()), Reason: "given more than once; give it once"}
		}
		args := o.GetValues()
		if len(args) != len(oi.ValueTypes) {
			return nil, &OptionError{Option: name, Reason: fmt.Sprintf("takes %d argument(s), got %d", len(oi.ValueTypes), len(args))}
		}
		for i, want := range oi.ValueTypes {
			if got := args[i].GetType(); got != want {
				return nil, &OptionError{Option: name, Reason: fmt.Sprintf("argument %d must be %s, got %s", i+1, typeName(want), typeName(got))}
			}
		}
		v.vals[name] = args
		switch name {
		case optTag:
			v.tags = append(v.tags, [2]string{args[0].GetStringValue(), args[1].GetStringValue()})
		case optPriority:
			v.priorities = append(v.priorities, [2]string{args[0].GetStringValue(), args[1].GetStringValue()})
		}
	}
	return v, nil
}

// str returns the string value of an option, and whether it was given.
func (v *optionValues) str(name string) (string, bool) {
	vals, ok := v.vals[name]
	if !ok {
		return "", false
	}
	return vals[0].GetStringValue(), true
}

// has reports whether an option was given.
func (v *optionValues) has(name string) bool { _, ok := v.vals[name]; return ok }

// parseLevels compiles the level expressions and their resets.
func (to *TaskOptions) parseLevels(v *optionValues) error {
	for _, lo := range levelOptions {
		for _, o := range []struct {
			name string
			dst  **Expr
		}{{lo.name, &to.Levels[lo.level]}, {lo.reset, &to.Resets[lo.level]}} {
			src, ok := v.str(o.name)
			if !ok {
				continue
			}
			e, err := CompileExpr(src)
			if err != nil {
				return &OptionError{Option: o.name, Value: QuoteValue(src), Reason: err.Error()}
			}
			*o.dst = e
		}
		if to.Levels[lo.level] == nil && to.Resets[lo.level] != nil {
			return &OptionError{Option: lo.reset, Reason: fmt.Sprintf("needs .%s(): a level must be set before it can be reset", lo.name)}
		}
	}
	return nil
}

// parseLevelSource checks that the levels come from expressions, or from
// the points' level field or tag.
func (to *TaskOptions) parseLevelSource(v *optionValues) error {
	nlevels := 0
	for _, e := range to.Levels {
		if e != nil {
			nlevels++
		}
	}
	to.LevelField, _ = v.str(optLevelField)
	to.LevelTag, _ = v.str(optLevelTag)
	hasField, hasTag := v.has(optLevelField), v.has(optLevelTag)
	switch {
	case hasField && hasTag:
		return &OptionError{Option: optLevelTag, Reason: "give .levelField() or .levelTag(), not both"}
	case (hasField || hasTag) && nlevels > 0:
		name := optLevelField
		if hasTag {
			name = optLevelTag
		}
		return &OptionError{Option: name, Reason: "takes the level from the point: it cannot be combined with .crit(), .warn() or .info()"}
	case hasField && to.LevelField == "":
		return &OptionError{Option: optLevelField, Value: "''", Reason: "empty field name"}
	case hasTag && to.LevelTag == "":
		return &OptionError{Option: optLevelTag, Value: "''", Reason: "empty tag name"}
	case nlevels == 0 && !hasField && !hasTag:
		return &OptionError{Option: optCrit, Reason: "no level: give at least one of .crit(), .warn() or .info(), e.g. .crit('\"usage_idle\" < 10'), or take it from the point with .levelField() or .levelTag()"}
	}
	return nil
}

// parseTemplates parses the id, message and details templates, or their
// defaults, and renders each once on sample data.
func (to *TaskOptions) parseTemplates(v *optionValues) error {
	sample := sampleDetails()
	for _, t := range []struct {
		name, def string
		dst       **template.Template
	}{
		{optID, DefaultIDTemplate, &to.ID},
		{optMessage, DefaultMessageTemplate, &to.Message},
		{optDetails, DefaultDetailsTemplate, &to.Details},
	} {
		text, ok := v.str(t.name)
		if !ok {
			text = t.def
		}
		tmpl, err := parseTemplate(t.name, text, sample)
		if err != nil {
			return &OptionError{Option: t.name, Value: QuoteValue(text), Reason: err.Error()}
		}
		*t.dst = tmpl
	}
	return nil
}

// parseSettings reads the alert node's settings: .allEvents(), .all(),
// .noRecoveries(), .renotify(), .flapping() and .history().
func (to *TaskOptions) parseSettings(v *optionValues) error {
	to.AllEvents = v.has(optAllEvents)
	to.All = v.has(optAll)
	to.NoRecoveries = v.has(optNoRecoveries)
	if vals, ok := v.vals[optRenotify]; ok {
		to.Renotify = time.Duration(vals[0].GetDurationValue())
		if to.Renotify <= 0 {
			return &OptionError{Option: optRenotify, Value: to.Renotify.String(), Reason: "must be a positive duration"}
		}
		if to.AllEvents {
			return &OptionError{Option: optRenotify, Reason: "has no effect with .allEvents(), which sends every non-OK point: give one of them"}
		}
	}
	if vals, ok := v.vals[optFlapping]; ok {
		to.Flapping = true
		to.FlapLow, to.FlapHigh = vals[0].GetDoubleValue(), vals[1].GetDoubleValue()
		value := fmt.Sprintf("%g, %g", to.FlapLow, to.FlapHigh)
		if !inUnit(to.FlapLow) || !inUnit(to.FlapHigh) {
			return &OptionError{Option: optFlapping, Value: value, Reason: "thresholds are fractions of changes: both must be between 0 and 1"}
		}
		if to.FlapLow > to.FlapHigh {
			return &OptionError{Option: optFlapping, Value: value, Reason: "the low threshold must not exceed the high one"}
		}
	}
	if vals, ok := v.vals[optHistory]; ok {
		n := vals[0].GetIntValue()
		if n < 2 || n > 10000 {
			return &OptionError{Option: optHistory, Value: fmt.Sprint(n), Reason: "must be between 2 and 10000"}
		}
		if !to.Flapping {
			return &OptionError{Option: optHistory, Reason: "is the history of .flapping(), which is not set"}
		}
		to.History = int(n)
	}
	return nil
}

// parseStale reads .resolveStale(d): d must be positive.
func (to *TaskOptions) parseStale(v *optionValues) error {
	vals, ok := v.vals[optResolveStale]
	if !ok {
		return nil
	}
	to.ResolveStale = time.Duration(vals[0].GetDurationValue())
	if to.ResolveStale <= 0 {
		return &OptionError{Option: optResolveStale, Value: to.ResolveStale.String(), Reason: "must be a positive duration, e.g. 10m"}
	}
	return nil
}

// parseDestination reads where the events go, and hands the Sink its own
// options (.tag(), .priority()) as written.
func (to *TaskOptions) parseDestination(v *optionValues) error {
	endpoint, hasEndpoint := v.str(optEndpoint)
	url, hasURL := v.str(optURL)
	format, _ := v.str(optFormat)
	to.Destination = Destination{Endpoint: endpoint, URL: url, Format: format, Tags: v.tags, Priorities: v.priorities}
	if hasEndpoint && endpoint == "" {
		return &OptionError{Option: optEndpoint, Value: "''", Reason: "empty endpoint name"}
	}
	if hasEndpoint && hasURL {
		return &OptionError{Option: optURL, Reason: "give .endpoint() or .url(), not both"}
	}
	if endpoint == "" && url == "" {
		to.Destination.Endpoint = DefaultEndpoint
	}
	return nil
}

// inUnit reports whether f is in 0..1 (NaN is not).
func inUnit(f float64) bool { return f >= 0 && f <= 1 }
