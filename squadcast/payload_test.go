package squadcast

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/influxdata/kapacitor/alert"
	"github.com/influxdata/kapacitor/models"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

var t0 = time.Date(2024, 3, 5, 7, 8, 9, 123456789, time.UTC)

// kapacitorEvents are events whose Kapacitor rendering is checked against
// Kapacitor's own types.
var kapacitorEvents = map[string]udf.Event{
	"critical, no tags, float field": {
		ID: "cpu:nil", Message: "cpu:nil is CRITICAL", Details: "details", Time: t0,
		Duration: 90 * time.Second, Level: udf.Critical, PreviousLevel: udf.OK, Recoverable: true,
		Name: "cpu", Group: "nil", Fields: map[string]interface{}{"usage_idle": 3.5},
	},
	"ok after warning, empty tags, all field types": {
		ID: "disk:host=a", Message: "recovered", Details: "", Time: t0.Add(time.Nanosecond),
		Duration: 0, Level: udf.OK, PreviousLevel: udf.Warning, Recoverable: true,
		Name: "disk", Tags: map[string]string{},
		Fields: map[string]interface{}{
			"used_percent": 91.25, "free": int64(1024), "path": "/var", "ro": false,
			"zero": 0.0, "neg": int64(-7), "big": 1e21, "small": 1e-7, "whole": 3.0,
		},
	},
	"warning with tags, html and unicode": {
		ID: "mem:host=<a&b>", Message: `"quoted" <b>bold</b> & more ü 日本 \ back`, Details: "line1\nline2\t\u2028\u2029\x01",
		Time: t0, Duration: 3*time.Hour + 1, Level: udf.Warning, PreviousLevel: udf.Critical, Recoverable: false,
		Name: "mem", Group: "host=<a&b>",
		Tags:   map[string]string{"host": "<a&b>", "dc": "eu-1", "zz": "ü"},
		Fields: map[string]interface{}{"used": int64(math.MaxInt64), "ok": true, "note": "<script>"},
	},
	"info, no fields, no name, non-UTC input time": {
		ID: "x", Message: "m", Details: "d", Time: t0.In(time.FixedZone("X", 3600)),
		Duration: -5, Level: udf.Info, PreviousLevel: udf.Info, Recoverable: true,
		Tags: map[string]string{"k": "v"},
	},
	"zero time": {ID: "z", Level: udf.Critical, Fields: map[string]interface{}{"a": int64(1)}},
}

// kapacitorBytes encodes ev the way Kapacitor's alert node and .post() do:
// the row as edge.pointMessage.ToRow builds it, inside alert.Data, through
// json.NewEncoder(...).Encode.
func kapacitorBytes(t *testing.T, ev udf.Event) []byte {
	t.Helper()
	row := &models.Row{Name: ev.Name, Tags: ev.Tags}
	row.Columns = []string{"time"}
	for f := range ev.Fields {
		row.Columns = append(row.Columns, f)
	}
	sort.Strings(row.Columns[1:])
	row.Values = [][]interface{}{make([]interface{}, len(row.Columns))}
	row.Values[0][0] = ev.Time.UTC()
	for i, c := range row.Columns[1:] {
		row.Values[0][i+1] = ev.Fields[c]
	}
	ad := alert.Data{
		ID: ev.ID, Message: ev.Message, Details: ev.Details, Time: ev.Time.UTC(), Duration: ev.Duration,
		Level: alert.Level(ev.Level), Data: models.Result{Series: models.Rows{row}},
		PreviousLevel: alert.Level(ev.PreviousLevel), Recoverable: ev.Recoverable,
	}
	var buf bytes.Buffer
	require.NoError(t, json.NewEncoder(&buf).Encode(ad))
	return buf.Bytes()
}

func TestRenderKapacitorMatchesKapacitorBytes(t *testing.T) {
	for name, ev := range kapacitorEvents {
		t.Run(name, func(t *testing.T) {
			got, err := RenderKapacitor(ev)
			require.NoError(t, err)
			want := kapacitorBytes(t, ev)
			require.Equal(t, string(want), string(got))
			require.True(t, bytes.HasSuffix(got, []byte("}\n")), "ends with the encoder's newline")
		})
	}
}

