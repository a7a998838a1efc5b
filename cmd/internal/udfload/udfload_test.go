package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/influxdata/kapacitor/udf/agent"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
)

// TestFramesAreKapacitors checks that the driver's frames are framed as
// Kapacitor's agent.WriteMessage frames (uvarint length, then the message),
// that agent.ReadMessage reads them back, and that the points are those of
// the load.
func TestFramesAreKapacitors(t *testing.T) {
	l := load{groups: 3, changeEvery: 2, start: time.Unix(1700000000, 0)}
	f, err := l.pointFrames(5)
	require.NoError(t, err)
	require.Equal(t, 5, f.len())

	r := bufio.NewReader(bytes.NewReader(f.data))
	var buf []byte
	for i := range f.len() {
		hdr, msg := f.frame(i)
		assert.Equal(t, binary.AppendUvarint(nil, uint64(len(msg))), hdr, "frame %d", i)

		req := &agent.Request{}
		require.NoError(t, readFrame(r, &buf, req))
		p := req.GetPoint()
		require.NotNil(t, p, "frame %d", i)
		assert.Equal(t, "host="+hostName(i%3), p.Group)
		assert.Equal(t, l.start.UnixNano()+int64(i)*int64(time.Millisecond), p.Time)

		var again bytes.Buffer
		require.NoError(t, agent.WriteMessage(req, &again))
		assert.Equal(t, again.Len(), len(hdr)+len(msg), "frame %d", i)
		back := &agent.Request{}
		require.NoError(t, readFrame(bufio.NewReader(&again), &buf, back))
		assert.True(t, proto.Equal(req, back), "frame %d", i)
	}
	_, err = r.ReadByte()
	assert.Equal(t, io.EOF, err, "nothing after the last frame")
}

func TestLoadChanges(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		groups, every, n      int
		wantChanges, wantCrit int
	}{
		{"no changes", 10, 0, 1000, 0, 0},
		{"one per 500", 1000, 500, 100000, 200, 0},
		{"one per 1000", 1000, 1000, 200000, 200, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := load{groups: tc.groups, changeEvery: tc.every}
			assert.Equal(t, tc.wantChanges, l.changes(tc.n))
			// Every change flips the level of the point's own host: the
			// emitted values change level exactly that often.
			last := map[int]float64{}
			flips := 0
			l.gen(tc.n, nil, func(_ int, host int, idle float64, _ int64) {
				prev, ok := last[host]
				if !ok {
					prev = okIdle
				}
				if prev != idle {
					flips++
				}
				last[host] = idle
			})
			assert.Equal(t, tc.wantChanges, flips)
		})
	}
}

func TestPercentile(t *testing.T) {
	ds := make([]time.Duration, 100)
	for i := range ds {
		ds[i] = time.Duration(100-i) * time.Millisecond
	}
	assert.Equal(t, 50*time.Millisecond, percentile(ds, 50))
	assert.Equal(t, 99*time.Millisecond, percentile(ds, 99))
	assert.Equal(t, 100*time.Millisecond, percentile(ds, 100))
	assert.Equal(t, time.Duration(0), percentile(nil, 99))
}

func TestParseGoBench(t *testing.T) {
	out := []byte(`goos: linux
pkg: example.com/m/udf
BenchmarkHandlerPoint/no-change/ok-2         	 2000000	       509.9 ns/op	      24 B/op	       3 allocs/op
BenchmarkConnPoint-2   	   20000	      3120 ns/op	  59.94 MB/s	    1296 B/op	      47 allocs/op
BenchmarkNoMem 	 100	 12.5 ns/op
PASS
`)
	got := parseGoBench(out)
	require.Len(t, got, 3)
	assert.Equal(t, goBench{Pkg: "example.com/m/udf", Name: "HandlerPoint/no-change/ok", NsPerOp: 509.9, BPerOp: 24, Allocs: 3, HasMem: true}, got[0])
	assert.Equal(t, goBench{Pkg: "example.com/m/udf", Name: "ConnPoint", NsPerOp: 3120, BPerOp: 1296, Allocs: 47, HasMem: true}, got[1])
	assert.Equal(t, goBench{Pkg: "example.com/m/udf", Name: "NoMem", NsPerOp: 12.5}, got[2])
}

