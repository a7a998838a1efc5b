package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/influxdata/kapacitor/udf/agent"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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

// TestDaemonRejectsBadOptions: through the whole daemon (the options, then
// the endpoint resolution), every wrong value fails only its task, naming
// the option and the value; the daemon serves on.
func TestDaemonRejectsBadOptions(t *testing.T) {
	srv, count := recordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {})
	d := startTestDaemon(t, "--url", srv.URL+"/ok/v1/incidents/kapacitor/DEFAULTKEY0123")
	crit := strOpt("crit", `"v" > 90`)
	tests := []struct {
		name string
		opts []*agent.Option
		want string
	}{
		{"unparsable expression", []*agent.Option{strOpt("crit", `"v" >`)}, `option .crit('"v" >'): parse error`},
		{"expression referencing nothing", []*agent.Option{strOpt("crit", `TRUE`)}, `option .crit('TRUE'): the expression references no field or tag`},
		{"template that does not parse", []*agent.Option{crit, strOpt("message", "{{ .ID ")}, `option .message('{{ .ID '): template parse error`},
		{"template that fails", []*agent.Option{crit, strOpt("details", "{{ .Fields.value.x }}")}, `option .details('{{ .Fields.value.x }}'): template error`},
		{"unknown endpoint", []*agent.Option{crit, strOpt("endpoint", "prod")}, `option .endpoint('prod'): unknown endpoint (configured: default)`},
		{"unknown format", []*agent.Option{crit, strOpt("format", "xml")}, `option .format('xml'): unknown format`},
		{"non-http url", []*agent.Option{crit, strOpt("url", "ftp://api.squadcast.com/v2/incidents/api/URLKEY0123456")}, `option .url: url has scheme "ftp" (want http or https)`},
		{"hostless url", []*agent.Option{crit, strOpt("url", "https:///v2/incidents/api/URLKEY0123456")}, `option .url: url has no host`},
		{"history(1)", []*agent.Option{crit, doubleOpt("flapping", 0.2, 0.5), intOpt("history", 1)}, `option .history(1): must be between 2 and 10000`},
		{"flapping low above high", []*agent.Option{crit, doubleOpt("flapping", 0.7, 0.3)}, `option .flapping(0.7, 0.3): the low threshold must not exceed the high one`},
		{"flapping outside 0..1", []*agent.Option{crit, doubleOpt("flapping", 10, 50)}, `option .flapping(10, 50): thresholds are fractions`},
		{"duplicate", []*agent.Option{crit, strOpt("crit", `"v" > 80`)}, `option .crit('"v" > 80'): given more than once`},
		{"duplicate url", []*agent.Option{crit, strOpt("url", "http://h/URLKEY0123456"), strOpt("url", "http://h/URLKEY0123456")}, `option .url('...'): given more than once`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := dialUDF(t, d.socket)
			require.NoError(t, err)
			res, err := k.init("bad", tt.opts...)
			require.NoError(t, err)
			assert.False(t, res.Success)
			assert.True(t, strings.HasPrefix(res.Error, tt.want), "error %q, want it to start with %q", res.Error, tt.want)
			assert.NotContains(t, res.Error, "URLKEY0123456")
			// Kapacitor stops the task; until then the connection answers.
			_, errs, err := k.sync(1)
			require.NoError(t, err)
			assert.Empty(t, errs)
		})
	}

	// The daemon serves on.
	k, err := dialUDF(t, d.socket)
	require.NoError(t, err)
	res, err := k.init("good", crit)
	require.NoError(t, err)
	require.True(t, res.Success, res.Error)
	require.NoError(t, k.point("a", 1, 95))
	pts, _, err := k.sync(2)
	require.NoError(t, err)
	require.Len(t, pts, 1)
	require.Eventually(t, func() bool { return count("/ok") == 1 }, 30*time.Second, 10*time.Millisecond)
	logs := d.logs.String()
	assert.Equal(t, len(tests), strings.Count(logs, `"msg":"task rejected: bad option"`))
	assert.NotContains(t, logs, "URLKEY0123456")
	assert.NotContains(t, logs, "DEFAULTKEY0123")
	assert.Equal(t, 0, d.stop())
}

