package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
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

	"github.com/kapacitor-squadcast/kapacitor-squadcast/cmd/internal/stack"
)

// testDaemon is the serve command running in this process, as main runs it.
type testDaemon struct {
	t      *testing.T
	socket string
	data   string
	logs   *stack.SyncBuffer
	cancel context.CancelFunc
	done   chan int
}

// startTestDaemon runs `serve --socket S --data-dir D args...` until the
// test ends (or stop is called) and waits for its socket.
func startTestDaemon(t *testing.T, args ...string) *testDaemon {
	t.Helper()
	dir := t.TempDir()
	d := &testDaemon{t: t, socket: filepath.Join(dir, "sq.sock"), data: filepath.Join(dir, "data"),
		logs: &stack.SyncBuffer{}, done: make(chan int, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	args = append([]string{"--socket", d.socket, "--data-dir", d.data}, args...)
	go func() { d.done <- runServe(ctx, args, d.logs) }()
	t.Cleanup(func() { d.stop() })
	require.Eventually(t, func() bool {
		c, err := net.Dial("unix", d.socket)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 30*time.Second, 10*time.Millisecond, "the daemon listens; its log:\n%s", d.logs)
	return d
}

// stop ends the daemon as SIGTERM does and returns its exit code.
func (d *testDaemon) stop() int {
	d.cancel()
	select {
	case code := <-d.done:
		d.done <- code
		return code
	case <-time.After(60 * time.Second):
		d.t.Fatalf("the daemon did not stop; its log:\n%s", d.logs)
		return -1
	}
}

// udfClient speaks to the daemon as Kapacitor's UDF node does.
type udfClient struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
	buf  []byte
}

func dialUDF(t testing.TB, socket string) (*udfClient, error) {
	c, err := net.Dial("unix", socket)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return &udfClient{t: t, conn: c, r: bufio.NewReader(c)}, nil
}

func (k *udfClient) send(req *agent.Request) error { return agent.WriteMessage(req, k.conn) }

func (k *udfClient) recv() (*agent.Response, error) {
	if err := k.conn.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return nil, err
	}
	res := &agent.Response{}
	return res, agent.ReadMessage(&k.buf, k.r, res)
}

// init sends Init and returns Kapacitor's view of the answer.
func (k *udfClient) init(task string, opts ...*agent.Option) (*agent.InitResponse, error) {
	if err := k.send(&agent.Request{Message: &agent.Request_Init{Init: &agent.InitRequest{TaskID: task, NodeID: "squadcast1", Options: opts}}}); err != nil {
		return nil, err
	}
	res, err := k.recv()
	if err != nil {
		return nil, err
	}
	if res.GetInit() == nil {
		return nil, fmt.Errorf("want an init response, got %v", res)
	}
	return res.GetInit(), nil
}

func (k *udfClient) point(group string, t int64, v float64) error {
	return k.send(&agent.Request{Message: &agent.Request_Point{Point: &agent.Point{
		Name: "cpu", Time: t, Group: "host=" + group, Tags: map[string]string{"host": group}, FieldsDouble: map[string]float64{"v": v},
	}}})
}

// sync sends a keepalive and collects the responses up to its answer: the
// points emitted for events and any error.
func (k *udfClient) sync(at int64) (points []*agent.Point, errs []string, err error) {
	if err := k.send(&agent.Request{Message: &agent.Request_Keepalive{Keepalive: &agent.KeepaliveRequest{Time: at}}}); err != nil {
		return nil, nil, err
	}
	for {
		res, err := k.recv()
		if err != nil {
			return points, errs, err
		}
		switch m := res.Message.(type) {
		case *agent.Response_Keepalive:
			if m.Keepalive.Time == at {
				return points, errs, nil
			}
		case *agent.Response_Point:
			points = append(points, m.Point)
		case *agent.Response_Error:
			errs = append(errs, m.Error.Error)
		}
	}
}

func strOpt(name, v string) *agent.Option {
	return &agent.Option{Name: name, Values: []*agent.OptionValue{{Type: agent.ValueType_STRING, Value: &agent.OptionValue_StringValue{StringValue: v}}}}
}

func TestByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		str  string
		bad  bool
	}{
		{in: "16MiB", want: 16 << 20, str: "16MiB"},
		{in: "512KiB", want: 512 << 10, str: "512KiB"},
		{in: "1GiB", want: 1 << 30, str: "1GiB"},
		{in: "1048576", want: 1 << 20, str: "1MiB"},
		{in: "100000B", want: 100000, str: "100000"},
		{in: "2MB", want: 2000000, str: "2000000"},
		{in: " 64 KiB ", want: 64 << 10, str: "64KiB"},
		{in: "lots", bad: true},
		{in: "-1MiB", bad: true},
		{in: "1.5MiB", bad: true},
		{in: "99999999999GiB", bad: true},
		{in: "", bad: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			var s byteSize
			err := s.Set(tc.in)
			if tc.bad {
				require.ErrorContains(t, err, "invalid size")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, int64(s))
			assert.Equal(t, tc.str, s.String())
		})
	}
}

