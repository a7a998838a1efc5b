package udf

import (
	"bufio"
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/kapacitor/udf/agent"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// kapacitorClient speaks to the server as Kapacitor's UDF node does.
type kapacitorClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	buf  []byte
}

func dial(t *testing.T, path string) *kapacitorClient {
	t.Helper()
	c, err := net.Dial("unix", path)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return &kapacitorClient{t: t, conn: c, r: bufio.NewReader(c)}
}

func (k *kapacitorClient) send(req *agent.Request) {
	k.t.Helper()
	require.NoError(k.t, agent.WriteMessage(req, k.conn))
}

func (k *kapacitorClient) recv() *agent.Response {
	k.t.Helper()
	require.NoError(k.t, k.conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	res := &agent.Response{}
	require.NoError(k.t, agent.ReadMessage(&k.buf, k.r, res))
	return res
}

func (k *kapacitorClient) init(opts ...*agent.Option) *agent.InitResponse {
	k.send(&agent.Request{Message: &agent.Request_Init{Init: &agent.InitRequest{TaskID: "task", NodeID: "squadcast1", Options: opts}}})
	return k.recv().GetInit()
}

func (k *kapacitorClient) point(group string, t int64, v float64) {
	k.send(pointRequest(group, t, v))
}

// pointRequest is a point of measurement cpu in group, tagged g=group,
// with field v.
func pointRequest(group string, t int64, v float64) *agent.Request {
	return &agent.Request{Message: &agent.Request_Point{Point: &agent.Point{
		Name: "cpu", Time: t, Group: group, Tags: map[string]string{"g": group}, FieldsDouble: map[string]float64{"v": v},
	}}}
}

// pointsUntilKeepalive reads responses until a keepalive, which it
// returns, with the number of points before it; any other response fails
// the test.
func (k *kapacitorClient) pointsUntilKeepalive() (points int, keepalive *agent.KeepaliveResponse) {
	k.t.Helper()
	for {
		res := k.recv()
		if ka := res.GetKeepalive(); ka != nil {
			return points, ka
		}
		require.NotNil(k.t, res.GetPoint(), "unexpected response %v", res)
		points++
	}
}

func (k *kapacitorClient) keepalive(t int64) *agent.KeepaliveResponse {
	k.send(&agent.Request{Message: &agent.Request_Keepalive{Keepalive: &agent.KeepaliveRequest{Time: t}}})
	return k.recv().GetKeepalive()
}

// startServer serves on a socket in a temp dir and returns its path.
func startServer(t *testing.T, sink Sink) (string, *Server) {
	t.Helper()
	return startServerWith(t, HandlerConfig{Sink: sink, MaxFrame: 1 << 20})
}

// startServerWith serves cfg on a socket in a temp dir and returns its path.
func startServerWith(t *testing.T, cfg HandlerConfig) (string, *Server) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	srv := NewServer(cfg)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		require.NoError(t, srv.Close())
		require.NoError(t, <-done)
	})
	return path, srv
}

