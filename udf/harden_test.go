package udf

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/influxdata/kapacitor/udf/agent"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestInitRejectsWrongValues: every wrong option value fails Init (not the
// connection) with Success:false and a message that names the option and
// the value. (Endpoints, formats and URLs are checked by the Sink: see
// squadcast's TestOpen and the daemon's TestDaemonRejectsBadOptions.)
func TestInitRejectsWrongValues(t *testing.T) {
	crit := str("crit", `"v" > 90`)
	flap := func(lo, hi float64) *agent.Option { return opt("flapping", vDouble(lo), vDouble(hi)) }
	tests := []struct {
		name string
		opts []*agent.Option
		want string // the start of the error: option and value
	}{
		{"unparsable expression", []*agent.Option{str("crit", `"v" >`)}, `option .crit('"v" >'): parse error`},
		{"unparsable reset", []*agent.Option{crit, str("critReset", `(("v"`)}, `option .critReset('(("v"'): parse error`},
		{"expression referencing nothing", []*agent.Option{str("warn", `1 > 0`)}, `option .warn('1 > 0'): the expression references no field or tag`},
		{"empty expression", []*agent.Option{str("info", "")}, `option .info(''): empty expression`},
		{"template that does not parse", []*agent.Option{crit, str("message", "{{ .ID")}, `option .message('{{ .ID'): template parse error`},
		{"template with an unknown variable", []*agent.Option{crit, str("details", "{{ .Nope }}")}, `option .details('{{ .Nope }}'): template error`},
		{"template that fails at its trial run", []*agent.Option{crit, str("id", `{{ slice .Name 0 99 }}`)}, `option .id('{{ slice .Name 0 99 }}'): template error`},
		{"template calling an unknown function", []*agent.Option{crit, str("id", `{{ nope .Name }}`)}, `option .id('{{ nope .Name }}'): template parse error`},
		{"history(1)", []*agent.Option{crit, flap(0.2, 0.5), opt("history", vInt(1))}, `option .history(1): must be between 2 and 10000`},
		{"history too long", []*agent.Option{crit, flap(0.2, 0.5), opt("history", vInt(10001))}, `option .history(10001): must be between 2 and 10000`},
		{"flapping low above high", []*agent.Option{crit, flap(0.6, 0.4)}, `option .flapping(0.6, 0.4): the low threshold must not exceed the high one`},
		{"flapping above 1", []*agent.Option{crit, flap(0.5, 1.5)}, `option .flapping(0.5, 1.5): thresholds are fractions`},
		{"flapping below 0", []*agent.Option{crit, flap(-1, 0.5)}, `option .flapping(-1, 0.5): thresholds are fractions`},
		{"flapping in percent", []*agent.Option{crit, flap(25, 50)}, `option .flapping(25, 50): thresholds are fractions`},
		{"flapping NaN", []*agent.Option{crit, flap(math.NaN(), 0.5)}, `option .flapping(NaN, 0.5): thresholds are fractions`},
		{"renotify negative", []*agent.Option{crit, opt("renotify", vDur(-1))}, `option .renotify(-1ns): must be a positive duration`},
		{"empty endpoint", []*agent.Option{crit, str("endpoint", "")}, `option .endpoint(''): empty endpoint name`},
		{"empty level field", []*agent.Option{str("levelField", "")}, `option .levelField(''): empty field name`},
		{"duplicate expression", []*agent.Option{crit, str("crit", `"v" > 95`)}, `option .crit('"v" > 95'): given more than once`},
		{"duplicate flapping", []*agent.Option{crit, flap(0.2, 0.5), flap(0.3, 0.6)}, `option .flapping(0.3, 0.6): given more than once`},
		{"duplicate history", []*agent.Option{crit, flap(0.2, 0.5), opt("history", vInt(5)), opt("history", vInt(6))}, `option .history(6): given more than once`},
		{"duplicate template", []*agent.Option{crit, str("id", "a"), str("id", "b")}, `option .id('b'): given more than once`},
		{"duplicate url hides it", []*agent.Option{crit, str("url", "http://h/k1"), str("url", "http://h/SECRETKEY")}, `option .url('...'): given more than once`},
		{"duplicate flag", []*agent.Option{crit, opt("noRecoveries"), opt("noRecoveries")}, `option .noRecoveries: given more than once`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := NewHandler(HandlerConfig{Sink: &recorder{}})
			res, err := h.Init(&agent.InitRequest{TaskID: "t", NodeID: "n", Options: tt.opts})
			require.NoError(t, err, "a bad option fails the task, not the connection")
			require.False(t, res.Success)
			assert.True(t, strings.HasPrefix(res.Error, tt.want), "error %q, want it to start with %q", res.Error, tt.want)
			assert.NotContains(t, res.Error, "SECRETKEY")
		})
	}
}

