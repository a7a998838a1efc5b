package squadcast

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// MaxBody is the size every body is kept under, in both formats. Squadcast
// rejects bodies over 30 KB with 413, which would make the event a dead
// letter; this leaves room to spare. A body over it is shrunk step by step,
// each step only as far as needed, each cut marked:
//
//  1. the tags (and, in the kapacitor format, the fields of data.series)
//     are bounded to MaxTagsSize: string values cut to MaxValueSize, then
//     entries left out in key order, a TruncatedKey tag saying how many;
//  2. the details (the description) are cut, ending with TruncationMarker;
//  3. the message is cut;
//  4. the tags and fields are bounded further, down to none.
//
// The alert id is never cut: an event whose id alone does not fit is an
// error (it is logged and not sent).
const MaxBody = 28 * 1024

// MaxTagsSize bounds the encoded tags and fields of a body over MaxBody
// before its details are cut, so that a huge tag set cannot take the
// details' room.
const MaxTagsSize = 8 * 1024

// MaxValueSize is the longest tag or string field value kept whole when a
// body over MaxBody has its tags and fields bounded.
const MaxValueSize = 1024

// TruncationMarker ends a description, message or tag value that was cut to
// fit MaxBody.
const TruncationMarker = "… [truncated]"

// TruncatedKey is the tag added when tags or fields were left out to fit
// MaxBody; its value says how many, e.g. "12 of 500 tags left out".
const TruncatedKey = "truncated"

// Render renders ev in the given format (FormatKapacitor or
// FormatIncidentWebhook), as a task without .tag() or .priority() would
// send it: an Incident Webhook body has no priority.
func Render(format string, ev udf.Event) ([]byte, error) {
	return render(format, ev, &incidentOptions{})
}

// render renders ev in the given format, an Incident Webhook body with a
// task's tags and priorities.
func render(format string, ev udf.Event, inc *incidentOptions) ([]byte, error) {
	switch format {
	case FormatKapacitor:
		return RenderKapacitor(ev)
	case FormatIncidentWebhook:
		return renderIncidentWebhook(ev, inc)
	default:
		return nil, fmt.Errorf("unknown format %q (want %q or %q)", format, FormatKapacitor, FormatIncidentWebhook)
	}
}

// kapacitorAlert mirrors Kapacitor's alert.Data (alert/types.go) field for
// field, so that encoding/json produces the same bytes.
type kapacitorAlert struct {
	ID            string          `json:"id"`
	Message       string          `json:"message"`
	Details       string          `json:"details"`
	Time          time.Time       `json:"time"`
	Duration      time.Duration   `json:"duration"`
	Level         udf.Level       `json:"level"`
	Data          kapacitorResult `json:"data"`
	PreviousLevel udf.Level       `json:"previousLevel"`
	Recoverable   bool            `json:"recoverable"`
}

// kapacitorResult mirrors models.Result (its Err is always nil here, and
// omitted).
type kapacitorResult struct {
	Series []*kapacitorRow `json:"series"`
}

// kapacitorRow mirrors models.Row, tags and all.
type kapacitorRow struct {
	Name    string            `json:"name,omitempty"`
	Tags    map[string]string `json:"tags,omitempty"`
	Columns []string          `json:"columns,omitempty"`
	Values  [][]interface{}   `json:"values,omitempty"`
}