func TestServerProtocol(t *testing.T) {
	rec := &recorder{}
	path, srv := startServer(t, rec)

	// Kapacitor's start-up connection: Info only.
	info := dial(t, path)
	info.send(&agent.Request{Message: &agent.Request_Info{Info: &agent.InfoRequest{}}})
	ir := info.recv().GetInfo()
	require.NotNil(t, ir)
	assert.Equal(t, agent.EdgeType_STREAM, ir.Wants)
	assert.Equal(t, agent.EdgeType_STREAM, ir.Provides)
	for _, name := range []string{"crit", "warn", "info", "id", "message", "details", "endpoint", "url", "format"} {
		require.Contains(t, ir.Options, name)
		assert.Equal(t, []agent.ValueType{agent.ValueType_STRING}, ir.Options[name].ValueTypes, name)
	}

	// A task connection.
	k := dial(t, path)
	require.True(t, k.init(str("crit", `"v" > 90`)).Success)
	assert.Equal(t, int64(42), k.keepalive(42).Time)
	assert.Equal(t, map[string]bool{"task": true}, srv.ConnectedTasks())
	k.point("a", 1, 10) // OK: nothing comes back
	k.point("a", 2, 95) // CRITICAL
	res := k.recv().GetPoint()
	require.NotNil(t, res)
	assert.Equal(t, "CRITICAL", res.FieldsString["level"])
	assert.Equal(t, int64(2), res.Time)
	k.point("a", 3, 96) // unchanged
	k.point("a", 4, 10) // OK
	res = k.recv().GetPoint()
	require.NotNil(t, res)
	assert.Equal(t, "OK", res.FieldsString["level"])
	assert.Equal(t, int64(2), res.FieldsInt["duration"])
	assert.Equal(t, int64(7), k.keepalive(7).Time, "keepalives are answered in order after points")
	assert.Len(t, rec.Events(), 2)

	// Snapshot and Restore answer.
	k.send(&agent.Request{Message: &agent.Request_Snapshot{Snapshot: &agent.SnapshotRequest{}}})
	assert.NotNil(t, k.recv().GetSnapshot())
	k.send(&agent.Request{Message: &agent.Request_Restore{Restore: &agent.RestoreRequest{Snapshot: []byte("x")}}})
	assert.True(t, k.recv().GetRestore().GetSuccess())
}

func TestServerBadInitKeepsConnectionUsable(t *testing.T) {
	path, _ := startServer(t, &recorder{})
	k := dial(t, path)
	r := k.init(str("crit", `"v" >`))
	assert.False(t, r.Success)
	assert.Contains(t, r.Error, "option .crit")
	// The agent answers keepalives until Kapacitor closes the task.
	assert.Equal(t, int64(1), k.keepalive(1).Time)
	// A point before a successful Init ends this connection with a reason.
	k.point("a", 1, 1)
	assert.Contains(t, k.recv().GetError().GetError(), "before a successful init")
}

