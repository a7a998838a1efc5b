package squadcast

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// decodedBody is what the checks below read from a body of either format.
type decodedBody struct {
	ID, Message, Details string
	Level                string
	Tags                 map[string]string
	Fields               map[string]interface{} // kapacitor format only
}

// decodeAny decodes a body of either format.
func decodeAny(t *testing.T, format string, b []byte) decodedBody {
	t.Helper()
	require.True(t, json.Valid(b), "valid JSON")
	var d decodedBody
	switch format {
	case FormatKapacitor:
		var a struct {
			ID, Message, Details, Level string
			Data                        struct {
				Series []struct {
					Name    string
					Tags    map[string]string
					Columns []string
					Values  [][]interface{}
				}
			}
		}
		require.NoError(t, json.Unmarshal(b, &a))
		require.Len(t, a.Data.Series, 1)
		row := a.Data.Series[0]
		require.Len(t, row.Values, 1)
		require.Equal(t, len(row.Columns), len(row.Values[0]), "a value per column")
		require.Equal(t, "time", row.Columns[0])
		d = decodedBody{ID: a.ID, Message: a.Message, Details: a.Details, Level: a.Level, Tags: row.Tags, Fields: map[string]interface{}{}}
		for i, c := range row.Columns[1:] {
			d.Fields[c] = row.Values[0][i+1]
		}
	case FormatIncidentWebhook:
		w := decodeWebhook(t, b)
		d = decodedBody{ID: w.EventID, Message: w.Message, Details: w.Description, Level: w.Tags["level"], Tags: w.Tags}
	}
	return d
}

// jsonRoundTrip is s as it reads back from JSON (invalid UTF-8 replaced).
func jsonRoundTrip(s string) string {
	b, _ := json.Marshal(s)
	var out string
	_ = json.Unmarshal(b, &out)
	return out
}

// TestRenderSizeLimits: hostile events render, in both formats, as valid
// JSON under MaxBody, cut where they are cut with a marker, the id whole.
func TestRenderSizeLimits(t *testing.T) {
	manyTags := map[string]string{}
	for i := range 20000 {
		manyTags["host_"+strconv.Itoa(i)] = "value-" + strconv.Itoa(i)
	}
	manyFields := map[string]interface{}{}
	for i := range 10000 {
		manyFields["f"+strconv.Itoa(i)] = float64(i)
	}
	long := strings.Repeat(`<"long" \ value ü> `, 50000) // ~1 MB
	base := udf.Event{ID: "cpu:host=a", Message: "cpu:host=a is CRITICAL", Details: "details", Level: udf.Critical, Time: t0,
		Name: "cpu", Tags: map[string]string{"host": "a"}, Fields: map[string]interface{}{"v": 95.0}}
	with := func(f func(*udf.Event)) udf.Event {
		ev := base
		f(&ev)
		return ev
	}
	tests := []sizeCase{
		{name: "huge details", ev: with(func(e *udf.Event) { e.Details = long }), cutDetails: true},
		{name: "huge details and message", ev: with(func(e *udf.Event) { e.Details, e.Message = long, long }), cutDetails: true, cutMessage: true},
		{name: "huge tag set", ev: with(func(e *udf.Event) { e.Tags = manyTags }), tagsLeftOut: true},
		{name: "huge tag set and details", ev: with(func(e *udf.Event) { e.Tags, e.Details = manyTags, long }), tagsLeftOut: true, cutDetails: true},
		{name: "very long tag value", ev: with(func(e *udf.Event) { e.Tags = map[string]string{"host": "a", "note": long} })},
		{name: "very long tag key", ev: with(func(e *udf.Event) { e.Tags = map[string]string{"host": "a", long: "x"} }), tagsLeftOut: true},
		{name: "very long string field", ev: with(func(e *udf.Event) { e.Fields = map[string]interface{}{"v": 95.0, "log": long} })},
		{name: "many fields", ev: with(func(e *udf.Event) { e.Fields = manyFields })},
		{name: "non-finite fields", ev: with(func(e *udf.Event) {
			e.Fields = map[string]interface{}{"nan": math.NaN(), "inf": math.Inf(1), "ninf": math.Inf(-1), "s": long}
		})},
		{name: "very long measurement", ev: with(func(e *udf.Event) { e.Name = long })},
		{name: "invalid UTF-8 everywhere", ev: with(func(e *udf.Event) {
			bad := strings.Repeat("ok\xff\xfe<", 20000)
			e.Details, e.Message, e.Tags, e.Fields = bad, bad, map[string]string{"host": bad}, map[string]interface{}{"s": bad}
		}), cutDetails: true, cutMessage: true},
		{name: "long id and huge tags", ev: with(func(e *udf.Event) { e.ID = strings.Repeat("i", 20000); e.Tags = manyTags; e.Details = long }), cutDetails: true, tagsLeftOut: true},
	}
	for _, tt := range tests {
		for _, format := range []string{FormatKapacitor, FormatIncidentWebhook} {
			t.Run(tt.name+"/"+format, func(t *testing.T) { checkSizeCase(t, format, tt) })
		}
	}
}

