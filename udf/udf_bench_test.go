package udf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/influxdata/kapacitor/udf/agent"
	"google.golang.org/protobuf/proto"
)

// The benchmarks of the hot path: what the daemon does for every point
// Kapacitor sends. They use the load of cmd/internal/udfload: three level
// expressions, 1000 groups, telegraf-like cpu points. Names here start with
// bench so that they never collide with the package's test helpers.

const benchGroups = 1000

// benchLevelSources are the level expressions of the benchmarks.
var benchLevelSources = [...]struct{ name, src string }{
	{"crit", `"usage_idle" < 10`},
	{"warn", `"usage_idle" < 25`},
	{"info", `"usage_idle" < 40`},
}

// benchValues are usage_idle values at each level of benchLevelSources.
var benchValues = [...]float64{OK: 90, Info: 35, Warning: 20, Critical: 5}

// benchSink is a Sink and Publisher that drops events: the benchmarks
// measure the handler, not delivery.
type benchSink struct{ published int }

func (s *benchSink) Open(Destination) (Publisher, error) { return s, nil }
func (s *benchSink) Publish(Event) error                 { s.published++; return nil }
func (s *benchSink) Flush(*StateChange) error            { return nil }
func (s *benchSink) LoadState(string, string) (NodeState, bool, error) {
	return NodeState{}, false, nil
}

func benchOptions() []*agent.Option {
	opts := make([]*agent.Option, 0, len(benchLevelSources))
	for _, l := range benchLevelSources {
		opts = append(opts, &agent.Option{Name: l.name, Values: []*agent.OptionValue{
			{Type: agent.ValueType_STRING, Value: &agent.OptionValue_StringValue{StringValue: l.src}},
		}})
	}
	return opts
}

func benchHandler(b *testing.B, sink Sink, extra ...*agent.Option) *Handler {
	b.Helper()
	h := NewHandler(HandlerConfig{Sink: sink, Hostname: "benchhost"})
	res, err := h.Init(&agent.InitRequest{TaskID: "bench", NodeID: "squadcast1", Options: append(benchOptions(), extra...)})
	if err != nil || !res.Success {
		b.Fatalf("init: %v %s", err, res.GetError())
	}
	return h
}

// benchPoint returns a point of group g as Kapacitor sends it for a
// stream grouped by host.
func benchPoint(g int, usageIdle float64) *agent.Point {
	host := fmt.Sprintf("host-%04d", g)
	return &agent.Point{
		Name:            "cpu",
		Database:        "telegraf",
		RetentionPolicy: "autogen",
		Group:           "host=" + host,
		Dimensions:      []string{"host"},
		Tags:            map[string]string{"host": host, "cpu": "cpu-total"},
		FieldsDouble: map[string]float64{
			"usage_idle": usageIdle, "usage_user": 100 - usageIdle - 2, "usage_system": 1.5, "usage_iowait": 0.5,
		},
	}
}

func benchPoints(level Level) []*agent.Point {
	ps := make([]*agent.Point, benchGroups)
	for g := range ps {
		ps[g] = benchPoint(g, benchValues[level])
	}
	return ps
}

var benchBool bool

func BenchmarkCompileExpr(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := CompileExpr(`"usage_idle" < 10 AND "host" != 'db1'`); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEvalBool(b *testing.B) {
	p := benchPoint(1, 5)
	for _, tc := range []struct{ name, src string }{
		{"field", `"usage_idle" < 10`},
		{"field-and-tag", `"usage_idle" < 10 AND "host" != 'db1'`},
		{"missing", `"nope" < 10`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			e, err := CompileExpr(tc.src)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				v, err := e.EvalBool(p)
				if err != nil && tc.name != "missing" {
					b.Fatal(err)
				}
				benchBool = v
			}
		})
	}
}

