package squadcast

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"time"
	"unicode/utf8"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// MaxIncidentWebhookBody is the size an Incident Webhook body is kept under
// by truncating its description (then, if need be, its message). Squadcast
// rejects bodies over 30 KB with 413; this leaves room to spare.
const MaxIncidentWebhookBody = 28 * 1024

// TruncationMarker ends a description or message that was cut to fit
// MaxIncidentWebhookBody.
const TruncationMarker = "… [truncated]"

// Render renders ev in the given format (FormatKapacitor or FormatIncidentWebhook).
func Render(format string, ev udf.Event) ([]byte, error) {
	switch format {
	case FormatKapacitor:
		return RenderKapacitor(ev)
	case FormatIncidentWebhook:
		return RenderIncidentWebhook(ev)
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
	var buf bytes.Buffer
	buf.Grow(512 + len(ev.Message) + len(ev.Details))
	if err := json.NewEncoder(&buf).Encode(a); err != nil {
		return nil, fmt.Errorf("encode kapacitor alert json: %w", err)
	}
	return buf.Bytes(), nil
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
// body: {"message","description","tags","status","event_id","priority"}. The
// status is "resolve" for level OK and "trigger" otherwise; event_id is the
// alert ID; tags are the point's tags, then the task's .tag()s (which win
// over a point tag of the same key), then "level" (which wins over both);
// priority is ev.Priority on a trigger, and left out when empty or on a
// resolve. An empty message becomes "<id> is <level>" and an empty
// description the message, since Squadcast needs both to trigger.
//
// A body over MaxIncidentWebhookBody has its description cut at a UTF-8
// boundary and ended with TruncationMarker; if that is not enough, its
// message too. The event_id and tags are never cut.
func RenderIncidentWebhook(ev udf.Event) ([]byte, error) {
	p := incidentWebhook{
		Message:     ev.Message,
		Description: ev.Details,
		Tags:        make(map[string]string, len(ev.Tags)+len(ev.ExtraTags)+1),
		Status:      statusTrigger,
		EventID:     ev.ID,
	}
	if ev.Level == udf.OK {
		p.Status = statusResolve
	} else {
		p.Priority = ev.Priority
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
	for k, v := range ev.ExtraTags {
		p.Tags[k] = v
	}
	p.Tags["level"] = ev.Level.String()

	body, err := encodeIncidentWebhook(&p)
	if err != nil {
		return nil, err
	}
	if over := len(body) - MaxIncidentWebhookBody; over > 0 {
		p.Description = truncateJSONString(p.Description, over)
		if body, err = encodeIncidentWebhook(&p); err != nil {
			return nil, err
		}
	}
	if over := len(body) - MaxIncidentWebhookBody; over > 0 {
		p.Message = truncateJSONString(p.Message, over)
		if body, err = encodeIncidentWebhook(&p); err != nil {
			return nil, err
		}
	}
	return body, nil
}

func encodeIncidentWebhook(p *incidentWebhook) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(256 + len(p.Message) + len(p.Description))
	if err := json.NewEncoder(&buf).Encode(p); err != nil {
		return nil, fmt.Errorf("encode incident webhook json: %w", err)
	}
	return buf.Bytes(), nil
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
