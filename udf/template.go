package udf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"text/template"
	"time"
)

// Default templates, the alert node's defaults; the message says why
// a stale resolution (.resolveStale) is OK, e.g. "cpu:host=a is OK (no
// data for 10m0s)", and is the alert node's for every other event.
const (
	DefaultIDTemplate      = "{{ .Name }}:{{ .Group }}"
	DefaultMessageTemplate = "{{ .ID }} is {{ .Level }}{{ if .Stale }} (no data for {{ .Stale }}){{ end }}"
	DefaultDetailsTemplate = "{{ json . }}"
)

// ServerInfo mirrors the alert node's .ServerInfo template variable.
// ClusterID and ServerID are Kapacitor's own and are not known to a UDF: they are empty.
type ServerInfo struct {
	Hostname  string
	ClusterID string
	ServerID  string
}

// IDInfo is the data of the id template; the field names are the alert node's.
type IDInfo struct {
	// Name is the measurement name.
	Name string
	// TaskName is Kapacitor's task ID.
	TaskName string
	// Group is the group-by tags as k=v,k=v, or "nil" without groupBy.
	Group string
	// Tags are the point's tags.
	Tags map[string]string
	// ServerInfo describes the host the daemon runs on.
	ServerInfo ServerInfo
}

// MessageInfo is the data of the message template.
type MessageInfo struct {
	IDInfo
	// ID is the alert ID.
	ID string
	// Fields are the point's fields.
	Fields map[string]interface{}
	// Level is one of OK, INFO, WARNING, CRITICAL.
	Level string
	// Time is the point's time.
	Time time.Time
	// Duration is how long the alert has been non-OK.
	Duration time.Duration
	// Stale is, for the OK event of a group resolved by .resolveStale(d)
	// (it received no data for d), d; 0 for every other event, so that
	// `{{ if .Stale }}` tells such events apart. JSON leaves it out when 0.
	Stale time.Duration `json:",omitempty"`
}

// DetailsInfo is the data of the details template.
type DetailsInfo struct {
	MessageInfo
	// Message is the rendered message.
	Message string
}

// templateFuncs are available in every template. json renders its argument
// as JSON without HTML escaping (the alert node's details template escapes
// for HTML; Squadcast shows plain text), and NaN and infinite field values
// as null (where encoding/json, and so the alert node, fails).
var templateFuncs = template.FuncMap{
	"json": func(v interface{}) (string, error) {
		s, err := encodeJSON(v)
		var uv *json.UnsupportedValueError
		if errors.As(err, &uv) {
			s, err = encodeJSON(jsonSafe(v))
		}
		return s, err
	},
}

func encodeJSON(v interface{}) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return string(bytes.TrimRight(b.Bytes(), "\n")), nil
}

// jsonSafe returns a copy of a template's data (or of a part of it) with
// NaN and infinite floats replaced by nil. It knows the types templates see:
// the info structs, field maps and floats; anything else is returned as is.
func jsonSafe(v interface{}) interface{} {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
	case float32:
		return jsonSafe(float64(x))
	case map[string]interface{}:
		out := make(map[string]interface{}, len(x))
		for k, e := range x {
			out[k] = jsonSafe(e)
		}
		return out
	case []interface{}:
		out := make([]interface{}, len(x))
		for i, e := range x {
			out[i] = jsonSafe(e)
		}
		return out
	case *DetailsInfo:
		return jsonSafe(*x)
	case DetailsInfo:
		x.MessageInfo = jsonSafe(x.MessageInfo).(MessageInfo)
		return x
	case *MessageInfo:
		return jsonSafe(*x)
	case MessageInfo:
		x.Fields, _ = jsonSafe(x.Fields).(map[string]interface{})
		return x
	}
	return v
}

// parseTemplate parses a template and runs it once on sample data, so that
// references to unknown fields fail at Init instead of at the first alert.
func parseTemplate(name, text string, sample interface{}) (*template.Template, error) {
	t, err := template.New(name).Funcs(templateFuncs).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("template parse error: %w", err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, sample); err != nil {
		return nil, fmt.Errorf("template error: %w", err)
	}
	return t, nil
}

// sampleDetails is the sample data templates are tried on in Init.
func sampleDetails() DetailsInfo {
	return DetailsInfo{
		MessageInfo: MessageInfo{
			IDInfo: IDInfo{Name: "cpu", TaskName: "task", Group: "nil", Tags: map[string]string{"host": "h"}},
			ID:     "cpu:nil",
			Fields: map[string]interface{}{"value": 1.0},
			Level:  "CRITICAL",
			Time:   time.Unix(0, 0).UTC(),
		},
		Message: "cpu:nil is CRITICAL",
	}
}

// defaultTemplates are the default id, message and details templates: a
// template that fails for a point falls back to them (see Handler.event).
var defaultTemplates = map[string]*template.Template{
	optID:      template.Must(template.New(optID).Funcs(templateFuncs).Parse(DefaultIDTemplate)),
	optMessage: template.Must(template.New(optMessage).Funcs(templateFuncs).Parse(DefaultMessageTemplate)),
	optDetails: template.Must(template.New(optDetails).Funcs(templateFuncs).Parse(DefaultDetailsTemplate)),
}

func render(t *template.Template, buf *bytes.Buffer, data interface{}) (string, error) {
	buf.Reset()
	if err := t.Execute(buf, data); err != nil {
		return "", err
	}
	return buf.String(), nil
}