// BenchmarkHandlerPoint is Handler.Point over 1000 groups with three level
// expressions: on the no-state-change path with every group OK (all three
// expressions evaluated, no state kept) and with every group CRITICAL (one
// expression, the group's state updated), and on the state-change path,
// where every point changes its group's level and publishes an event.
func BenchmarkHandlerPoint(b *testing.B) {
	b.Run("no-change/ok", func(b *testing.B) {
		h := benchHandler(b, &benchSink{})
		ps := benchPoints(OK)
		benchLoop(b, h, func(i int) *agent.Point { return ps[i%benchGroups] }, false)
	})
	b.Run("no-change/critical", func(b *testing.B) {
		h := benchHandler(b, &benchSink{})
		ps := benchPoints(Critical)
		for i, p := range ps { // every group alerting
			p.Time = int64(i)
			if _, err := h.Point(p); err != nil {
				b.Fatal(err)
			}
		}
		benchLoop(b, h, func(i int) *agent.Point { return ps[i%benchGroups] }, false)
	})
	b.Run("no-change/critical/resolveStale", func(b *testing.B) {
		// The same with .resolveStale(): each point of an alerting group
		// reads the clock and updates the group's last-seen time.
		h := benchHandler(b, &benchSink{}, &agent.Option{Name: "resolveStale", Values: []*agent.OptionValue{
			{Type: agent.ValueType_DURATION, Value: &agent.OptionValue_DurationValue{DurationValue: int64(time.Hour)}},
		}})
		ps := benchPoints(Critical)
		for i, p := range ps {
			p.Time = int64(i)
			if _, err := h.Point(p); err != nil {
				b.Fatal(err)
			}
		}
		benchLoop(b, h, func(i int) *agent.Point { return ps[i%benchGroups] }, false)
	})
	b.Run("state-change", func(b *testing.B) {
		sink := &benchSink{}
		h := benchHandler(b, sink)
		ok, crit := benchPoints(OK), benchPoints(Critical)
		benchLoop(b, h, func(i int) *agent.Point {
			if (i/benchGroups)%2 == 0 {
				return crit[i%benchGroups]
			}
			return ok[i%benchGroups]
		}, true)
		if sink.published == 0 {
			b.Fatal("no event published")
		}
	})
}

// benchLoop feeds h the points pick returns, with increasing times, and
// checks whether each emitted a point (an event) as wantEvents says.
func benchLoop(b *testing.B, h *Handler, pick func(int) *agent.Point, wantEvents bool) {
	b.Helper()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p := pick(i)
		p.Time = t0 + int64(i)*int64(time.Millisecond)
		out, err := h.Point(p)
		if err != nil {
			b.Fatal(err)
		}
		if (out != nil) != wantEvents {
			b.Fatalf("point %d: emitted %v, want events %v", i, out != nil, wantEvents)
		}
		i++
	}
}

// BenchmarkConnPoint is the daemon's frame loop on the no-state-change
// path: read a Point request frame, decode it, Handler.Point, no response.
// It is Handler.Point plus protobuf decoding and framing.
func BenchmarkConnPoint(b *testing.B) {
	h := benchHandler(b, &benchSink{})
	frames, ends := benchFrames(b)
	b.ReportAllocs()
	b.ResetTimer()
	total := int64(b.N/benchGroups)*int64(len(frames)) + int64(endOf(ends, b.N%benchGroups))
	c := newConn(struct {
		io.Reader
		io.Writer
	}{&benchCycleReader{data: frames, left: total}, io.Discard}, h, 0)
	if err := c.serve(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(frames) / benchGroups))
}

// endOf is the end offset of the first n frames.
func endOf(ends []int, n int) int {
	if n == 0 {
		return 0
	}
	return ends[n-1]
}

// benchCycleReader reads data over and over, left bytes in all, then EOF.
type benchCycleReader struct {
	data []byte
	pos  int
	left int64
}

func (r *benchCycleReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	if r.pos == len(r.data) {
		r.pos = 0
	}
	n := copy(p, r.data[r.pos:])
	n = int(min(int64(n), r.left))
	r.pos += n
	r.left -= int64(n)
	return n, nil
}

// BenchmarkAgentReadPoint is the baseline of BenchmarkConnPoint: the read
// loop of Kapacitor's agent library (agent.ReadMessage into a reused
// Request, as its readLoop does) on the same frames, with a handler that
// drops every point, the least a UDF on that library can do per point.
func BenchmarkAgentReadPoint(b *testing.B) {
	frames, ends := benchFrames(b)
	b.ReportAllocs()
	b.ResetTimer()
	total := int64(b.N/benchGroups)*int64(len(frames)) + int64(endOf(ends, b.N%benchGroups))
	r := bufio.NewReader(&benchCycleReader{data: frames, left: total})
	var buf []byte
	req := &agent.Request{}
	n := 0
	for {
		if err := agent.ReadMessage(&buf, r, req); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			b.Fatal(err)
		}
		if req.GetPoint() == nil {
			b.Fatal("not a point")
		}
		n++
	}
	if n != b.N {
		b.Fatalf("read %d points, want %d", n, b.N)
	}
	b.SetBytes(int64(len(frames) / benchGroups))
}

// benchFrames returns the Point request frames of benchPoints(OK), one per
// group, back to back, and where each ends.
func benchFrames(b *testing.B) (frames []byte, ends []int) {
	for g, p := range benchPoints(OK) {
		p.Time = int64(g)
		msg, err := proto.Marshal(&agent.Request{Message: &agent.Request_Point{Point: p}})
		if err != nil {
			b.Fatal(err)
		}
		frames = binary.AppendUvarint(frames, uint64(len(msg)))
		frames = append(frames, msg...)
		ends = append(ends, len(frames))
	}
	return frames, ends
}