// TestServerHostileConnections: each bad connection ends alone with a
// logged reason (and an error sent back where the peer still listens),
// while a good one beside it keeps working, and no goroutine or file
// descriptor leaks.
func TestServerHostileConnections(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	rec := &recorder{}
	path, srv := startServerWith(t, HandlerConfig{Sink: rec, MaxFrame: 1 << 20, Logger: zap.New(core)})
	good := dial(t, path)
	require.True(t, good.init(str("crit", `"v" > 90`)).Success)
	before := runtime.NumGoroutine()
	fdsBefore := openFDs(t)

	varint := func(n uint64) []byte { b := make([]byte, binary.MaxVarintLen64); return b[:binary.PutUvarint(b, n)] }
	pointFrame := frame(t, &agent.Request{Message: &agent.Request_Point{Point: &agent.Point{Name: "m", Group: "g", FieldsDouble: map[string]float64{"v": 99}}}})
	cases := map[string]struct {
		data      []byte
		closeMid  bool   // half-close after writing: the peer still reads
		closeAll  bool   // close at once after writing: nobody reads the answer
		wantError string // in the ErrorResponse and the log
	}{
		"random bytes":            {data: []byte{0x05, 0xff, 0xfe, 0x01, 0x02, 0x03}, wantError: "decode request"},
		"oversized frame":         {data: varint(64 << 20), wantError: "frame of 67108864 bytes exceeds the limit of 1048576 bytes"},
		"just over the limit":     {data: varint(1<<20 + 1), wantError: "exceeds the limit"},
		"bad varint":              {data: []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, wantError: "frame length"},
		"cut short":               {data: append(varint(100), 1, 2, 3), closeMid: true, wantError: "connection closed inside a frame of 100 bytes"},
		"closed mid-frame":        {data: pointFrame[:len(pointFrame)-3], closeAll: true, wantError: "inside a frame"},
		"batch on a stream":       {data: frame(t, &agent.Request{Message: &agent.Request_Begin{Begin: &agent.BeginBatch{}}}), wantError: "takes a stream"},
		"empty request":           {data: varint(0), wantError: "empty request"},
		"point before init":       {data: pointFrame, wantError: "point received before a successful init"},
		"snapshot before init":    {data: frame(t, &agent.Request{Message: &agent.Request_Snapshot{Snapshot: &agent.SnapshotRequest{}}}), wantError: "snapshot requested before a successful init"},
		"restore before init":     {data: frame(t, &agent.Request{Message: &agent.Request_Restore{Restore: &agent.RestoreRequest{Snapshot: []byte{1, 2}}}}), wantError: "restore received before a successful init"},
		"garbage after good init": {data: append(frame(t, &agent.Request{Message: &agent.Request_Init{Init: &agent.InitRequest{Options: []*agent.Option{str("crit", `"v" > 1`)}}}}), 0x03, 0xff, 0xff, 0xff), wantError: "decode request"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			logged := logs.Len()
			c := dial(t, path)
			_, err := c.conn.Write(tc.data)
			require.NoError(t, err)
			switch {
			case tc.closeAll:
				require.NoError(t, c.conn.Close())
			case tc.closeMid:
				require.NoError(t, c.conn.(*net.UnixConn).CloseWrite())
				assert.Contains(t, c.recv().GetError().GetError(), tc.wantError)
			default:
				res := c.recv()
				if res.GetInit() != nil {
					require.True(t, res.GetInit().Success)
					res = c.recv()
				}
				assert.Contains(t, res.GetError().GetError(), tc.wantError)
				// Then the server closes the connection.
				_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, err := c.r.ReadByte()
				assert.Error(t, err, "the connection is closed")
				c.conn.Close()
			}
			// The reason is logged.
			require.Eventually(t, func() bool { return logs.Len() > logged }, 10*time.Second, 5*time.Millisecond)
			found := false
			for _, e := range logs.All()[logged:] {
				if e.Message == "connection ended with an error" && strings.Contains(e.ContextMap()["error"].(string), tc.wantError) {
					found = true
				}
			}
			assert.True(t, found, "logged reason %q in %v", tc.wantError, logs.All()[logged:])
		})
	}

	// The good connection is untouched.
	good.point("a", 1, 95)
	require.NotNil(t, good.recv().GetPoint())
	assert.Len(t, rec.Events(), 1)

	// Every bad connection's goroutine and file descriptor is gone.
	require.Eventually(t, func() bool { return srv.Connections() == 1 }, 10*time.Second, 10*time.Millisecond)
	requireNoLeaks(t, before, fdsBefore)
}

// requireNoLeaks waits until there are no more goroutines and open file
// descriptors than before, and fails the test if they stay more.
func requireNoLeaks(t *testing.T, goroutines, fds int) {
	t.Helper()
	// (Polled here, not with assert.Eventually, which runs its condition in
	// a goroutine of its own.)
	deadline := time.Now().Add(10 * time.Second)
	for (runtime.NumGoroutine() > goroutines || openFDs(t) > fds) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > goroutines {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutines leaked: before %d, now %d\n%s", goroutines, n, buf[:runtime.Stack(buf, true)])
	}
	if n := openFDs(t); n > fds {
		t.Fatalf("file descriptors leaked: before %d, now %d", fds, n)
	}
}

// openFDs counts the process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err, "counting open file descriptors needs Linux's /proc")
	return len(ents)
}

func frame(t *testing.T, req *agent.Request) []byte {
	t.Helper()
	var b bytesWriter
	require.NoError(t, agent.WriteMessage(req, &b))
	return b
}

type bytesWriter []byte

func (b *bytesWriter) Write(p []byte) (int, error) { *b = append(*b, p...); return len(p), nil }

func TestServerCloseEndsConnections(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	srv := NewServer(HandlerConfig{Sink: &recorder{}})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	k := dial(t, path)
	require.True(t, k.init(str("crit", `"v" > 90`)).Success)
	require.Eventually(t, func() bool { return srv.Connections() == 1 }, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, srv.Close())
	require.NoError(t, <-done)
	assert.Equal(t, 0, srv.Connections())
	assert.Empty(t, srv.ConnectedTasks())
	_ = k.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = k.r.ReadByte()
	assert.Error(t, err, "the client sees its connection closed")
}