// TestDaemonNoSecretLeaks runs the whole daemon at debug level with
// webhook keys in the default URL (from the environment) and in tasks'
// .url()s, through retries, permanent failures, attempt timeouts, refused
// connections, bad options and a shutdown that leaves events pending, and
// checks that no key shows in any output: every log line, every answer to
// Kapacitor, `outbox list` and the /metrics page.
func TestDaemonNoSecretLeaks(t *testing.T) {
	keys := map[string]string{
		"default": "DeFaUlTkEy0123456789", "perm": "PeRmAnEnTkEy01234567", "hang": "HaNgInGkEy0123456789",
		"refused": "ReFuSeDkEy0123456789", "badurl": "BaDuRlKeY01234567890", "dup": "DuPlIcAtEkEy01234567", "hostless": "HoStLeSsKeY012345678",
	}
	release := make(chan struct{})
	srv, count := recordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/retry/") && n <= 2:
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "overloaded at %s%s", srv0(r), r.URL.String())
		case strings.HasPrefix(r.URL.Path, "/perm/"):
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, "no service for key %s at %s%s", r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:], srv0(r), r.URL.String())
		case strings.HasPrefix(r.URL.Path, "/hang/"):
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}
	})
	t.Cleanup(func() { close(release) }) // before srv.Close
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	refused := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())

	t.Setenv("SQUADCAST_WEBHOOK_URL", srv.URL+"/retry/v1/incidents/kapacitor/"+keys["default"])
	d := startTestDaemon(t, "--log-level", "debug", "--retry-max-wait", "1s", "--shutdown-timeout", "500ms", "--listen", "127.0.0.1:0")
	metricsBase := metricsAddr(t, d.logs.String)
	var answers []string // everything the daemon said to "Kapacitor"
	crit := strOpt("crit", `"v" > 90`)
	tasks := []struct {
		name string
		opts []*agent.Option
		ok   bool
	}{
		{"default", []*agent.Option{crit}, true},
		{"perm", []*agent.Option{crit, strOpt("url", srv.URL+"/perm/v2/incidents/api/"+keys["perm"]), strOpt("format", "incident-webhook")}, true},
		{"hang", []*agent.Option{crit, strOpt("url", srv.URL+"/hang/v1/incidents/kapacitor/"+keys["hang"])}, true},
		{"refused", []*agent.Option{crit, strOpt("url", refused+"/v1/incidents/kapacitor/"+keys["refused"])}, true},
		{"badurl", []*agent.Option{crit, strOpt("url", "ftp://api.squadcast.com/v2/incidents/api/"+keys["badurl"])}, false},
		{"dup", []*agent.Option{crit, strOpt("url", srv.URL+"/x/"+keys["dup"]), strOpt("url", srv.URL+"/y/"+keys["dup"])}, false},
		{"hostless", []*agent.Option{crit, strOpt("url", "http:///v2/incidents/api/"+keys["hostless"])}, false},
	}
	for i, tk := range tasks {
		k, err := dialUDF(t, d.socket)
		require.NoError(t, err)
		res, err := k.init(tk.name, tk.opts...)
		require.NoError(t, err)
		answers = append(answers, res.Error)
		require.Equal(t, tk.ok, res.Success, "%s: %s", tk.name, res.Error)
		if !tk.ok {
			continue
		}
		require.NoError(t, k.point(tk.name, int64(i+1), 95))
		pts, errs, err := k.sync(int64(i + 1))
		require.NoError(t, err)
		require.Len(t, pts, 1)
		answers = append(answers, errs...)
		for _, p := range pts {
			answers = append(answers, fmt.Sprint(p))
		}
	}

	logHas := func(s string) func() bool { return func() bool { return strings.Contains(d.logs.String(), s) } }
	require.Eventually(t, func() bool { return count("/retry") == 3 }, 60*time.Second, 20*time.Millisecond, "retried twice, then delivered")
	require.Eventually(t, logHas(`"msg":"squadcast event dead-lettered"`), 60*time.Second, 20*time.Millisecond)
	require.Eventually(t, logHas("connection refused"), 60*time.Second, 20*time.Millisecond)
	// The default per-attempt timeout is 10s.
	require.Eventually(t, logHas("attempt timed out after 10s"), 60*time.Second, 50*time.Millisecond)
	code, metricsText := scrape(t, metricsBase, "/metrics")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, metricsText, `kapacitor_squadcast_deliveries_total{endpoint="inline",result="dead_lettered"} 1`, "the metrics saw the paths too")
	require.Equal(t, 0, d.stop())

	var listOut, listErr bytes.Buffer
	require.Equal(t, 0, runOutbox([]string{"list", "--data-dir", d.data}, &listOut, &listErr), listErr.String())

	logs := d.logs.String()
	// Every path was taken.
	for _, want := range []string{
		`"msg":"squadcast delivery attempt"`, `"msg":"squadcast delivery attempt failed, will retry"`,
		"http status 503", "http status 400", `"msg":"squadcast event dead-lettered"`, "attempt timed out after 10s", "connection refused",
		`"msg":"task rejected: bad option"`, "events still pending at shutdown",
	} {
		assert.Contains(t, logs, want)
	}
	assert.Contains(t, listOut.String(), "dead")
	assert.Contains(t, listOut.String(), "pending")

	outputs := map[string]string{
		"daemon log":           logs,
		"answers to Kapacitor": strings.Join(answers, "\n"),
		"outbox list":          listOut.String() + listErr.String(),
		"/metrics":             metricsText,
	}
	for name, text := range outputs {
		for what, key := range keys {
			assert.NotContains(t, text, key, "%s shows the %s key", name, what)
		}
		assert.NotContains(t, text, "/incidents/", "%s shows a webhook path", name)
	}
}