// TestServeMaxFrameSize: --max-frame-size is checked, and a longer frame
// ends only its connection, with the reason logged, before anything is
// allocated for it.
func TestServeMaxFrameSize(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		size string
		code int
		want string
	}{
		{"1KiB", 1, "--max-frame-size must be between 64KiB and 1GiB, got 1KiB"},
		{"2GiB", 1, "--max-frame-size must be between 64KiB and 1GiB"},
		{"big", 2, `invalid size "big"`},
	} {
		t.Run(tc.size, func(t *testing.T) {
			var errb bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			assert.Equal(t, tc.code, runServe(ctx, []string{"--socket", filepath.Join(dir, "s"), "--data-dir", dir, "--max-frame-size", tc.size}, &errb))
			assert.Contains(t, errb.String(), tc.want)
		})
	}

	var help bytes.Buffer
	require.Equal(t, 0, runServe(context.Background(), []string{"--help"}, &help))
	assert.Contains(t, help.String(), "-max-frame-size size")
	assert.Contains(t, help.String(), "(default 16MiB)")

	d := startTestDaemon(t, "--url", "http://127.0.0.1:1/v1/incidents/kapacitor/KEY", "--max-frame-size", "64KiB")
	good, err := dialUDF(t, d.socket)
	require.NoError(t, err)
	res, err := good.init("good", strOpt("crit", `"v" > 90`))
	require.NoError(t, err)
	require.True(t, res.Success, res.Error)

	// A frame that claims 1 GiB: refused from its length prefix alone.
	bad, err := dialUDF(t, d.socket)
	require.NoError(t, err)
	var hdr [binary.MaxVarintLen64]byte
	_, err = bad.conn.Write(hdr[:binary.PutUvarint(hdr[:], 1<<30)])
	require.NoError(t, err)
	r, err := bad.recv()
	require.NoError(t, err)
	assert.Equal(t, "frame of 1073741824 bytes exceeds the limit of 65536 bytes", r.GetError().GetError())
	require.Eventually(t, func() bool { return strings.Contains(d.logs.String(), "exceeds the limit of 65536 bytes") }, 10*time.Second, 10*time.Millisecond)
	assert.Contains(t, d.logs.String(), `"msg":"connection ended with an error"`)

	// A frame just under the limit is taken.
	big := &agent.Point{Name: "cpu", Group: "g", Tags: map[string]string{"pad": strings.Repeat("x", 60<<10)}, FieldsDouble: map[string]float64{"v": 1}}
	require.NoError(t, good.send(&agent.Request{Message: &agent.Request_Point{Point: big}}))
	_, errs, err := good.sync(1)
	require.NoError(t, err)
	assert.Empty(t, errs)
	assert.Equal(t, 0, d.stop())
}

// openFDs counts the process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err, "counting open file descriptors needs Linux's /proc")
	return len(ents)
}

// connGoroutines counts the goroutines serving UDF connections.
func connGoroutines() int {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "udf.(*Server).serveConn")
}
