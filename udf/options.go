package udf

import (
	"fmt"
	"text/template"
	"unicode/utf8"

	"github.com/influxdata/kapacitor/udf/agent"
)

// Option names, exactly as they are written in a TICKscript (without the dot).
const (
	optCrit     = "crit"
	optWarn     = "warn"
	optInfo     = "info"
	optID       = "id"
	optMessage  = "message"
	optDetails  = "details"
	optEndpoint = "endpoint"
	optURL      = "url"
	optFormat   = "format"
)

// DefaultEndpoint is the endpoint events go to when a task names none.
const DefaultEndpoint = "default"

// optionInfo lists the options @squadcast() accepts and their argument types.
// Kapacitor checks TICKscripts against it when a task is defined.
var optionInfo = map[string]*agent.OptionInfo{
	optCrit:     {ValueTypes: []agent.ValueType{agent.ValueType_STRING}},
	optWarn:     {ValueTypes: []agent.ValueType{agent.ValueType_STRING}},
	optInfo:     {ValueTypes: []agent.ValueType{agent.ValueType_STRING}},
	optID:       {ValueTypes: []agent.ValueType{agent.ValueType_STRING}},
	optMessage:  {ValueTypes: []agent.ValueType{agent.ValueType_STRING}},
	optDetails:  {ValueTypes: []agent.ValueType{agent.ValueType_STRING}},
	optEndpoint: {ValueTypes: []agent.ValueType{agent.ValueType_STRING}},
	optURL:      {ValueTypes: []agent.ValueType{agent.ValueType_STRING}},
	optFormat:   {ValueTypes: []agent.ValueType{agent.ValueType_STRING}},
}

// levelOptions maps each level to the option that sets its expression.
var levelOptions = [...]struct {
	level Level
	name  string
}{{Critical, optCrit}, {Warning, optWarn}, {Info, optInfo}}

// TaskOptions are the parsed options of one @squadcast() node.
type TaskOptions struct {
	// Levels holds the expression of each level; nil where the level is unused.
	Levels [Critical + 1]*Expr
	// ID, Message and Details are the alert node's id, message and details templates.
	ID, Message, Details *template.Template
	// Destination says where events go.
	Destination Destination
}

// ParseOptions validates the options of an Init request. Every error is an
// *OptionError naming the option and, where it is not a secret, the value.
func ParseOptions(opts []*agent.Option) (*TaskOptions, error) {
	seen := make(map[string]bool, len(opts))
	strs := make(map[string]string, len(opts))
	for _, o := range opts {
		name := o.GetName()
		info, ok := optionInfo[name]
		if !ok {
			return nil, &OptionError{Option: name, Reason: "unknown option"}
		}
		if seen[name] {
			return nil, &OptionError{Option: name, Reason: "given more than once; give it once"}
		}
		seen[name] = true
		vals := o.GetValues()
		if len(vals) != len(info.ValueTypes) {
			return nil, &OptionError{Option: name, Reason: fmt.Sprintf("takes %d argument(s), got %d", len(info.ValueTypes), len(vals))}
		}
		v := vals[0]
		if v.GetType() != agent.ValueType_STRING {
			return nil, &OptionError{Option: name, Reason: fmt.Sprintf("takes a string, got %s", v.GetType())}
		}
		strs[name] = v.GetStringValue()
	}

	to := &TaskOptions{}
	nlevels := 0
	for _, lo := range levelOptions {
		src, ok := strs[lo.name]
		if !ok {
			continue
		}
		e, err := CompileExpr(src)
		if err != nil {
			return nil, &OptionError{Option: lo.name, Value: quote(src), Reason: err.Error()}
		}
		to.Levels[lo.level] = e
		nlevels++
	}
	if nlevels == 0 {
		return nil, &OptionError{Option: optCrit, Reason: "no level expression: give at least one of .crit(), .warn() or .info(), e.g. .crit('\"usage_idle\" < 10')"}
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
		text, ok := strs[t.name]
		if !ok {
			text = t.def
		}
		tmpl, err := parseTemplate(t.name, text, sample)
		if err != nil {
			return nil, &OptionError{Option: t.name, Value: quote(text), Reason: err.Error()}
		}
		*t.dst = tmpl
	}

	to.Destination = Destination{
		Endpoint: strs[optEndpoint],
		URL:      strs[optURL],
		Format:   strs[optFormat],
	}
	if seen[optEndpoint] && to.Destination.Endpoint == "" {
		return nil, &OptionError{Option: optEndpoint, Value: "''", Reason: "empty endpoint name"}
	}
	if seen[optEndpoint] && seen[optURL] {
		return nil, &OptionError{Option: optURL, Reason: "give .endpoint() or .url(), not both"}
	}
	if to.Destination.Endpoint == "" && to.Destination.URL == "" {
		to.Destination.Endpoint = DefaultEndpoint
	}
	return to, nil
}

// quote renders a value the way it is written in a TICKscript, cut short
// when it is long.
func quote(s string) string {
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