// RenderKapacitor renders ev as the alert JSON Kapacitor's .post() handler
// sends: json.NewEncoder(w).Encode(alert.Data), trailing newline included,
// with the point as the one row of data.series, its columns "time" then the
// field names sorted (as edge.pointMessage.ToRow builds them); for a batch
// event (ev.Columns set), the batch's rows.
//
// One difference: a NaN or infinite float field is rendered as null, where
// Kapacitor fails to encode the alert and sends nothing.
func RenderKapacitor(ev udf.Event) ([]byte, error) {
	t := ev.Time.UTC()
	var columns []string
	var rows [][]interface{}
	if ev.Columns != nil {
		// A batch: its rows, as the alert node's BufferedBatchMessage.ToRow.
		columns = ev.Columns
		rows = make([][]interface{}, len(ev.Values))
		for i, r := range ev.Values {
			row := make([]interface{}, len(r))
			for j, v := range r {
				row[j] = jsonSafeValue(v)
			}
			rows[i] = row
		}
	} else {
		columns = make([]string, 1, len(ev.Fields)+1)
		columns[0] = "time"
		for f := range ev.Fields {
			columns = append(columns, f)
		}
		sort.Strings(columns[1:])
		values := make([]interface{}, len(columns))
		values[0] = t
		for i, c := range columns[1:] {
			values[i+1] = jsonSafeValue(ev.Fields[c])
		}
		rows = [][]interface{}{values}
	}
	a := kapacitorAlert{
		ID:       ev.ID,
		Message:  ev.Message,
		Details:  ev.Details,
		Time:     t,
		Duration: ev.Duration,
		Level:    ev.Level,
		Data: kapacitorResult{Series: []*kapacitorRow{{
			Name:    ev.Name,
			Tags:    ev.Tags,
			Columns: columns,
			Values:  rows,
		}}},
		PreviousLevel: ev.PreviousLevel,
		Recoverable:   ev.Recoverable,
	}
	body, err := encodeJSON(&a, "kapacitor alert")
	if err != nil || len(body) <= MaxBody {
		return body, err
	}
	row := a.Data.Series[0]
	fit := func(budget int) {
		name, tags, cols, vals := fitRow(ev.Name, ev.Tags, ev.Fields, columns[1:], budget)
		row.Name, row.Tags = name, tags
		row.Columns = append([]string{"time"}, cols...)
		row.Values = [][]interface{}{append([]interface{}{t}, vals...)}
	}
	return shrink(&a, "kapacitor alert", shrinkSteps{
		fitTags: fit,
		tagsLen: func() int { b, _ := json.Marshal(row); return len(b) },
		details: &a.Details,
		message: &a.Message,
		id:      a.ID,
	})
}

// encodeBufs are the buffers encodeJSON encodes into.
var encodeBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// encodeJSON encodes v as encoding/json's Encoder does (HTML escaping,
// trailing newline), as Kapacitor does. It encodes into a pooled buffer
// and returns a copy of just the body's size: a body stays in memory
// until its event is delivered, and a buffer grown while encoding has
// room to spare (a fifth of a typical body).
func encodeJSON(v interface{}, what string) ([]byte, error) {
	buf := encodeBufs.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 2*MaxBody {
			encodeBufs.Put(buf)
		}
	}()
	buf.Reset()
	if err := json.NewEncoder(buf).Encode(v); err != nil {
		return nil, fmt.Errorf("encode %s json: %w", what, err)
	}
	return bytes.Clone(buf.Bytes()), nil
}

// shrinkSteps are the parts of a body shrink may cut.
type shrinkSteps struct {
	// fitTags bounds the tags (and fields) to a budget in encoded bytes.
	fitTags func(budget int)
	// tagsLen returns their encoded size now.
	tagsLen          func() int
	details, message *string
	id               string
}

// shrink cuts v's body down to MaxBody: see MaxBody.
func shrink(v interface{}, what string, s shrinkSteps) ([]byte, error) {
	var body []byte
	var err error
	// over encodes v and returns how far its body is over MaxBody.
	over := func() int {
		if body, err = encodeJSON(v, what); err != nil {
			return 0
		}
		return len(body) - MaxBody
	}
	if s.tagsLen() > MaxTagsSize {
		s.fitTags(MaxTagsSize)
	}
	n := over()
	if n <= 0 {
		return body, err
	}
	*s.details = truncateJSONString(*s.details, n)
	if n = over(); n <= 0 {
		return body, err
	}
	*s.message = truncateJSONString(*s.message, n)
	if n = over(); n <= 0 {
		return body, err
	}
	// Bound the tags further; should the estimate fall short, halve the
	// budget until the body fits or no tag is left.
	for budget := s.tagsLen() - n; ; budget = min(budget-n, budget/2) {
		s.fitTags(max(budget, 0))
		if n = over(); n <= 0 {
			return body, err
		}
		if budget <= 0 {
			break
		}
	}
	return nil, fmt.Errorf("encode %s json: the body is %d bytes with its details, message and tags cut, over the limit of %d: its alert id (%d bytes) is too long, and is never cut",
		what, len(body), MaxBody, len(s.id))
}

