package relay

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/kapacitor/alert"
	"github.com/influxdata/kapacitor/models"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// kapacitorBody is a body as Kapacitor's .post() sends it: alert/types.go
// Data through json.Encoder, so with a trailing newline.
const kapacitorBody = `{"id":"cpu:nil","message":"cpu:nil is CRITICAL","details":"\u003cb\u003ecpu\u003c/b\u003e","time":"2024-01-01T00:00:00Z","duration":0,"level":"CRITICAL","data":{"series":[{"name":"cpu","tags":{"host":"a"},"columns":["time","value"],"values":[["2024-01-01T00:00:00Z",95]]}]},"previousLevel":"OK","recoverable":true}` + "\n"

var t0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// kapacitorAlert is kapacitorBody parsed.
var kapacitorAlert = &Alert{
	ID: "cpu:nil", Message: "cpu:nil is CRITICAL", Details: "<b>cpu</b>",
	Time: t0, Level: udf.Critical, PreviousLevel: udf.OK, Recoverable: true,
	Series: []Series{{Name: "cpu", Tags: map[string]string{"host": "a"}, Columns: []string{"time", "value"},
		Values: [][]interface{}{{t0, json.Number("95")}}}},
}

func TestParseAlertKapacitorBody(t *testing.T) {
	a, err := ParseAlert([]byte(kapacitorBody))
	require.NoError(t, err)
	assert.Equal(t, kapacitorAlert, a)
}

// TestParseAlertKapacitorEncoded: what Kapacitor's own types encode, for
// each level and value type, parses into the same values.
func TestParseAlertKapacitorEncoded(t *testing.T) {
	tn := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	for _, lvl := range []alert.Level{alert.OK, alert.Info, alert.Warning, alert.Critical} {
		d := alert.Data{ID: "disk:host=a,path=/", Message: "m", Details: `{"a":"<&>"}`, Time: tn,
			Duration: 90 * time.Second, Level: lvl, PreviousLevel: alert.Warning, Recoverable: lvl != alert.Info,
			Data: models.Result{Series: models.Rows{{Name: "disk", Tags: map[string]string{"host": "a", "path": "/"},
				Columns: []string{"time", "free", "n", "ok", "s"},
				Values:  [][]interface{}{{tn, 1.5, int64(1) << 60, true, "x\ny"}}}}},
		}
		var b bytes.Buffer
		require.NoError(t, json.NewEncoder(&b).Encode(d))
		a, err := ParseAlert(b.Bytes())
		require.NoError(t, err, b.String())
		assert.Equal(t, d.ID, a.ID)
		assert.Equal(t, d.Details, a.Details)
		assert.True(t, tn.Equal(a.Time))
		assert.Equal(t, d.Duration, a.Duration)
		assert.Equal(t, lvl.String(), a.Level.String())
		assert.Equal(t, udf.Warning, a.PreviousLevel)
		assert.Equal(t, d.Recoverable, a.Recoverable)
		require.Len(t, a.Series, 1)
		s := a.Series[0]
		assert.Equal(t, d.Data.Series[0].Tags, s.Tags)
		assert.Equal(t, d.Data.Series[0].Columns, s.Columns)
		require.Len(t, s.Values, 1)
		assert.True(t, tn.Equal(s.Values[0][0].(time.Time)))
		assert.Equal(t, []interface{}{json.Number("1.5"), json.Number("1152921504606846976"), true, "x\ny"}, s.Values[0][1:])
	}
}

