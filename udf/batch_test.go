package udf

import (
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/influxdata/kapacitor/udf/agent"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newBatchHandler(t *testing.T, sink Sink, opts ...*agent.Option) *Handler {
	t.Helper()
	h := NewHandler(HandlerConfig{Sink: sink, Hostname: "testhost", Batch: true})
	res, err := h.Init(&agent.InitRequest{TaskID: "b1", NodeID: "squadcast_batch2", Options: opts})
	require.NoError(t, err)
	require.True(t, res.Success, res.Error)
	return h
}

// sendBatch feeds one batch of group host=<host> with values vs at times
// base+i s, tmax at the end, and returns what EndBatch returned.
func sendBatch(t *testing.T, h *Handler, host string, base int64, tmax int64, vs ...float64) (*agent.BeginBatch, []*agent.Point) {
	t.Helper()
	group := "host=" + host
	tags := map[string]string{"host": host}
	require.NoError(t, h.BeginBatch(&agent.BeginBatch{Name: "cpu", Group: group, Tags: tags, Size: int64(len(vs))}))
	for i, v := range vs {
		_, err := h.Point(&agent.Point{Time: base + int64(i)*int64(time.Second), Group: group, Tags: tags,
			FieldsDouble: map[string]float64{"v": v}, FieldsInt: map[string]int64{"i": int64(i)}})
		require.NoError(t, err)
	}
	begin, points, err := h.EndBatch(&agent.EndBatch{Name: "cpu", Group: group, Tmax: tmax, Tags: tags})
	require.NoError(t, err)
	return begin, points
}

func TestBatchInfo(t *testing.T) {
	info, err := NewHandler(HandlerConfig{Batch: true}).Info()
	require.NoError(t, err)
	assert.Equal(t, agent.EdgeType_BATCH, info.Wants)
	assert.Equal(t, agent.EdgeType_BATCH, info.Provides)
	assert.Contains(t, info.Options, "all")
	assert.Contains(t, info.Options, "crit")

	info, err = NewHandler(HandlerConfig{}).Info()
	require.NoError(t, err)
	assert.Equal(t, agent.EdgeType_STREAM, info.Wants)
	assert.NotContains(t, info.Options, "all", "stream tasks have no .all()")

	_, err = ParseOptions([]*agent.Option{str("crit", `"v" < 1`), {Name: "all"}})
	assert.ErrorContains(t, err, "option .all: is for batch tasks: use @squadcast_batch()")
	o, err := ParseBatchOptions([]*agent.Option{str("crit", `"v" < 1`), {Name: "all"}})
	require.NoError(t, err)
	assert.True(t, o.All)
}