// TestRenderKapacitorExact pins the format independently of Kapacitor's
// types, so a mistake shared by both sides of the test above would show.
func TestRenderKapacitorExact(t *testing.T) {
	ev := udf.Event{
		ID: "cpu:host=a", Message: "a<b & c>d", Details: "{}", Time: t0,
		Duration: 1500 * time.Millisecond, Level: udf.Critical, PreviousLevel: udf.Warning, Recoverable: true,
		Name: "cpu", Tags: map[string]string{"host": "a", "cpu": "cpu0"},
		Fields: map[string]interface{}{"usage_user": 97.5, "count": int64(3), "state": "busy", "up": true},
	}
	want := `{"id":"cpu:host=a","message":"a\u003cb \u0026 c\u003ed","details":"{}",` +
		`"time":"2024-03-05T07:08:09.123456789Z","duration":1500000000,"level":"CRITICAL",` +
		`"data":{"series":[{"name":"cpu","tags":{"cpu":"cpu0","host":"a"},` +
		`"columns":["time","count","state","up","usage_user"],` +
		`"values":[["2024-03-05T07:08:09.123456789Z",3,"busy",true,97.5]]}]},` +
		`"previousLevel":"WARNING","recoverable":true}` + "\n"
	got, err := RenderKapacitor(ev)
	require.NoError(t, err)
	require.Equal(t, want, string(got))

	// Without tags, fields or name, those keys are omitted as Kapacitor omits them.
	got, err = RenderKapacitor(udf.Event{ID: "i", Time: t0, Level: udf.OK})
	require.NoError(t, err)
	require.Equal(t, `{"id":"i","message":"","details":"","time":"2024-03-05T07:08:09.123456789Z",`+
		`"duration":0,"level":"OK","data":{"series":[{"columns":["time"],"values":[["2024-03-05T07:08:09.123456789Z"]]}]},`+
		`"previousLevel":"OK","recoverable":false}`+"\n", string(got))
}