// sizeCase is an event over Squadcast's size limit, and what rendering it
// must cut (else it must be whole).
type sizeCase struct {
	name                   string
	ev                     udf.Event
	cutDetails, cutMessage bool
	tagsLeftOut            bool // a TruncatedKey tag is expected
}

// checkSizeCase renders tt.ev in format and checks that the body is within
// MaxBody, that the id is whole and that only what tt says was cut, each
// cut value a prefix of the original that ends with the marker.
func checkSizeCase(t *testing.T, format string, tt sizeCase) {
	b, err := Render(format, tt.ev)
	require.NoError(t, err)
	require.LessOrEqual(t, len(b), MaxBody)
	d := decodeAny(t, format, b)
	assert.Equal(t, tt.ev.ID, d.ID, "the id is never cut")
	assert.Equal(t, "CRITICAL", d.Level)
	checkCut := func(what, got, orig string, cut bool) {
		orig = jsonRoundTrip(orig)
		if !cut {
			assert.Equal(t, orig, got, "%s whole", what)
			return
		}
		require.True(t, strings.HasSuffix(got, TruncationMarker), "%s ends with the marker", what)
		assert.True(t, strings.HasPrefix(orig, strings.TrimSuffix(got, TruncationMarker)), "%s is a prefix", what)
	}
	checkCut("details", d.Details, tt.ev.Details, tt.cutDetails)
	checkCut("message", d.Message, tt.ev.Message, tt.cutMessage)
	if tt.tagsLeftOut {
		assert.Contains(t, d.Tags[TruncatedKey], "left out")
	}
	for k, v := range d.Tags {
		if k == TruncatedKey || (k == "level" && format == FormatIncidentWebhook) {
			continue
		}
		orig := jsonRoundTrip(tt.ev.Tags[k])
		if v != orig {
			require.True(t, strings.HasSuffix(v, TruncationMarker), "tag %s cut with a marker", k)
			assert.True(t, strings.HasPrefix(orig, strings.TrimSuffix(v, TruncationMarker)))
			assert.LessOrEqual(t, jsonStringLen(v), MaxValueSize+2*len(TruncationMarker))
		}
	}
	if format == FormatKapacitor {
		checkSizeCaseFields(t, tt.ev.Fields, d.Fields)
	}
}

// checkSizeCaseFields checks the fields of a cut kapacitor body: numbers
// as they were (non-finite ones null), strings whole or cut with the marker.
func checkSizeCaseFields(t *testing.T, fields, got map[string]interface{}) {
	for k, v := range got {
		switch o := fields[k].(type) {
		case float64:
			if math.IsNaN(o) || math.IsInf(o, 0) {
				assert.Nil(t, v, "non-finite %s is null", k)
			} else {
				assert.Equal(t, o, v)
			}
		case string:
			if s := v.(string); s != jsonRoundTrip(o) {
				require.True(t, strings.HasSuffix(s, TruncationMarker), "field %s cut with a marker", k)
			}
		}
	}
}

