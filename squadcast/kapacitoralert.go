package squadcast

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

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