// TestRequestsBeforeInit: points, snapshots and restores before a
// successful Init end the connection with a reason.
func TestRequestsBeforeInit(t *testing.T) {
	h := NewHandler(HandlerConfig{Sink: &recorder{}})
	_, err := h.Point(point("", 1, map[string]float64{"v": 1}, nil))
	assert.ErrorContains(t, err, "point received before a successful init")
	_, err = h.Snapshot()
	assert.ErrorContains(t, err, "snapshot requested before a successful init")
	_, err = h.Restore(&agent.RestoreRequest{Snapshot: encodeSnapshot(1, nil, nil)})
	assert.ErrorContains(t, err, "restore received before a successful init")
	assert.Empty(t, h.groups)
}

// TestTemplateFailsForAPoint: a template that passed Init's trial run but
// fails for a point does not lose the event: it falls back (the id to the
// group's previous id, so that the incident still resolves) and logs why.
func TestTemplateFailsForAPoint(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	rec := &recorder{}
	// The first four letters of the zone, when the point has a zone tag:
	// fine on Init's sample (no zone), an error for a zone shorter than that.
	zone4 := `{{ with .Tags.zone }}{{ slice . 0 4 }}{{ end }}`
	h := NewHandler(HandlerConfig{Sink: rec, Logger: zap.New(core)})
	res, err := h.Init(&agent.InitRequest{TaskID: "t1", NodeID: "n1", Options: []*agent.Option{
		str("crit", `"v" > 90`), str("id", "{{ .Name }}-"+zone4), str("message", "{{ .ID }} in "+zone4), str("details", "zone "+zone4),
	}})
	require.NoError(t, err)
	require.True(t, res.Success, res.Error)

	pt := func(group, zone string, t int64, v float64) *agent.Point {
		return point(group, t, map[string]float64{"v": v}, map[string]string{"host": group, "zone": zone})
	}
	steps := []struct {
		p                    *agent.Point
		id, message, details string
		level                Level
		failedOptions        []string
		wantFallbackInTheLog string
	}{
		{p: pt("a", "europe", 1, 95), id: "cpu-euro", message: "cpu-euro in euro", details: "zone euro", level: Critical},
		// The zone got shorter: every template fails; the id is the group's previous one.
		{p: pt("a", "eu", 2, 10), id: "cpu-euro", message: "cpu-euro is OK", level: OK, failedOptions: []string{"id", "message", "details"}},
		// A new group whose first event fails: the default id.
		{p: pt("b", "us", 3, 99), id: "cpu:b", message: "cpu:b is CRITICAL", level: Critical, failedOptions: []string{"id", "message", "details"}},
	}
	for i, s := range steps {
		before := logs.Len()
		s.p.Group = s.p.Tags["host"]
		out, err := h.Point(s.p)
		require.NoError(t, err, "step %d", i)
		require.NotNil(t, out, "step %d: the event is not lost", i)
		evs := rec.Events()
		require.Len(t, evs, i+1)
		ev := evs[i]
		assert.Equal(t, s.id, ev.ID, "step %d", i)
		assert.Equal(t, s.message, ev.Message, "step %d", i)
		assert.Equal(t, s.level, ev.Level, "step %d", i)
		if s.details != "" {
			assert.Equal(t, s.details, ev.Details, "step %d", i)
		} else {
			assert.True(t, json.Valid([]byte(ev.Details)), "step %d: default details are {{ json . }}: %s", i, ev.Details)
		}
		var failed []string
		for _, e := range logs.All()[before:] {
			assert.Equal(t, "template failed for this event; the event uses a fallback", e.Message)
			assert.Contains(t, e.ContextMap()["error"], "slice")
			failed = append(failed, e.ContextMap()["option"].(string))
		}
		assert.Equal(t, s.failedOptions, failed, "step %d", i)
	}
}

