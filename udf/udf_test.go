package udf

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/influxdata/kapacitor/udf/agent"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recorder is a Sink and Publisher that records events.
type recorder struct {
	mu      sync.Mutex
	dest    []Destination
	events  []Event
	openErr error
	pubErr  error
}

func (r *recorder) Open(d Destination) (Publisher, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.openErr != nil {
		return nil, r.openErr
	}
	r.dest = append(r.dest, d)
	return r, nil
}

func (r *recorder) Publish(e Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	return r.pubErr
}

// Flush makes nothing durable: a recorder keeps no state.
func (r *recorder) Flush(*StateChange) error { return nil }

// LoadState finds no saved state.
func (r *recorder) LoadState(string, string) (NodeState, bool, error) {
	return NodeState{}, false, nil
}

func (r *recorder) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

func str2(name, a, b string) *agent.Option {
	return &agent.Option{Name: name, Values: []*agent.OptionValue{
		{Type: agent.ValueType_STRING, Value: &agent.OptionValue_StringValue{StringValue: a}},
		{Type: agent.ValueType_STRING, Value: &agent.OptionValue_StringValue{StringValue: b}},
	}}
}

func str(name, v string) *agent.Option {
	return &agent.Option{Name: name, Values: []*agent.OptionValue{{Type: agent.ValueType_STRING, Value: &agent.OptionValue_StringValue{StringValue: v}}}}
}