// TestParseAlertLenient: what ParseAlert accepts beyond Kapacitor's exact
// shape, and its defaults.
func TestParseAlertLenient(t *testing.T) {
	tests := []struct {
		name string
		body string
		want Alert
	}{
		{"only id and level", `{"id":"x","level":"OK"}`, Alert{ID: "x"}},
		{"nulls for optional fields", `{"id":"x","level":"INFO","time":null,"previousLevel":null,"duration":null,"data":null,"message":null}`,
			Alert{ID: "x", Level: udf.Info}},
		{"unknown fields", `{"id":"x","level":"WARNING","extra":[1,{"a":2}],"data":{"series":[],"error":"e"}}`,
			Alert{ID: "x", Level: udf.Warning}},
		{"spaces around values", "\r\n\t{ \"id\" : \"x\" , \"level\" : \"CRITICAL\", \"data\": {\"series\": [ {\"columns\": [ \"time\" , \"v\" ], \"values\": [ [ \"2024-01-01T00:00:00Z\" , -1e3 ] , [ \"2024-01-01T00:00:00.5+01:00\" , null ] ] } ] } }\n\n",
			Alert{ID: "x", Level: udf.Critical, Series: []Series{{Columns: []string{"time", "v"}, Values: [][]interface{}{
				{t0, json.Number("-1e3")}, {time.Date(2024, 1, 1, 0, 0, 0, 5e8, time.FixedZone("", 3600)), nil}}}}}},
		{"negative duration, time with an offset", `{"id":"x","level":"OK","duration":-5,"time":"2024-01-01T01:00:00+01:00"}`,
			Alert{ID: "x", Duration: -5, Time: time.Date(2024, 1, 1, 1, 0, 0, 0, time.FixedZone("", 3600))}},
		{"empty row set", `{"id":"x","level":"OK","data":{"series":[{"name":"m"}]}}`,
			Alert{ID: "x", Series: []Series{{Name: "m"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseAlert([]byte(tt.body))
			require.NoError(t, err)
			assert.True(t, tt.want.Time.Equal(a.Time), a.Time)
			want := tt.want
			want.Time, a.Time = time.Time{}, time.Time{}
			assert.Equal(t, want.Series, a.Series) // time.Time compared by ==: same zone offset
			assert.Equal(t, &want, a)
		})
	}
}

// badBodies are bodies the handler must refuse, with the start of
// ParseAlert's error. Shared with the handler's table and the fuzz seeds.
var badBodies = []struct {
	name, body string
	notJSON    bool
	want       string
}{
	{"empty", ``, true, "not JSON: unexpected end of JSON input"},
	{"spaces only", " \n", true, "not JSON: unexpected end of JSON input"},
	{"text", `cpu is high`, true, "not JSON: invalid character 'c'"},
	{"cut object", `{"id":"x","level":"OK"`, true, "not JSON: unexpected end of JSON input"},
	{"two objects", `{"id":"x","level":"OK"}{"id":"y","level":"OK"}`, true, "not JSON: invalid character '{' after top-level value"},
	{"trailing comma", `{"id":"x","level":"OK",}`, true, "not JSON: invalid character '}'"},
	{"array", `[{"id":"x","level":"OK"}]`, false, "not an alert: the body is a JSON array, not an object"},
	{"string", `"alert"`, false, "not an alert: the body is a JSON string, not an object"},
	{"null", " null\n", false, `not an alert: the body is JSON null, not an object`},
	{"empty object", `{}`, false, `not an alert: no "id"`},
	{"empty id", `{"id":"","level":"OK"}`, false, `not an alert: empty "id"`},
	{"numeric id", `{"id":5,"level":"OK"}`, false, `not an alert: "id" is a JSON number, not a string`},
	{"no level", `{"id":"x"}`, false, `not an alert: no "level"`},
	{"null level", `{"id":"x","level":null}`, false, `not an alert: no "level"`},
	{"empty level", `{"id":"x","level":""}`, false, `not an alert: "level": unknown level ""`},
	{"lower-case level", `{"id":"x","level":"critical"}`, false, `not an alert: "level": unknown level "critical"`},
	{"unknown level", `{"id":"x","level":"FATAL"}`, false, `not an alert: "level": unknown level "FATAL" (want OK, INFO, WARNING or CRITICAL)`},
	{"numeric level", `{"id":"x","level":3}`, false, `not an alert: "level" is a JSON number, not a string`},
	{"long level, cut", `{"id":"x","level":"` + strings.Repeat("A", 500) + `"}`, false, `not an alert: "level": unknown level "` + strings.Repeat("A", 64) + `"...`},
	{"level with a line break", `{"id":"x","level":"OK\nINFO"}`, false, `not an alert: "level": unknown level "OK\nINFO"`},
	{"unknown previous level", `{"id":"x","level":"OK","previousLevel":"NONE"}`, false, `not an alert: "previousLevel": unknown level "NONE"`},
	{"time not RFC 3339", `{"id":"x","level":"OK","time":"2024-01-01 00:00:00"}`, false, `not an alert: "time": "2024-01-01 00:00:00" is not an RFC 3339 time`},
	{"numeric time", `{"id":"x","level":"OK","time":1704067200}`, false, `not an alert: "time" is a JSON number, not a string`},
	{"fractional duration", `{"id":"x","level":"OK","duration":1.5}`, false, `not an alert: "duration" is a JSON number 1.5, not an integer`},
	{"duration as text", `{"id":"x","level":"OK","duration":"1s"}`, false, `not an alert: "duration" is a JSON string, not an integer`},
	{"recoverable as text", `{"id":"x","level":"OK","recoverable":"yes"}`, false, `not an alert: "recoverable" is a JSON string, not true or false`},
	{"data as text", `{"id":"x","level":"OK","data":"cpu"}`, false, `not an alert: "data" is a JSON string, not an object`},
	{"numeric tag", `{"id":"x","level":"OK","data":{"series":[{"tags":{"n":1}}]}}`, false, `not an alert: "data.series.tags`},
	{"short row", `{"id":"x","level":"OK","data":{"series":[{"columns":["time","v"],"values":[["2024-01-01T00:00:00Z"]]}]}}`, false,
		`not an alert: "data.series[0]": values[0]: 1 values for 2 columns`},
	{"object value", `{"id":"x","level":"OK","data":{"series":[{},{"columns":["v"],"values":[[1],[{"a":1}]]}]}}`, false,
		`not an alert: "data.series[1]": values[1][0] (column "v") is not a string, a number, true, false or null`},
	{"array value", `{"id":"x","level":"OK","data":{"series":[{"columns":["v"],"values":[[[1]]]}]}}`, false,
		`not an alert: "data.series[0]": values[0][0] (column "v") is not a string`},
	{"bad time column", `{"id":"x","level":"OK","data":{"series":[{"columns":["time"],"values":[["noon"]]}]}}`, false,
		`not an alert: "data.series[0]": values[0][0] (column "time") is not an RFC 3339 time`},
	{"numeric time column", `{"id":"x","level":"OK","data":{"series":[{"columns":["time"],"values":[[0]]}]}}`, false,
		`not an alert: "data.series[0]": values[0][0] (column "time") is not an RFC 3339 time`},
	{"null time column", `{"id":"x","level":"OK","data":{"series":[{"columns":["time"],"values":[[null]]}]}}`, false,
		`not an alert: "data.series[0]": values[0][0] (column "time") is not an RFC 3339 time`},
}

func TestParseAlertRefuses(t *testing.T) {
	for _, tt := range badBodies {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseAlert([]byte(tt.body))
			require.Error(t, err)
			assert.Nil(t, a)
			assert.Equal(t, tt.notJSON, errors.Is(err, ErrNotJSON), err)
			assert.Equal(t, !tt.notJSON, errors.Is(err, ErrNotAlert), err)
			assert.True(t, strings.HasPrefix(err.Error(), tt.want), "got %q\nwant %q...", err, tt.want)
			assert.NotContains(t, err.Error(), "\n")
		})
	}
}

func TestQuoteCuts(t *testing.T) {
	assert.Equal(t, `"abc"`, quote("abc"))
	assert.Equal(t, `"`+strings.Repeat("a", 64)+`"`, quote(strings.Repeat("a", 64)))
	assert.Equal(t, `"`+strings.Repeat("a", 64)+`"...`, quote(strings.Repeat("a", 65)))
	// A cut never splits a rune: 63 bytes of "a", then a 2-byte rune.
	assert.Equal(t, `"`+strings.Repeat("a", 63)+`"...`, quote(strings.Repeat("a", 63)+"é"+"z"))
	assert.Equal(t, `"\x00\n\u202e"`, quote("\x00\n\u202e"))
}

// TestUnquote: the fast path agrees with encoding/json.
func TestUnquote(t *testing.T) {
	for _, r := range []string{`""`, `"a"`, `"é"`, `"a\u00e9\n\"\\\/"`, "\"\xff\xfe\"", `"\ud800"`, "\"a\xc3\""} {
		var want string
		require.NoError(t, json.Unmarshal([]byte(r), &want), r)
		got, ok := unquote(json.RawMessage(r))
		assert.True(t, ok, r)
		assert.Equal(t, want, got, r)
	}
}