// fitRow bounds a data.series row's tags and fields (whose names are
// given sorted) to a budget in encoded bytes, tags first: see fitEntries.
// The measurement name is cut to MaxValueSize. Left-out entries are counted
// in a TruncatedKey tag.
func fitRow(name string, tags map[string]string, fields map[string]interface{}, names []string, budget int) (string, map[string]string, []string, []interface{}) {
	name = cutValue(name)
	tagKeys := sortedKeys(tags)
	kept, tagVals, used := fitEntries(tagKeys, func(k string) (interface{}, int) {
		v := cutValue(tags[k])
		return v, jsonStringLen(k) + jsonStringLen(v) + 6
	}, budget)
	out := make(map[string]string, len(kept)+1)
	for i, k := range kept {
		out[k] = tagVals[i].(string)
	}
	cols, vals, _ := fitEntries(names, func(k string) (interface{}, int) {
		v := jsonSafeValue(fields[k])
		if s, ok := v.(string); ok {
			v = cutValue(s)
		}
		b, _ := json.Marshal(v)
		return v, jsonStringLen(k) + len(b) + 4
	}, budget-used)
	if lt, lf := len(tagKeys)-len(kept), len(names)-len(cols); lt > 0 || lf > 0 {
		out[TruncatedKey] = fmt.Sprintf("%d of %d tags and %d of %d fields left out", lt, len(tagKeys), lf, len(names))
	}
	if len(out) == 0 {
		out = nil
	}
	return name, out, cols, vals
}

// fitEntries returns the keys (in the order given) and values that fit a
// budget in encoded bytes, each entry's value and cost given by entry, and
// the bytes they use. When some are left out, it keeps room for a
// TruncatedKey tag. An entry whose key is longer than MaxValueSize is left
// out.
func fitEntries(keys []string, entry func(string) (interface{}, int), budget int) ([]string, []interface{}, int) {
	total := 0
	costs := make([]int, len(keys))
	vals := make([]interface{}, len(keys))
	for i, k := range keys {
		vals[i], costs[i] = entry(k)
		total += costs[i]
	}
	if total > budget {
		budget -= 64 // the TruncatedKey tag
	}
	var outK []string
	var outV []interface{}
	used := 0
	for i, k := range keys {
		if len(k) > MaxValueSize || used+costs[i] > budget {
			continue
		}
		used += costs[i]
		outK = append(outK, k)
		outV = append(outV, vals[i])
	}
	return outK, outV, used
}

// cutValue cuts s to at most about MaxValueSize encoded bytes, marked.
func cutValue(s string) string {
	if over := jsonStringLen(s) - MaxValueSize; over > 0 {
		return truncateJSONString(s, over)
	}
	return s
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// jsonSafeValue replaces the float values encoding/json refuses (NaN, ±Inf) by nil.
func jsonSafeValue(v interface{}) interface{} {
	switch f := v.(type) {
	case float64:
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil
		}
	case float32:
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			return nil
		}
	}
	return v
}

// incidentWebhook is Squadcast's Incident Webhook (API v2) body.
type incidentWebhook struct {
	Message     string            `json:"message"`
	Description string            `json:"description"`
	Tags        map[string]string `json:"tags"`
	Status      string            `json:"status"`
	EventID     string            `json:"event_id"`
	Priority    string            `json:"priority,omitempty"`
}

// Incident Webhook statuses.
const (
	statusTrigger = "trigger"
	statusResolve = "resolve"
)

// RenderIncidentWebhook renders ev as a Squadcast Incident Webhook (API v2)
// body, as a task without .tag() or .priority() would send it: see
// renderIncidentWebhook.
func RenderIncidentWebhook(ev udf.Event) ([]byte, error) {
	return renderIncidentWebhook(ev, &incidentOptions{})
}