func TestParseOptions(t *testing.T) {
	crit := str("crit", `"usage_idle" < 10`)
	tests := []struct {
		name    string
		opts    []*agent.Option
		wantErr string // substring; "" = no error
		check   func(t *testing.T, o *TaskOptions)
	}{
		{name: "crit only", opts: []*agent.Option{crit}, check: func(t *testing.T, o *TaskOptions) {
			assert.NotNil(t, o.Levels[Critical])
			assert.Nil(t, o.Levels[Warning])
			assert.Equal(t, Destination{Endpoint: "default"}, o.Destination)
		}},
		{name: "all levels and templates", opts: []*agent.Option{
			crit, str("warn", `"usage_idle" < 20`), str("info", `"host" == 'a'`),
			str("id", "{{ .TaskName }}/{{ index .Tags \"host\" }}"), str("message", "{{ .ID }} {{ .Level }} {{ index .Fields \"value\" }}"),
			str("details", "{{ .Message }} {{ .Duration }}"),
		}, check: func(t *testing.T, o *TaskOptions) {
			for _, l := range []Level{Info, Warning, Critical} {
				assert.NotNil(t, o.Levels[l], l.String())
			}
		}},
		{name: "endpoint", opts: []*agent.Option{crit, str("endpoint", "prod"), str("format", "incident-webhook")}, check: func(t *testing.T, o *TaskOptions) {
			assert.Equal(t, Destination{Endpoint: "prod", Format: "incident-webhook"}, o.Destination)
		}},
		{name: "inline url", opts: []*agent.Option{crit, str("url", "http://127.0.0.1/x")}, check: func(t *testing.T, o *TaskOptions) {
			assert.Equal(t, Destination{URL: "http://127.0.0.1/x"}, o.Destination)
		}},
		{name: "triple quoted", opts: []*agent.Option{str("crit", `"status" == 'down' AND "host" =~ /^db/`)}},
		{name: "no level", opts: []*agent.Option{str("message", "x")}, wantErr: "option .crit: no level"},
		{name: "no options", opts: nil, wantErr: "no level"},
		{name: "unparsable crit", opts: []*agent.Option{str("crit", `"usage_idle" <`)}, wantErr: `option .crit('"usage_idle" <'): parse error`},
		{name: "unparsable warn", opts: []*agent.Option{crit, str("warn", `(("x"`)}, wantErr: `option .warn('(("x"'): parse error`},
		{name: "empty expression", opts: []*agent.Option{str("info", "  ")}, wantErr: "option .info('  '): empty expression"},
		{name: "no reference", opts: []*agent.Option{str("crit", `TRUE`)}, wantErr: "option .crit('TRUE'): the expression references no field or tag"},
		{name: "unquoted name", opts: []*agent.Option{str("crit", `usage_idle < 10`)}, wantErr: "option .crit('usage_idle < 10')"},
		{name: "slash before non-ASCII crashes Kapacitor's lexer", opts: []*agent.Option{str("crit", `"host" =~ /é/`)}, wantErr: `crashes Kapacitor's expression lexer`},
		{name: "invalid UTF-8", opts: []*agent.Option{str("crit", "\"h\" == '\xff'")}, wantErr: "not valid UTF-8"},
		{name: "escaped non-ASCII in regex", opts: []*agent.Option{str("crit", `"host" =~ /\x{e9}t/`)}, check: func(t *testing.T, o *TaskOptions) {
			ok, err := o.Levels[Critical].EvalBool(point("", 0, nil, map[string]string{"host": "été"}))
			require.NoError(t, err)
			assert.True(t, ok)
		}},
		{name: "duplicate", opts: []*agent.Option{crit, crit}, wantErr: `option .crit('"usage_idle" < 10'): given more than once`},
		{name: "unknown option", opts: []*agent.Option{crit, str("critical", "x")}, wantErr: "option .critical: unknown option"},
		{name: "bad template", opts: []*agent.Option{crit, str("message", "{{ .ID ")}, wantErr: "option .message('{{ .ID '): template parse error"},
		{name: "template unknown field", opts: []*agent.Option{crit, str("id", "{{ .Nope }}")}, wantErr: "option .id('{{ .Nope }}'): template error"},
		{name: "endpoint and url", opts: []*agent.Option{crit, str("endpoint", "a"), str("url", "http://x/y")}, wantErr: "option .url: give .endpoint() or .url(), not both"},
		{name: "empty endpoint", opts: []*agent.Option{crit, str("endpoint", "")}, wantErr: "option .endpoint(''): empty endpoint name"},
		{name: "wrong type", opts: []*agent.Option{{Name: "crit", Values: []*agent.OptionValue{{Type: agent.ValueType_BOOL, Value: &agent.OptionValue_BoolValue{BoolValue: true}}}}}, wantErr: "option .crit: argument 1 must be a string, got a boolean"},
		{name: "no argument", opts: []*agent.Option{{Name: "crit"}}, wantErr: "option .crit: takes 1 argument(s), got 0"},
		{name: "no tags or priorities", opts: []*agent.Option{crit}, check: func(t *testing.T, o *TaskOptions) {
			assert.Nil(t, o.Destination.Tags)
			assert.Nil(t, o.Destination.Priorities)
		}},
		// .tag() and .priority() are the Sink's options: they are handed
		// over as written, in order, and validated by the Sink's Open
		// (squadcast.TestIncidentOptions).
		{name: "tags and priorities", opts: []*agent.Option{
			crit, str2("tag", "team", "db"), str2("priority", "critical", "P2"), str2("tag", "env", "prod"), str2("priority", "Info", "p4"),
		}, check: func(t *testing.T, o *TaskOptions) {
			assert.Equal(t, [][2]string{{"team", "db"}, {"env", "prod"}}, o.Destination.Tags)
			assert.Equal(t, [][2]string{{"critical", "P2"}, {"Info", "p4"}}, o.Destination.Priorities)
		}},
		{name: "priority only", opts: []*agent.Option{crit, str2("priority", "WARNING", "P1")}, check: func(t *testing.T, o *TaskOptions) {
			assert.Nil(t, o.Destination.Tags)
			assert.Equal(t, [][2]string{{"WARNING", "P1"}}, o.Destination.Priorities)
		}},
		{name: "values the Sink validates", opts: []*agent.Option{crit, str2("priority", "SEVERE", "P9"), str2("tag", "", "x")}, check: func(t *testing.T, o *TaskOptions) {
			assert.Equal(t, [][2]string{{"", "x"}}, o.Destination.Tags)
			assert.Equal(t, [][2]string{{"SEVERE", "P9"}}, o.Destination.Priorities)
		}},
		{name: "priority one argument", opts: []*agent.Option{crit, str("priority", "P1")}, wantErr: "option .priority: takes 2 argument(s), got 1"},
		{name: "tag one argument", opts: []*agent.Option{crit, str("tag", "team")}, wantErr: "option .tag: takes 2 argument(s), got 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := ParseOptions(tt.opts)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				var oe *OptionError
				assert.True(t, errors.As(err, &oe), "want an *OptionError, got %T", err)
				return
			}
			require.NoError(t, err)
			if tt.check != nil {
				tt.check(t, o)
			}
		})
	}
}

