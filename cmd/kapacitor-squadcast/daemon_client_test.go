package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/influxdata/kapacitor/udf/agent"
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

func doubleOpt(name string, vals ...float64) *agent.Option {
	o := &agent.Option{Name: name}
	for _, v := range vals {
		o.Values = append(o.Values, &agent.OptionValue{Type: agent.ValueType_DOUBLE, Value: &agent.OptionValue_DoubleValue{DoubleValue: v}})
	}
	return o
}

func intOpt(name string, v int64) *agent.Option {
	return &agent.Option{Name: name, Values: []*agent.OptionValue{{Type: agent.ValueType_INT, Value: &agent.OptionValue_IntValue{IntValue: v}}}}
}

// recordingServer stands in for Squadcast: it counts requests per path
// prefix and answers as the handler says.
func recordingServer(t *testing.T, h func(w http.ResponseWriter, r *http.Request, n int)) (*httptest.Server, func(prefix string) int) {
	t.Helper()
	var mu sync.Mutex
	counts := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		prefix := "/" + strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 2)[0]
		mu.Lock()
		counts[prefix]++
		n := counts[prefix]
		mu.Unlock()
		h(w, r, n)
	}))
	t.Cleanup(srv.Close)
	return srv, func(prefix string) int {
		mu.Lock()
		defer mu.Unlock()
		return counts[prefix]
	}
}

// holdingStandIn starts a stand-in for Squadcast that holds every request
// until release is called, then answers 202 Accepted; it stops when the
// test ends. It returns its base URL.
func holdingStandIn(t *testing.T) (url string, release func()) {
	t.Helper()
	held := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-held:
			w.WriteHeader(http.StatusAccepted)
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() { once.Do(func() { close(held) }) }
}
