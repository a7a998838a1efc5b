package squadcast

import (
	"bytes"
	"encoding/json"
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