// TestShortRuns drives the drop baseline and the daemon's socket server
// (with a discarding publisher) for a few thousand points each, as the
// load tool does: every point is handled, and the daemon sends a point
// back for each state change.
func TestShortRuns(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, "drop.sock"))
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- serveDrop(ln) }()
	t.Cleanup(func() {
		ln.Close()
		assert.NoError(t, <-served)
	})
	ours, err := startInProcess(dir, "ours", testDiscardSink(t, dir))
	require.NoError(t, err)
	t.Cleanup(ours.stop)

	l := load{groups: 100, changeEvery: 50, start: time.Unix(1700000000, 0)}
	const n = 5000
	f, err := l.pointFrames(n)
	require.NoError(t, err)

	rate, err := ingest(ln.Addr().String(), squadcastOptions(), f)
	require.NoError(t, err)
	assert.Greater(t, rate, 0.0)

	c, err := dial(ours.Socket)
	require.NoError(t, err)
	defer c.close()
	require.NoError(t, c.init("short", squadcastOptions()))
	require.NoError(t, c.writeFrames(f, 0, f.len()))
	require.NoError(t, c.sync(time.Minute))
	assert.Equal(t, int64(l.changes(n)), c.Points(), "one point back per state change")
}

// TestInitRejected checks that a failed Init is reported as an error.
func TestInitRejected(t *testing.T) {
	dir := t.TempDir()
	ours, err := startInProcess(dir, "ours", testDiscardSink(t, dir))
	require.NoError(t, err)
	t.Cleanup(ours.stop)
	c, err := dial(ours.Socket)
	require.NoError(t, err)
	defer c.close()
	bad := []*agent.Option{{Name: "crit", Values: []*agent.OptionValue{
		{Type: agent.ValueType_STRING, Value: &agent.OptionValue_StringValue{StringValue: `"x" <`}},
	}}}
	err = c.init("bad", bad)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "crit")
}

func TestRatesMedian(t *testing.T) {
	for _, tc := range []struct {
		r    rates
		want float64
	}{
		{nil, 0},
		{rates{5}, 5},
		{rates{300, 100, 200}, 200},
		{rates{4, 1, 3, 2}, 2.5},
	} {
		assert.Equal(t, tc.want, tc.r.median(), "%v", tc.r)
	}
}

// TestRatesRatio: the ratio pairs rounds; a slow spell that moves both
// sides of a round does not move it, where a ratio of medians moves.
func TestRatesRatio(t *testing.T) {
	ours := rates{90, 45, 92, 88, 46}
	base := rates{100, 50, 100, 100, 50}
	assert.InDelta(t, 0.90, ours.ratio(base), 1e-9)
	assert.InDelta(t, 0.88, ours.median()/base.median(), 1e-9, "the ratio of medians, for contrast")
	assert.Equal(t, 0.0, rates{}.ratio(nil))
	assert.InDelta(t, 2.0, rates{2, 7}.ratio(rates{1, 0}), 1e-9, "a zero baseline is left out")
}

func TestParseOnly(t *testing.T) {
	only, err := parseOnly("")
	require.NoError(t, err)
	assert.True(t, config{only: only}.runs("memory"), "no -only: every run")
	only, err = parseOnly("memory, latency")
	require.NoError(t, err)
	c := config{only: only}
	assert.True(t, c.runs("memory"))
	assert.True(t, c.runs("latency"))
	assert.False(t, c.runs("ingest"))
	only, err = parseOnly("relay")
	require.NoError(t, err)
	assert.True(t, config{only: only}.runs("relay"))
	_, err = parseOnly("memory,nope")
	assert.ErrorContains(t, err, `unknown run "nope"`)
}

// testDiscardSink returns a discardSink with its state file in dir.
func testDiscardSink(t *testing.T, dir string) discardSink {
	t.Helper()
	d, err := openDiscardSink(filepath.Join(dir, "state"))
	require.NoError(t, err)
	t.Cleanup(func() { d.db.Close() })
	return d
}

// TestRateLimitedRuns makes small storms on a rate-limited endpoint, as
// the load tool does: the CRITICAL triggers reach the endpoint before the
// backlog of warnings with priority, only after it first in, first out;
// without
// coalescing every trigger and resolve is a request, with it fewer.
func TestRateLimitedRuns(t *testing.T) {
	old := [...]int{prioWarnings, prioCrits, coalesceN}
	prioWarnings, prioCrits, coalesceN = 20, 2, 40
	t.Cleanup(func() { prioWarnings, prioCrits, coalesceN = old[0], old[1], old[2] })
	e := newEndpoint()
	defer e.close()
	r := &rig{e: e, dir: t.TempDir()}

	fifo, err := r.critsBehindWarnings("fifo", true)
	require.NoError(t, err)
	prio, err := r.critsBehindWarnings("prio", false)
	require.NoError(t, err)
	assert.Less(t, prio, fifo)
	_, fifoDone := e.counts("fifo")
	assert.GreaterOrEqual(t, fifoDone, prioWarnings+prioCrits-1, "the CRITICAL triggers came last")

	without, err := r.openAndResolve("nocoal", false)
	require.NoError(t, err)
	assert.Equal(t, 2*coalesceN, without)
	with, err := r.openAndResolve("coal", true)
	require.NoError(t, err)
	assert.Less(t, with, without)
}
