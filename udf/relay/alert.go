package relay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// ErrNotJSON is wrapped by ParseAlert's error when the body is not one
// JSON value.
var ErrNotJSON = errors.New("not JSON")

// ErrNotAlert is wrapped by ParseAlert's error when the body is JSON but
// not an alert as Kapacitor's .post() sends it.
var ErrNotAlert = errors.New("not an alert")

// Alert is one alert as Kapacitor's .post() sends it (alert/types.go Data).
type Alert struct {
	// ID, Message and Details are the alert's id (never empty), message and
	// details; Details is as Kapacitor renders it (HTML-escaped by default).
	ID, Message, Details string
	// Time is the alert's time; the zero Time when the body has none.
	Time time.Time
	// Duration is how long the alert has been away from OK (JSON: integer
	// nanoseconds); 0 when the body has none.
	Duration time.Duration
	// Level is the alert's level, udf.OK .. udf.Critical.
	Level udf.Level
	// PreviousLevel is the level of the previous event; OK when absent.
	PreviousLevel udf.Level
	// Recoverable is false when the task uses .noRecoveries() (and when
	// the body has no "recoverable").
	Recoverable bool
	// Series are the rows of the alert's data (data.series); nil when none.
	Series []Series
}

// Series is one row set of the alert's data (Kapacitor's models.Row).
//
// Every row of Values has one value per column. A value is one of: nil
// (JSON null), bool, string, json.Number (every JSON number: an integer
// keeps its precision, and the Sink decides between int64 and float64;
// note that Kapacitor writes a float field with an integral value, 95.0,
// as 95), or, in a column named "time", a time.Time (such a column must
// hold RFC 3339 strings, as Kapacitor writes it).
type Series struct {
	// Name is the measurement's name.
	Name string
	// Tags are the series' tags; nil when none.
	Tags map[string]string
	// Columns are the names of the values' columns ("time" first, then
	// the fields' names, sorted, as Kapacitor writes them).
	Columns []string
	// Values are the rows, each with one value per column.
	Values [][]interface{}
}

// wireAlert is the JSON of alert/types.go Data, with pointers where
// "absent" must be told from a zero value.
type wireAlert struct {
	ID            *string `json:"id"`
	Message       string  `json:"message"`
	Details       string  `json:"details"`
	Time          *string `json:"time"`
	Duration      int64   `json:"duration"`
	Level         *string `json:"level"`
	PreviousLevel *string `json:"previousLevel"`
	Recoverable   bool    `json:"recoverable"`
	Data          struct {
		Series []wireSeries `json:"series"`
	} `json:"data"`
}

// wireSeries is the JSON of models.Row, its values left raw for scalar.
type wireSeries struct {
	Name    string              `json:"name"`
	Tags    map[string]string   `json:"tags"`
	Columns []string            `json:"columns"`
	Values  [][]json.RawMessage `json:"values"`
}

// maxQuoted is how many bytes of an input value an error message quotes.
const maxQuoted = 64

// ParseAlert decodes and checks a .post() body: one JSON object with a
// non-empty "id" and a "level" that is one of Kapacitor's ("OK", "INFO",
// "WARNING", "CRITICAL", spelt exactly so); "previousLevel", when present
// and not null, is also a level; "time", when present and not null, is an
// RFC 3339 time; "duration" is an integer; "data.series" rows have one
// scalar value per column (see Series). Unknown fields are ignored.
//
// Its error wraps ErrNotJSON or ErrNotAlert, and its text is one line that
// quotes no more than a short cut of any input value.
func ParseAlert(body []byte) (*Alert, error) {
	var w wireAlert
	if err := json.Unmarshal(body, &w); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			return nil, fmt.Errorf("%w: %s at byte %d", ErrNotJSON, trimJSONPrefix(syntax.Error()), syntax.Offset)
		}
		return nil, fmt.Errorf("%w: %s", ErrNotAlert, typeReason(err))
	}
	if bytes.Equal(bytes.TrimSpace(body), []byte("null")) {
		return nil, fmt.Errorf("%w: the body is JSON null, not an object", ErrNotAlert)
	}
	a, reason := w.alert()
	if reason != "" {
		return nil, fmt.Errorf("%w: %s", ErrNotAlert, reason)
	}
	return a, nil
}