// TestBatchLevels follows alertState.BufferedBatch: a batch's level is its
// highest point's (lowest with .all()), its time the first highest point's
// (the batch's tmax when OK or with .all()), its fields that point's.
func TestBatchLevels(t *testing.T) {
	sec := int64(time.Second)
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	type ev struct {
		Level    Level
		Time     int64 // seconds after base
		V        float64
		Duration time.Duration
	}
	tests := []struct {
		name    string
		all     bool
		batches [][]float64
		want    []ev
	}{
		{name: "highest level, first highest point", batches: [][]float64{
			{50, 15, 5, 5, 15}, // CRITICAL at its third point
			{50, 15, 50},       // WARNING at its second point
			{15, 15},           // unchanged: no event
			{50, 60},           // OK at tmax
			{50},               // OK again: no event
		}, want: []ev{
			{Critical, 2, 5, 0},
			{Warning, 100 + 1, 15, 99 * time.Second},
			{OK, 300 + 60, 50, 358 * time.Second},
		}},
		{name: "all: lowest level at tmax", all: true, batches: [][]float64{
			{5, 15, 50}, // OK: nothing (never alerted)
			{5, 15, 5},  // WARNING
			{5, 5},      // CRITICAL
			{5, 50},     // OK
		}, want: []ev{
			{Warning, 100 + 60, 5, 0},
			{Critical, 200 + 60, 5, 100 * time.Second},
			{OK, 300 + 60, 5, 200 * time.Second},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			opts := []*agent.Option{str("crit", `"v" < 10`), str("warn", `"v" < 20`)}
			if tt.all {
				opts = append(opts, &agent.Option{Name: "all"})
			}
			h := newBatchHandler(t, rec, opts...)
			for i, vs := range tt.batches {
				b0 := base + int64(i)*100*sec
				sendBatch(t, h, "a", b0, b0+60*sec, vs...)
			}
			var got []ev
			for _, e := range rec.Events() {
				got = append(got, ev{e.Level, (e.Time.UnixNano() - base) / sec, e.Fields["v"].(float64), e.Duration})
				assert.Equal(t, "cpu:host=a", e.ID)
				assert.Equal(t, map[string]string{"host": "a"}, e.Tags)
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestBatchEventDataAndDownstream(t *testing.T) {
	rec := &recorder{}
	h := newBatchHandler(t, rec, str("crit", `"v" < 10`), str("message", `{{ .ID }} {{ .Level }} v={{ index .Fields "v" }} at {{ .Time.Unix }}`))
	tags := map[string]string{"host": "a"}
	require.NoError(t, h.BeginBatch(&agent.BeginBatch{Name: "cpu", Group: "host=a", Tags: tags, Size: 2, ByName: true}))
	for i, p := range []*agent.Point{
		{Time: 10, Tags: map[string]string{"host": "a", "cpu": "0"}, FieldsDouble: map[string]float64{"v": 50}, FieldsString: map[string]string{"s": "x"}},
		{Time: 20, Tags: map[string]string{"host": "a"}, FieldsDouble: map[string]float64{"v": 5}, FieldsBool: map[string]bool{"b": true}},
	} {
		p.Group = "host=a"
		out, err := h.Point(p)
		require.NoError(t, err, "point %d", i)
		assert.Nil(t, out, "points of a batch come out with the batch")
	}
	begin, points, err := h.EndBatch(&agent.EndBatch{Name: "cpu", Group: "host=a", Tmax: 30, Tags: tags})
	require.NoError(t, err)

	ev := rec.Events()
	require.Len(t, ev, 1)
	e := ev[0]
	assert.Equal(t, "cpu:host=a CRITICAL v=5 at 0", e.Message)
	assert.Equal(t, int64(20), e.Time.UnixNano())
	assert.Equal(t, map[string]interface{}{"v": 5.0, "b": true}, e.Fields)
	// Columns from the first point: its fields, and its tags that are not the batch's.
	assert.Equal(t, []string{"time", "cpu", "s", "v"}, e.Columns)
	assert.Equal(t, [][]interface{}{
		{time.Unix(0, 10).UTC(), "0", "x", 50.0},
		{time.Unix(0, 20).UTC(), nil, nil, 5.0},
	}, e.Values)

	require.NotNil(t, begin)
	assert.Equal(t, &agent.BeginBatch{Name: "cpu", Group: "host=a", Tags: tags, Size: 2, ByName: true}, begin)
	require.Len(t, points, 2)
	for i, p := range points {
		assert.Equal(t, "CRITICAL", p.FieldsString["level"], "point %d", i)
		assert.Equal(t, "cpu:host=a", p.FieldsString["id"], "point %d", i)
		assert.Equal(t, e.Message, p.FieldsString["message"], "point %d", i)
		assert.Contains(t, p.FieldsInt, "duration", "point %d", i)
	}
	assert.Equal(t, 50.0, points[0].FieldsDouble["v"])
	assert.Equal(t, "x", points[0].FieldsString["s"])

	// An empty batch, and a batch without an event, send nothing downstream.
	begin, points = sendBatch(t, h, "a", 40, 50)
	assert.Nil(t, begin)
	assert.Nil(t, points)
	begin, _ = sendBatch(t, h, "a", 60, 70, 1, 2)
	assert.Nil(t, begin, "CRITICAL again: no event")
	assert.Len(t, rec.Events(), 1)
}

func TestBatchProtocolErrors(t *testing.T) {
	h := newBatchHandler(t, &recorder{}, str("crit", `"v" < 10`))
	_, err := h.Point(&agent.Point{Time: 1})
	assert.ErrorContains(t, err, "outside a batch")
	_, _, err = h.EndBatch(&agent.EndBatch{})
	assert.ErrorContains(t, err, "did not begin")
	require.NoError(t, h.BeginBatch(&agent.BeginBatch{}))
	assert.ErrorContains(t, h.BeginBatch(&agent.BeginBatch{}), "inside another batch")

	s := newTestHandler(t, &recorder{}, str("crit", `"v" < 10`))
	assert.ErrorContains(t, s.BeginBatch(&agent.BeginBatch{}), "takes a stream")
	_, _, err = s.EndBatch(&agent.EndBatch{})
	assert.ErrorContains(t, err, "takes a stream")

	b := NewHandler(HandlerConfig{Sink: &recorder{}, Batch: true})
	assert.ErrorContains(t, b.BeginBatch(&agent.BeginBatch{}), "before a successful init")
}

// TestBatchServerProtocol runs a batch over a socket as Kapacitor's UDF node
// sends it, and reads the batch back: begin, points, end.
func TestBatchServerProtocol(t *testing.T) {
	rec := &recorder{}
	path := filepath.Join(t.TempDir(), "b.sock")
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	srv := NewServer(HandlerConfig{Sink: rec, Batch: true})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		require.NoError(t, srv.Close())
		require.NoError(t, <-done)
	})

	k := dial(t, path)
	k.send(&agent.Request{Message: &agent.Request_Info{Info: &agent.InfoRequest{}}})
	assert.Equal(t, agent.EdgeType_BATCH, k.recv().GetInfo().GetWants())
	require.True(t, k.init(str("crit", `"v" < 10`)).GetSuccess())
	tags := map[string]string{"g": "a"}
	k.send(&agent.Request{Message: &agent.Request_Begin{Begin: &agent.BeginBatch{Name: "cpu", Group: "g=a", Tags: tags, Size: 2}}})
	for i, v := range []float64{50, 5} {
		k.send(&agent.Request{Message: &agent.Request_Point{Point: &agent.Point{Time: int64(i + 1), Group: "g=a", Tags: tags, FieldsDouble: map[string]float64{"v": v}}}})
	}
	k.send(&agent.Request{Message: &agent.Request_End{End: &agent.EndBatch{Name: "cpu", Group: "g=a", Tmax: 10, Tags: tags}}})

	begin := k.recv().GetBegin()
	require.NotNil(t, begin)
	assert.Equal(t, "cpu", begin.Name)
	assert.Equal(t, int64(2), begin.Size)
	for i := range 2 {
		p := k.recv().GetPoint()
		require.NotNil(t, p, "point %d", i)
		assert.Equal(t, int64(i+1), p.Time)
		assert.Equal(t, "CRITICAL", p.FieldsString["level"])
	}
	end := k.recv().GetEnd()
	require.NotNil(t, end)
	assert.Equal(t, &agent.EndBatch{Name: "cpu", Group: "g=a", Tmax: 10, Tags: tags}, end)
	assert.Equal(t, int64(7), k.keepalive(7).GetTime(), "the connection serves on")
	require.Len(t, rec.Events(), 1)
	assert.Equal(t, Critical, rec.Events()[0].Level)
}