func TestOptionErrorCutsLongValues(t *testing.T) {
	long := `"x" < ` + strings.Repeat("é", 300)
	_, err := ParseOptions([]*agent.Option{str("crit", long)})
	require.Error(t, err)
	assert.Less(t, len(err.Error()), 400)
	assert.True(t, strings.Contains(err.Error(), "..."))
	assert.True(t, strings.ToValidUTF8(err.Error(), "?") == err.Error(), "error text must stay valid UTF-8")
}

func point(group string, t int64, fields map[string]float64, tags map[string]string) *agent.Point {
	return &agent.Point{Name: "cpu", Time: t, Group: group, Tags: tags, FieldsDouble: fields}
}

func TestExprEval(t *testing.T) {
	p := &agent.Point{
		Time:         time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano(),
		Tags:         map[string]string{"host": "db1", "dup": "t"},
		FieldsDouble: map[string]float64{"usage_idle": 5, "dup": 1},
		FieldsInt:    map[string]int64{"load": 7},
		FieldsString: map[string]string{"status": "down"},
		FieldsBool:   map[string]bool{"up": false},
	}
	tests := []struct {
		expr    string
		want    bool
		wantErr string
	}{
		{expr: `"usage_idle" < 10`, want: true},
		{expr: `"usage_idle" > 10`, want: false},
		{expr: `"load" >= 7 AND "status" == 'down'`, want: true},
		{expr: `"host" =~ /^db/`, want: true},
		{expr: `!"up"`, want: true},
		{expr: `hour("time") == 3`, want: true},
		{expr: `"missing" > 1`, wantErr: "missing"},
		{expr: `isPresent("missing")`, want: false},
		{expr: `isPresent("usage_idle")`, want: true},
		{expr: `"dup" == 1`, wantErr: `cannot have field and tags with same name "dup"`},
		{expr: `"status" + 1`, wantErr: "mismatched type"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			e, err := CompileExpr(tt.expr)
			require.NoError(t, err)
			got, err := e.EvalBool(p)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestDetermineLevel(t *testing.T) {
	o, err := ParseOptions([]*agent.Option{str("crit", `"v" < 10`), str("warn", `"v" < 20`), str("info", `"v" < 30 OR "bad" > 1`)})
	require.NoError(t, err)
	var errs []Level
	onErr := func(l Level, err error) { errs = append(errs, l) }
	for _, tt := range []struct {
		v    float64
		want Level
	}{{5, Critical}, {15, Warning}, {25, Info}, {35, OK}, {10, Warning}} {
		got := determineLevel(&o.Levels, &o.Resets, OK, point("", 0, map[string]float64{"v": tt.v}, nil), onErr)
		assert.Equal(t, tt.want, got, "v=%v", tt.v)
	}
	// "bad" is missing: info's expression fails only where it is reached and
	// its left side is false, and counts as false.
	assert.Equal(t, []Level{Info}, errs)
}

func TestGroupStateStateChangesOnly(t *testing.T) {
	// Levels per point, and whether the alert node (stateChangesOnly) sends an event.
	seq := []struct {
		l    Level
		send bool
		dur  time.Duration
	}{
		{OK, false, 0},
		{Warning, true, 0},   // t=1 starts the alert
		{Warning, false, 0},  // unchanged
		{Critical, true, 2},  // t=3: still the alert of t=1
		{Critical, false, 0}, //
		{OK, true, 4},        // t=5: recovery, duration since t=1
		{OK, false, 0},       //
		{Info, true, 0},      // t=7: a new alert
		{OK, true, 1},        // t=8
	}
	var s groupState
	r := rules{stateChangesOnly: true}
	for i, step := range seq {
		got := r.update(&s, nil, step.l, int64(i))
		require.Equal(t, step.send, got, "step %d", i)
		if got {
			assert.Equal(t, step.dur, s.duration(), "duration at step %d", i)
		}
	}
}

func newTestHandler(t *testing.T, sink Sink, opts ...*agent.Option) *Handler {
	t.Helper()
	h := NewHandler(HandlerConfig{Sink: sink, Hostname: "testhost"})
	res, err := h.Init(&agent.InitRequest{TaskID: "t1", NodeID: "squadcast2", Options: opts})
	require.NoError(t, err)
	require.True(t, res.Success, res.Error)
	return h
}

func TestHandlerEvents(t *testing.T) {
	rec := &recorder{}
	h := newTestHandler(t, rec, str("crit", `"v" < 10`), str("warn", `"v" < 20`))
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	sec := int64(time.Second)
	steps := []struct {
		group string
		v     float64
		emits bool
	}{
		{"host=a", 50, false},
		{"host=a", 15, true}, // WARNING
		{"host=b", 5, true},  // CRITICAL, another group
		{"host=a", 15, false},
		{"host=a", 5, true},  // CRITICAL
		{"host=a", 50, true}, // OK
		{"host=b", 50, true}, // OK
	}
	for i, s := range steps {
		p := point(s.group, base+int64(i)*sec, map[string]float64{"v": s.v}, map[string]string{"host": s.group[5:]})
		p.FieldsInt = map[string]int64{"n": int64(i)}
		out, err := h.Point(p)
		require.NoError(t, err)
		if !s.emits {
			assert.Nil(t, out, "step %d", i)
			continue
		}
		require.NotNil(t, out, "step %d", i)
		assert.Equal(t, p.Time, out.Time)
		assert.Equal(t, p.Group, out.Group)
		assert.Equal(t, s.v, out.FieldsDouble["v"])
		assert.Contains(t, []string{"OK", "WARNING", "CRITICAL"}, out.FieldsString["level"])
		assert.Equal(t, "cpu:"+s.group, out.FieldsString["id"])
	}
	ev := rec.Events()
	require.Len(t, ev, 5)
	type brief struct {
		ID      string
		Level   Level
		Prev    Level
		Dur     time.Duration
		Message string
	}
	var got []brief
	for _, e := range ev {
		got = append(got, brief{e.ID, e.Level, e.PreviousLevel, e.Duration, e.Message})
		assert.Equal(t, "t1", e.TaskID)
		assert.True(t, e.Recoverable)
		assert.Equal(t, time.UTC, e.Time.Location())
		assert.Equal(t, "cpu", e.Name)
		assert.Contains(t, e.Details, `"TaskName":"t1"`)
		assert.Contains(t, e.Details, `"Hostname":"testhost"`)
	}
	assert.Equal(t, []brief{
		{"cpu:host=a", Warning, OK, 0, "cpu:host=a is WARNING"},
		{"cpu:host=b", Critical, OK, 0, "cpu:host=b is CRITICAL"},
		{"cpu:host=a", Critical, Warning, 3 * time.Second, "cpu:host=a is CRITICAL"},
		{"cpu:host=a", OK, Critical, 4 * time.Second, "cpu:host=a is OK"},
		{"cpu:host=b", OK, Critical, 4 * time.Second, "cpu:host=b is OK"},
	}, got)
	assert.Equal(t, map[string]interface{}{"v": 15.0, "n": int64(1)}, ev[0].Fields)
	assert.Empty(t, h.groups, "recovered groups keep no state")
}

func TestHandlerNilGroupAndTemplates(t *testing.T) {
	rec := &recorder{}
	h := newTestHandler(t, rec, str("crit", `"v" < 10`),
		str("id", `{{ .TaskName }}-{{ index .Tags "host" }}`),
		str("message", `{{ .ID }}: {{ .Level }} v={{ index .Fields "v" }} {{ .Name }} {{ .Group }}`),
		str("details", `<b>{{ .Message }}</b> {{ .Duration }}`))
	_, err := h.Point(point("", 1, map[string]float64{"v": 1}, map[string]string{"host": "h1"}))
	require.NoError(t, err)
	ev := rec.Events()
	require.Len(t, ev, 1)
	assert.Equal(t, "t1-h1", ev[0].ID)
	assert.Equal(t, "t1-h1: CRITICAL v=1 cpu nil", ev[0].Message)
	assert.Equal(t, "<b>t1-h1: CRITICAL v=1 cpu nil</b> 0s", ev[0].Details, "details are plain text, not HTML-escaped")
	assert.Equal(t, "nil", ev[0].Group)
}

func TestHandlerPublishFailureDoesNotFailPoint(t *testing.T) {
	rec := &recorder{pubErr: errors.New("queue full")}
	h := newTestHandler(t, rec, str("crit", `"v" < 10`))
	out, err := h.Point(point("", 1, map[string]float64{"v": 1}, nil))
	require.NoError(t, err)
	assert.NotNil(t, out)
}

func TestHandlerInitFailures(t *testing.T) {
	h := NewHandler(HandlerConfig{Sink: &recorder{}})
	res, err := h.Init(&agent.InitRequest{Options: []*agent.Option{str("crit", "(")}})
	require.NoError(t, err, "a bad option fails the task, not the connection")
	assert.False(t, res.Success)
	assert.Contains(t, res.Error, "option .crit('(')")

	_, err = h.Point(point("", 1, map[string]float64{"v": 1}, nil))
	assert.ErrorContains(t, err, "before a successful init")

	sinkErr := &OptionError{Option: "endpoint", Value: "'nope'", Reason: "unknown endpoint (configured: default)"}
	h = NewHandler(HandlerConfig{Sink: &recorder{openErr: sinkErr}})
	res, err = h.Init(&agent.InitRequest{Options: []*agent.Option{str("crit", `"v" > 1`), str("endpoint", "nope")}})
	require.NoError(t, err)
	assert.False(t, res.Success)
	assert.Equal(t, sinkErr.Error(), res.Error)
}

func TestLevelText(t *testing.T) {
	for _, l := range []Level{OK, Info, Warning, Critical} {
		b, err := l.MarshalText()
		require.NoError(t, err)
		var back Level
		require.NoError(t, back.UnmarshalText([]byte(strings.ToLower(string(b)))))
		assert.Equal(t, l, back)
	}
	assert.Equal(t, "unknown", Level(9).String())
	_, err := ParseLevel("SEVERE")
	assert.ErrorContains(t, err, `unknown alert level "SEVERE"`)
}

// TestHandlerTagsAndPriorities: the task's .tag() and .priority() go to
// the Sink's Open; events keep the point's tags as they are (the Sink adds
// the task's to its payloads: squadcast.TestPublisherTagsAndPriorities).
func TestHandlerTagsAndPriorities(t *testing.T) {
	rec := &recorder{}
	h := newTestHandler(t, rec, str("crit", `"v" < 10`), str("warn", `"v" < 20`), str("info", `"v" < 30`),
		str2("tag", "team", "db"), str2("priority", "WARNING", "P2"))
	for i, v := range []float64{25, 15, 5, 50} { // INFO, WARNING, CRITICAL, OK
		_, err := h.Point(point("", int64(i), map[string]float64{"v": v}, map[string]string{"team": "point"}))
		require.NoError(t, err)
	}
	require.Len(t, rec.dest, 1)
	assert.Equal(t, [][2]string{{"team", "db"}}, rec.dest[0].Tags)
	assert.Equal(t, [][2]string{{"WARNING", "P2"}}, rec.dest[0].Priorities)
	ev := rec.Events()
	require.Len(t, ev, 4)
	var got []string
	for _, e := range ev {
		got = append(got, e.Level.String())
		assert.Equal(t, map[string]string{"team": "point"}, e.Tags, "the point's tags are kept as they are")
	}
	assert.Equal(t, []string{"INFO", "WARNING", "CRITICAL", "OK"}, got)
}

func TestLoggedID(t *testing.T) {
	assert.Equal(t, "cpu:host=a", LoggedID("cpu:host=a"))
	exact := strings.Repeat("x", 256)
	assert.Equal(t, exact, LoggedID(exact))
	long := strings.Repeat("x", 255) + "é" + strings.Repeat("y", 60000)
	got := LoggedID(long)
	assert.Equal(t, strings.Repeat("x", 255)+"… (60257 bytes)", got, "cut on a character boundary, with the length")
	assert.True(t, utf8.ValidString(got))
}