// srv0 is the scheme and host a request was sent to.
func srv0(r *http.Request) string { return "http://" + r.Host }

// TestDaemonManyConnections: many task connections open, initialize, send
// points, read their events and close, all at once, while deliveries run;
// the daemon stays healthy, delivers every event, and keeps no goroutine or
// file descriptor of the connections afterwards.
func TestDaemonManyConnections(t *testing.T) {
	const conns, points = 50, 10
	srv, count := recordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		time.Sleep(2 * time.Millisecond)
	})
	d := startTestDaemon(t, "--url", srv.URL+"/ok/v1/incidents/kapacitor/KEY0123456789", "--workers", "4")
	goroutinesBefore, fdsBefore := runtime.NumGoroutine(), openFDs(t)

	errs := make(chan error, conns)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- func() error {
				k, err := dialUDF(t, d.socket)
				if err != nil {
					return err
				}
				defer k.conn.Close()
				res, err := k.init(fmt.Sprintf("task%d", i), strOpt("crit", `"v" > 90`))
				if err != nil {
					return err
				}
				if !res.Success {
					return fmt.Errorf("init: %s", res.Error)
				}
				for p := range points {
					v := 95.0 // CRITICAL, then OK, and so on: an event each
					if p%2 == 1 {
						v = 50
					}
					if err := k.point(fmt.Sprintf("h%d", i), int64(p+1), v); err != nil {
						return err
					}
				}
				pts, es, err := k.sync(99)
				if err != nil {
					return err
				}
				if len(pts) != points || len(es) > 0 {
					return fmt.Errorf("connection %d: %d events, errors %v", i, len(pts), es)
				}
				return nil
			}()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return count("/ok") == conns*points }, 120*time.Second, 20*time.Millisecond,
		"every event delivered: %d of %d", count("/ok"), conns*points)

	// Healthy: a new task works.
	k, err := dialUDF(t, d.socket)
	require.NoError(t, err)
	res, err := k.init("after", strOpt("crit", `"v" > 90`))
	require.NoError(t, err)
	require.True(t, res.Success)
	require.NoError(t, k.point("after", 1, 95))
	pts, _, err := k.sync(1)
	require.NoError(t, err)
	require.Len(t, pts, 1)
	require.NoError(t, k.conn.Close())
	require.Eventually(t, func() bool { return count("/ok") == conns*points+1 }, 30*time.Second, 10*time.Millisecond)

	// No connection goroutine is left, and once the stand-in drops its
	// keep-alive connections, goroutines and file descriptors are back
	// where they were.
	srv.CloseClientConnections()
	deadline := time.Now().Add(30 * time.Second)
	for (connGoroutines() > 0 || runtime.NumGoroutine() > goroutinesBefore+2 || openFDs(t) > fdsBefore) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	require.Zero(t, connGoroutines(), "connection goroutines left")
	if n := runtime.NumGoroutine(); n > goroutinesBefore+2 {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutines leaked: before %d, now %d\n%s", goroutinesBefore, n, buf[:runtime.Stack(buf, true)])
	}
	require.LessOrEqual(t, openFDs(t), fdsBefore, "file descriptors leaked")
	require.Equal(t, 0, d.stop())
	assert.NotContains(t, d.logs.String(), `"level":"error"`)
}