// TestRenderSmallBodiesUntouched: nothing is cut or added below MaxBody.
func TestRenderSmallBodiesUntouched(t *testing.T) {
	tags := map[string]string{}
	for i := range 300 {
		tags["t"+strconv.Itoa(i)] = strings.Repeat("v", 20)
	}
	ev := udf.Event{ID: "x", Message: "m", Details: strings.Repeat("d", 10<<10), Level: udf.Warning, Tags: tags, Fields: map[string]interface{}{"v": 1.0}}
	for _, format := range []string{FormatKapacitor, FormatIncidentWebhook} {
		b, err := Render(format, ev)
		require.NoError(t, err)
		require.Less(t, len(b), MaxBody)
		d := decodeAny(t, format, b)
		assert.Equal(t, ev.Details, d.Details)
		assert.NotContains(t, d.Tags, TruncatedKey)
		assert.Len(t, d.Tags, len(tags)+map[string]int{FormatKapacitor: 0, FormatIncidentWebhook: 1}[format])
	}
}

// TestRenderIDTooLong: an id that cannot fit is an error, never cut.
func TestRenderIDTooLong(t *testing.T) {
	ev := udf.Event{ID: strings.Repeat("<id>", 8<<10), Message: "m", Details: "d", Level: udf.Critical, Tags: map[string]string{"host": "a"}}
	for _, format := range []string{FormatKapacitor, FormatIncidentWebhook} {
		b, err := Render(format, ev)
		assert.Nil(t, b)
		require.ErrorContains(t, err, "its alert id (32768 bytes) is too long, and is never cut")
	}
}

// FuzzRender: any event renders, in both formats, as valid JSON under
// MaxBody with its id whole, unless its id alone is too long to fit.
func FuzzRender(f *testing.F) {
	f.Add("cpu:host=a", "cpu is CRITICAL", "details", "host", "a", "note", 1.5, 3, 2)
	f.Add("x", strings.Repeat("<m>", 5000), strings.Repeat("ü\xff", 20000), "k", strings.Repeat("v", 3000), "s", math.NaN(), 500, 40)
	f.Add(strings.Repeat("i", 29000), "", "", "", "", "", math.Inf(1), 0, 0)
	f.Fuzz(func(t *testing.T, id, message, details, tagKey, tagValue, fieldValue string, num float64, nTags, nFields int) {
		// Up to 1000 tags and fields, and about 1 MB of them.
		nTags = min(max(nTags, 0), 1000, 1<<20/(len(tagKey)+len(tagValue)+8))
		nFields = min(max(nFields, 0), 1000, 1<<20/(len(fieldValue)+8))
		ev := udf.Event{ID: id, Message: message, Details: details, Level: udf.Level(uint(nTags) % 4), Time: t0,
			Name: tagValue, Tags: map[string]string{}, Fields: map[string]interface{}{"num": num, tagKey: fieldValue}}
		for i := range nTags {
			ev.Tags[tagKey+strconv.Itoa(i)] = tagValue
		}
		for i := range nFields {
			ev.Fields[fieldValue+strconv.Itoa(i)] = num
		}
		for _, format := range []string{FormatKapacitor, FormatIncidentWebhook} {
			b, err := Render(format, ev)
			if err != nil {
				if jsonStringLen(id) < MaxBody-4096 {
					t.Fatalf("%s: id of %d bytes: %v", format, len(id), err)
				}
				continue
			}
			if len(b) > MaxBody || !json.Valid(b) {
				t.Fatalf("%s: %d bytes, valid %v", format, len(b), json.Valid(b))
			}
			var got struct {
				ID      string `json:"id"`
				EventID string `json:"event_id"`
			}
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if got.ID+got.EventID != jsonRoundTrip(id) {
				t.Fatalf("%s: the id was changed", format)
			}
		}
	})
}