func TestRenderKapacitorNonFiniteFloatsAreNull(t *testing.T) {
	ev := udf.Event{ID: "n", Time: t0, Level: udf.Critical,
		Fields: map[string]interface{}{"a": math.NaN(), "b": math.Inf(1), "c": math.Inf(-1), "d": 1.5}}
	got, err := RenderKapacitor(ev)
	require.NoError(t, err)
	var v struct {
		Data struct {
			Series []struct {
				Values [][]interface{} `json:"values"`
			} `json:"series"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(got, &v))
	require.Equal(t, []interface{}{"2024-03-05T07:08:09.123456789Z", nil, nil, nil, 1.5}, v.Data.Series[0].Values[0])
}

type webhookBody struct {
	Message     string            `json:"message"`
	Description string            `json:"description"`
	Tags        map[string]string `json:"tags"`
	Status      string            `json:"status"`
	EventID     string            `json:"event_id"`
	Priority    string            `json:"priority,omitempty"`
}

func decodeWebhook(t *testing.T, b []byte) webhookBody {
	t.Helper()
	var w webhookBody
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&w))
	return w
}

func TestRenderIncidentWebhook(t *testing.T) {
	tests := []struct {
		name string
		ev   udf.Event
		inc  incidentOptions // the task's tags and priorities
		want webhookBody
	}{
		{
			name: "critical triggers",
			ev: udf.Event{ID: "cpu:host=a", Message: "cpu high", Details: "usage 99%", Level: udf.Critical,
				Tags: map[string]string{"host": "a", "dc": "eu"}},
			want: webhookBody{Message: "cpu high", Description: "usage 99%", Status: "trigger", EventID: "cpu:host=a",
				Tags: map[string]string{"host": "a", "dc": "eu", "level": "CRITICAL"}},
		},
		{
			name: "warning and info trigger",
			ev:   udf.Event{ID: "w", Message: "m", Details: "d", Level: udf.Warning},
			want: webhookBody{Message: "m", Description: "d", Status: "trigger", EventID: "w", Tags: map[string]string{"level": "WARNING"}},
		},
		{
			name: "info triggers",
			ev:   udf.Event{ID: "i", Message: "m", Details: "d", Level: udf.Info},
			want: webhookBody{Message: "m", Description: "d", Status: "trigger", EventID: "i", Tags: map[string]string{"level": "INFO"}},
		},
		{
			name: "ok resolves",
			ev:   udf.Event{ID: "cpu:host=a", Message: "cpu ok", Details: "fine", Level: udf.OK, PreviousLevel: udf.Critical},
			want: webhookBody{Message: "cpu ok", Description: "fine", Status: "resolve", EventID: "cpu:host=a", Tags: map[string]string{"level": "OK"}},
		},
		{
			name: "level tag wins over a point tag",
			ev:   udf.Event{ID: "x", Message: "m", Details: "d", Level: udf.Critical, Tags: map[string]string{"level": "debug"}},
			want: webhookBody{Message: "m", Description: "d", Status: "trigger", EventID: "x", Tags: map[string]string{"level": "CRITICAL"}},
		},
		{
			name: "task tags win over point tags, level over both; priority on a trigger",
			ev: udf.Event{ID: "x", Message: "m", Details: "d", Level: udf.Warning,
				Tags: map[string]string{"host": "a", "team": "from-point"}},
			inc: incidentOptions{tags: map[string]string{"team": "db", "env": "prod"}, priorities: [udf.Critical + 1]string{udf.Warning: "P3"}},
			want: webhookBody{Message: "m", Description: "d", Status: "trigger", EventID: "x", Priority: "P3",
				Tags: map[string]string{"host": "a", "team": "db", "env": "prod", "level": "WARNING"}},
		},
		{
			name: "no priority on a resolve",
			ev:   udf.Event{ID: "x", Message: "m", Details: "d", Level: udf.OK},
			inc:  incidentOptions{tags: map[string]string{"env": "prod"}, priorities: [udf.Critical + 1]string{"P1", "P1", "P1", "P1"}},
			want: webhookBody{Message: "m", Description: "d", Status: "resolve", EventID: "x", Tags: map[string]string{"env": "prod", "level": "OK"}},
		},
		{
			name: "empty message and description get defaults",
			ev:   udf.Event{ID: "cpu:nil", Level: udf.Critical},
			want: webhookBody{Message: "cpu:nil is CRITICAL", Description: "cpu:nil is CRITICAL", Status: "trigger", EventID: "cpu:nil", Tags: map[string]string{"level": "CRITICAL"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := renderIncidentWebhook(tt.ev, &tt.inc)
			require.NoError(t, err)
			require.Equal(t, tt.want, decodeWebhook(t, got))
			if tt.inc.tags == nil && tt.inc.priorities == ([udf.Critical + 1]string{}) {
				exported, err := RenderIncidentWebhook(tt.ev)
				require.NoError(t, err)
				require.Equal(t, got, exported, "RenderIncidentWebhook renders a task without tags or priorities")
			}
			require.True(t, bytes.HasPrefix(got, []byte(`{"message":`)), "field order: %s", got)
		})
	}
	// The tags map given in the event is not modified.
	tags := map[string]string{"host": "a"}
	_, err := RenderIncidentWebhook(udf.Event{ID: "x", Level: udf.Critical, Tags: tags})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"host": "a"}, tags)
}

func TestRenderIncidentWebhookExact(t *testing.T) {
	got, err := RenderIncidentWebhook(udf.Event{ID: "a&b", Message: "<m>", Details: "d", Level: udf.Critical, Tags: map[string]string{"h": "1"}})
	require.NoError(t, err)
	require.Equal(t, `{"message":"\u003cm\u003e","description":"d","tags":{"h":"1","level":"CRITICAL"},"status":"trigger","event_id":"a\u0026b"}`+"\n", string(got))
	got, err = renderIncidentWebhook(udf.Event{ID: "i", Message: "m", Details: "d", Level: udf.Critical},
		&incidentOptions{priorities: [udf.Critical + 1]string{udf.Critical: "P2"}})
	require.NoError(t, err)
	require.Equal(t, `{"message":"m","description":"d","tags":{"level":"CRITICAL"},"status":"trigger","event_id":"i","priority":"P2"}`+"\n", string(got))
}

func TestRenderIncidentWebhookTruncation(t *testing.T) {
	longID := strings.Repeat("id-", 300)
	tests := []struct {
		name        string
		message     string
		description string
		wantMessage bool // the message had to be cut too
	}{
		{name: "ascii", description: strings.Repeat("a", 100<<10)},
		{name: "just over", description: strings.Repeat("b", MaxBody)},
		{name: "multibyte", description: strings.Repeat("日本語ü", 20<<10)},
		{name: "html escapes grow 6x", description: strings.Repeat("<&>", 10<<10)},
		{name: "mixed", description: strings.Repeat("x<ü\n\"\\\u2028\x01🙂", 5<<10)},
		{name: "invalid utf-8", description: strings.Repeat("ok\xff\xfe", 10<<10)},
		{name: "huge message too", message: strings.Repeat("m", 40<<10), description: strings.Repeat("d", 40<<10), wantMessage: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := udf.Event{ID: longID, Message: tt.message, Details: tt.description, Level: udf.Critical,
				Tags: map[string]string{"host": "a"}}
			if ev.Message == "" {
				ev.Message = "msg"
			}
			got, err := RenderIncidentWebhook(ev)
			require.NoError(t, err)
			require.LessOrEqual(t, len(got), MaxBody)
			// Not cut much more than needed: within a few escaped runes of the limit.
			require.Greater(t, len(got), MaxBody-16)
			w := decodeWebhook(t, got)
			require.Equal(t, longID, w.EventID, "event_id is never truncated")
			require.Equal(t, "trigger", w.Status)
			require.Equal(t, map[string]string{"host": "a", "level": "CRITICAL"}, w.Tags)
			require.True(t, strings.HasSuffix(w.Description, TruncationMarker), "description marked")
			require.True(t, utf8.ValidString(w.Description))
			cut := strings.TrimSuffix(w.Description, TruncationMarker)
			if utf8.ValidString(tt.description) {
				require.True(t, strings.HasPrefix(tt.description, cut), "description cut at a rune boundary")
			}
			if tt.wantMessage {
				require.True(t, strings.HasSuffix(w.Message, TruncationMarker), "message marked")
				require.True(t, strings.HasPrefix(tt.message, strings.TrimSuffix(w.Message, TruncationMarker)))
			} else {
				require.Equal(t, ev.Message, w.Message)
			}
		})
	}

	// A body under the limit is left alone.
	small := strings.Repeat("s", 20<<10)
	got, err := RenderIncidentWebhook(udf.Event{ID: "x", Message: "m", Details: small, Level: udf.Critical})
	require.NoError(t, err)
	require.Equal(t, small, decodeWebhook(t, got).Description)
}

// TestJSONRuneLen checks the encoded-length table against encoding/json for
// every rune and every invalid byte.
func TestJSONRuneLen(t *testing.T) {
	check := func(s string) {
		m, err := json.Marshal(s)
		require.NoError(t, err)
		if got, want := jsonStringLen(s), len(m)-2; got != want {
			for _, r := range s { // find the culprit
				m, _ := json.Marshal(string(r))
				require.Equal(t, len(m)-2, jsonStringLen(string(r)), "rune %U", r)
			}
			require.Equal(t, want, got, "string %q", s)
		}
	}
	var sb strings.Builder
	for r := rune(0); r <= utf8.MaxRune; r++ {
		sb.WriteRune(r)
		if r%512 == 511 {
			check(sb.String())
			sb.Reset()
		}
	}
	check(sb.String())
	for b := 0x80; b <= 0xff; b++ {
		check(string([]byte{'a', byte(b), 'z'}))
	}
}

func TestRenderUnknownFormat(t *testing.T) {
	_, err := Render("xml", udf.Event{})
	require.ErrorContains(t, err, `unknown format "xml"`)
	for _, f := range []string{FormatKapacitor, FormatIncidentWebhook} {
		b, err := Render(f, kapacitorEvents["critical, no tags, float field"])
		require.NoError(t, err)
		assert.True(t, json.Valid(b))
	}
}

var benchEvent = udf.Event{
	TaskID: "cpu_alert", NodeID: "squadcast2",
	ID: "cpu:host=server01,cpu=cpu-total", Message: "cpu:host=server01,cpu=cpu-total is CRITICAL",
	Details: strings.Repeat("usage_idle is below threshold <10%> & rising; ", 20), Time: t0,
	Duration: 5 * time.Minute, Level: udf.Critical, PreviousLevel: udf.Warning, Recoverable: true,
	Name: "cpu", Group: "host=server01,cpu=cpu-total",
	Tags: map[string]string{"host": "server01", "cpu": "cpu-total", "dc": "eu-west-1"},
	Fields: map[string]interface{}{
		"usage_idle": 3.2, "usage_user": 80.1, "usage_system": 16.7, "count": int64(12), "state": "busy", "up": true,
	},
}

func BenchmarkRenderKapacitor(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := RenderKapacitor(benchEvent); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRenderIncidentWebhook(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := RenderIncidentWebhook(benchEvent); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRenderKapacitorBatch: a batch event's data holds the batch's rows
// (udf.Event Columns and Values), its tags the batch's.
func TestRenderKapacitorBatch(t *testing.T) {
	ev := udf.Event{
		ID: "cpu:host=a", Message: "m", Details: "d", Time: t0, Level: udf.Critical, Recoverable: true,
		Name: "cpu", Tags: map[string]string{"host": "a"},
		Fields:  map[string]interface{}{"v": 5.0}, // the highest point's: not in data
		Columns: []string{"time", "cpu", "v"},
		Values: [][]interface{}{
			{t0, "cpu0", 50.0},
			{t0.Add(time.Second), nil, math.NaN()},
		},
	}
	got, err := RenderKapacitor(ev)
	require.NoError(t, err)
	require.Equal(t, `{"id":"cpu:host=a","message":"m","details":"d","time":"2024-03-05T07:08:09.123456789Z","duration":0,"level":"CRITICAL",`+
		`"data":{"series":[{"name":"cpu","tags":{"host":"a"},"columns":["time","cpu","v"],`+
		`"values":[["2024-03-05T07:08:09.123456789Z","cpu0",50],["2024-03-05T07:08:10.123456789Z",null,null]]}]},`+
		`"previousLevel":"OK","recoverable":true}`+"\n", string(got))
	require.True(t, math.IsNaN(ev.Values[1][2].(float64)), "the event's values are not modified")
}

// TestBodyHasNoSpareRoom: a rendered body is kept until its event is
// delivered, so it is allocated at its size (up to the allocator's size
// class), not in the buffer it was encoded in.
func TestBodyHasNoSpareRoom(t *testing.T) {
	for _, format := range []string{FormatKapacitor, FormatIncidentWebhook} {
		body, err := Render(format, benchEvent)
		require.NoError(t, err)
		t.Logf("%s: %d bytes, capacity %d", format, len(body), cap(body))
		assert.Less(t, cap(body)-len(body), 128, format)
	}
}

// TestRenderIncidentWebhookKeepsTaskTags: when the tags must be bounded,
// the task's .tag()s are kept before the point's.
func TestRenderIncidentWebhookKeepsTaskTags(t *testing.T) {
	tags := make(map[string]string)
	for i := range 2000 {
		tags[fmt.Sprintf("t%04d", i)] = strings.Repeat("v", 20)
	}
	inc := incidentOptions{tags: map[string]string{"zz-team": "db"}}
	got, err := renderIncidentWebhook(udf.Event{ID: "x", Message: "m", Details: "d", Level: udf.Critical, Tags: tags}, &inc)
	require.NoError(t, err)
	require.LessOrEqual(t, len(got), MaxBody)
	w := decodeWebhook(t, got)
	require.Equal(t, "db", w.Tags["zz-team"], "the task's tag sorts last but is kept first")
	require.Equal(t, "CRITICAL", w.Tags["level"])
	require.Contains(t, w.Tags[TruncatedKey], "tags left out")
}
