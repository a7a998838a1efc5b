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

func point(group string, t int64, fields map[string]float64, tags map[string]string) *agent.Point {
	return &agent.Point{Name: "cpu", Time: t, Group: group, Tags: tags, FieldsDouble: fields}
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