// TestHostilePoints: missing fields, NaN, infinities, huge tag sets and
// very long strings never fail a point, and the default details stay
// valid JSON.
func TestHostilePoints(t *testing.T) {
	manyTags := make(map[string]string, 20000)
	for i := range 20000 {
		manyTags["tag"+strconv.Itoa(i)] = "value " + strconv.Itoa(i)
	}
	long := strings.Repeat("long \"quoted\" <text> é ", 1<<16)
	tests := []struct {
		name      string
		p         *agent.Point
		wantLevel Level // OK: no event expected
	}{
		{name: "referenced field missing", p: &agent.Point{Name: "cpu", Group: "g", FieldsDouble: map[string]float64{"other": 1}}},
		{name: "referenced field a string", p: &agent.Point{Name: "cpu", Group: "g", FieldsString: map[string]string{"v": "high"}}},
		{name: "NaN", p: &agent.Point{Name: "cpu", Group: "g", FieldsDouble: map[string]float64{"v": math.NaN()}}},
		{name: "-Inf", p: &agent.Point{Name: "cpu", Group: "g", FieldsDouble: map[string]float64{"v": math.Inf(-1)}}},
		{name: "+Inf", p: &agent.Point{Name: "cpu", Group: "g", FieldsDouble: map[string]float64{"v": math.Inf(1), "w": math.NaN()}}, wantLevel: Critical},
		{name: "NaN beside a true level", p: &agent.Point{Name: "cpu", Group: "g", FieldsDouble: map[string]float64{"v": 95, "w": math.NaN(), "x": math.Inf(-1)}}, wantLevel: Critical},
		{name: "huge tag set", p: &agent.Point{Name: "cpu", Group: "g", Tags: manyTags, FieldsDouble: map[string]float64{"v": 95}}, wantLevel: Critical},
		{name: "very long strings", p: &agent.Point{Name: long, Group: long, Tags: map[string]string{"t": long}, FieldsString: map[string]string{"s": long}, FieldsDouble: map[string]float64{"v": 95}}, wantLevel: Critical},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.WarnLevel)
			rec := &recorder{}
			h := NewHandler(HandlerConfig{Sink: rec, Logger: zap.New(core)})
			res, err := h.Init(&agent.InitRequest{TaskID: "t", NodeID: "n", Options: []*agent.Option{str("crit", `"v" > 90`)}})
			require.NoError(t, err)
			require.True(t, res.Success)
			out, err := h.Point(tt.p)
			require.NoError(t, err)
			assert.Zero(t, logs.Len(), "no warning: %v", logs.All())
			if tt.wantLevel == OK {
				assert.Nil(t, out)
				assert.Empty(t, rec.Events())
				return
			}
			require.NotNil(t, out)
			evs := rec.Events()
			require.Len(t, evs, 1)
			assert.Equal(t, tt.wantLevel, evs[0].Level)
			require.True(t, json.Valid([]byte(evs[0].Details)), "details are valid JSON")
			var d struct{ Fields map[string]interface{} }
			require.NoError(t, json.Unmarshal([]byte(evs[0].Details), &d))
			for k, v := range tt.p.FieldsDouble {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					assert.Nil(t, d.Fields[k], "non-finite %s is null", k)
					assert.Contains(t, d.Fields, k)
				}
			}
		})
	}
}