// alert checks w and converts it, or says why it is not an alert.
func (w *wireAlert) alert() (*Alert, string) {
	if w.ID == nil {
		return nil, `no "id"`
	}
	if *w.ID == "" {
		return nil, `empty "id"`
	}
	a := &Alert{ID: *w.ID, Message: w.Message, Details: w.Details,
		Duration: time.Duration(w.Duration), Recoverable: w.Recoverable}
	if w.Level == nil {
		return nil, `no "level"`
	}
	var ok bool
	if a.Level, ok = parseLevel(*w.Level); !ok {
		return nil, fmt.Sprintf(`"level": unknown level %s (want OK, INFO, WARNING or CRITICAL)`, quote(*w.Level))
	}
	if w.PreviousLevel != nil {
		if a.PreviousLevel, ok = parseLevel(*w.PreviousLevel); !ok {
			return nil, fmt.Sprintf(`"previousLevel": unknown level %s (want OK, INFO, WARNING or CRITICAL)`, quote(*w.PreviousLevel))
		}
	}
	if w.Time != nil {
		t, err := time.Parse(time.RFC3339Nano, *w.Time)
		if err != nil {
			return nil, fmt.Sprintf(`"time": %s is not an RFC 3339 time`, quote(*w.Time))
		}
		a.Time = t
	}
	if len(w.Data.Series) > 0 {
		a.Series = make([]Series, len(w.Data.Series))
	}
	for i := range w.Data.Series {
		s, reason := w.Data.Series[i].series()
		if reason != "" {
			return nil, fmt.Sprintf(`"data.series[%d]": %s`, i, reason)
		}
		a.Series[i] = s
	}
	return a, ""
}

// series checks ws and converts it, or says why it is not a series.
func (ws *wireSeries) series() (Series, string) {
	s := Series{Name: ws.Name, Tags: ws.Tags, Columns: ws.Columns}
	if len(ws.Values) > 0 {
		s.Values = make([][]interface{}, len(ws.Values))
	}
	for i, raw := range ws.Values {
		if len(raw) != len(ws.Columns) {
			return Series{}, fmt.Sprintf("values[%d]: %d values for %d columns", i, len(raw), len(ws.Columns))
		}
		row := make([]interface{}, len(raw))
		for j, r := range raw {
			v, ok := scalar(r, ws.Columns[j] == "time")
			if !ok {
				what := "a string, a number, true, false or null"
				if ws.Columns[j] == "time" {
					what = "an RFC 3339 time"
				}
				return Series{}, fmt.Sprintf("values[%d][%d] (column %s) is not %s", i, j, quote(ws.Columns[j]), what)
			}
			row[j] = v
		}
		s.Values[i] = row
	}
	return s, ""
}

// scalar decodes one valid JSON value (as json.Unmarshal checked it) that
// must be a scalar; in a time column, an RFC 3339 string.
func scalar(r json.RawMessage, isTime bool) (interface{}, bool) {
	if len(r) == 0 {
		return nil, false
	}
	switch c := r[0]; {
	case c == '"':
		s, ok := unquote(r)
		if !ok {
			return nil, false
		}
		if !isTime {
			return s, true
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		return t, err == nil
	case isTime:
		return nil, false
	case c == 't', c == 'f':
		return c == 't', true
	case c == 'n':
		return nil, true
	case c == '-' || (c >= '0' && c <= '9'):
		return json.Number(r), true
	}
	return nil, false // an array or an object
}

// unquote decodes a JSON string that json.Unmarshal has checked: without
// escapes and in valid UTF-8 it is its bytes between the quotes.
func unquote(r json.RawMessage) (string, bool) {
	if in := r[1 : len(r)-1]; bytes.IndexByte(in, '\\') < 0 && utf8.Valid(in) {
		return string(in), true
	}
	var s string
	err := json.Unmarshal(r, &s)
	return s, err == nil
}

// parseLevel parses a level spelt exactly as Kapacitor writes it.
func parseLevel(s string) (udf.Level, bool) {
	for l := udf.OK; l <= udf.Critical; l++ {
		if s == l.String() {
			return l, true
		}
	}
	return udf.OK, false
}

// typeReason says why a JSON body does not decode into an alert, in one line.
func typeReason(err error) string {
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		if typ.Field == "" {
			return fmt.Sprintf("the body is a JSON %s, not an object", cut(typ.Value))
		}
		return fmt.Sprintf("%s is a JSON %s, not %s", quote(typ.Field), cut(typ.Value), kindName(typ.Type.Kind()))
	}
	return "does not decode" // not reached: json.Unmarshal's other errors are syntax errors
}

// kindName names the JSON a Go kind decodes from.
func kindName(kind reflect.Kind) string {
	switch kind {
	case reflect.String, reflect.Pointer: // the pointers are *string
		return "a string"
	case reflect.Int64:
		return "an integer"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return kind.String()
}

// trimJSONPrefix removes the "json: " some encoding/json errors start with.
func trimJSONPrefix(s string) string {
	if len(s) > 6 && s[:6] == "json: " {
		return s[6:]
	}
	return s
}

// quote quotes s as a Go string, cut like cut: one short line of ASCII
// and printable runes.
func quote(s string) string {
	n := cutLen(s)
	if n == len(s) {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:n]) + "..."
}

// cut cuts s to at most maxQuoted bytes, on a rune boundary, marking the
// cut with "...".
func cut(s string) string {
	n := cutLen(s)
	if n == len(s) {
		return s
	}
	return s[:n] + "..."
}

// cutLen is the length of s cut to at most maxQuoted bytes, on a rune
// boundary.
func cutLen(s string) int {
	if len(s) <= maxQuoted {
		return len(s)
	}
	n := maxQuoted
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return n
}