// renderIncidentWebhook renders ev as a Squadcast Incident Webhook (API
// v2) body: {"message","description","tags","status","event_id","priority"}.
// The status is "resolve" for level OK and "trigger" otherwise; event_id is
// the alert ID; tags are the point's tags, then the task's .tag()s (which
// win over a point tag of the same key), then "level" (which wins over
// both); priority is the task's priority of the level on a trigger, and
// left out when empty or on a resolve. An empty message becomes "<id> is
// <level>" and an empty description the message, since Squadcast needs
// both to trigger.
//
// A body over MaxBody is shrunk (see MaxBody): the tags, then the
// description, then the message, then the tags further; the "level" tag is
// always kept, and the event_id is never cut.
func renderIncidentWebhook(ev udf.Event, inc *incidentOptions) ([]byte, error) {
	p := incidentWebhook{
		Message:     ev.Message,
		Description: ev.Details,
		Tags:        make(map[string]string, len(ev.Tags)+len(inc.tags)+1),
		Status:      statusTrigger,
		EventID:     ev.ID,
	}
	if ev.Level == udf.OK {
		p.Status = statusResolve
	} else {
		p.Priority = inc.priorities[ev.Level]
	}
	if p.Message == "" {
		p.Message = ev.ID + " is " + ev.Level.String()
	}
	if p.Description == "" {
		p.Description = p.Message
	}
	for k, v := range ev.Tags {
		p.Tags[k] = v
	}
	for k, v := range inc.tags {
		p.Tags[k] = v
	}
	level := ev.Level.String()
	p.Tags["level"] = level

	body, err := encodeJSON(&p, "incident webhook")
	if err != nil || len(body) <= MaxBody {
		return body, err
	}
	// Shrinking keeps the task's .tag()s first, then the point's tags, each
	// in key order.
	all := p.Tags
	var extra, others []string
	for k := range all {
		switch _, isExtra := inc.tags[k]; {
		case k == "level":
		case isExtra:
			extra = append(extra, k)
		default:
			others = append(others, k)
		}
	}
	sort.Strings(extra)
	sort.Strings(others)
	others = append(extra, others...)
	return shrink(&p, "incident webhook", shrinkSteps{
		fitTags: func(budget int) {
			budget -= jsonStringLen("level") + jsonStringLen(level) + 6
			kept, vals, _ := fitEntries(others, func(k string) (interface{}, int) {
				v := cutValue(all[k])
				return v, jsonStringLen(k) + jsonStringLen(v) + 6
			}, budget)
			p.Tags = make(map[string]string, len(kept)+2)
			for i, k := range kept {
				p.Tags[k] = vals[i].(string)
			}
			if n := len(others) - len(kept); n > 0 {
				p.Tags[TruncatedKey] = fmt.Sprintf("%d of %d tags left out", n, len(others))
			}
			p.Tags["level"] = level
		},
		tagsLen: func() int { b, _ := json.Marshal(p.Tags); return len(b) },
		details: &p.Description,
		message: &p.Message,
		id:      p.EventID,
	})
}

// asciiJSONLen[b] is the length encoding/json (HTML escaping on) gives the
// ASCII byte b inside a string. It is measured rather than copied, so that it
// follows the Go release in use.
var asciiJSONLen = func() (t [utf8.RuneSelf]uint8) {
	for b := range t {
		m, _ := json.Marshal(string(rune(b)))
		t[b] = uint8(len(m) - 2)
	}
	return t
}()

// jsonRuneLen returns the size of the rune starting s[i] and the number of
// bytes encoding/json writes for it inside a string.
func jsonRuneLen(s string, i int) (size, encoded int) {
	if b := s[i]; b < utf8.RuneSelf {
		return 1, int(asciiJSONLen[b])
	}
	r, size := utf8.DecodeRuneInString(s[i:])
	switch {
	case r == utf8.RuneError && size == 1:
		return 1, len(`\ufffd`)
	case r == '\u2028' || r == '\u2029':
		return size, len(`\u2028`)
	}
	return size, size
}

// jsonStringLen is the encoded length of s inside a JSON string, quotes excluded.
func jsonStringLen(s string) int {
	n := 0
	for i := 0; i < len(s); {
		size, enc := jsonRuneLen(s, i)
		n += enc
		i += size
	}
	return n
}

// truncateJSONString shortens s so that its JSON encoding is at least
// excess bytes shorter, cutting at a rune boundary and appending
// TruncationMarker. When even the marker alone does not make up for it, the
// result is the marker alone, and the caller must shorten something else.
func truncateJSONString(s string, excess int) string {
	budget := jsonStringLen(s) - excess - jsonStringLen(TruncationMarker)
	if budget <= 0 {
		return TruncationMarker
	}
	n, cut := 0, 0
	for cut < len(s) {
		size, enc := jsonRuneLen(s, cut)
		if n+enc > budget {
			break
		}
		n += enc
		cut += size
	}
	return s[:cut] + TruncationMarker
}
