package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/cmd/internal/stack"
)

// scrape returns the body of GET base+path and its status.
func scrape(t *testing.T, base, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(base + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// metricValue returns the value of the series written exactly as series
// (name{labels} in the exposition's label order), or -1 when absent.
func metricValue(text, series string) float64 {
	for line := range strings.Lines(text) {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				return -1
			}
			return v
		}
	}
	return -1
}

// metricsAddr waits for the daemon's "serving metrics" log line and returns its address.
func metricsAddr(t *testing.T, logs func() string) string {
	t.Helper()
	var addr string
	require.Eventually(t, func() bool {
		for line := range strings.Lines(logs()) {
			var entry struct {
				Msg    string `json:"msg"`
				Listen string `json:"listen"`
			}
			if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "serving metrics" {
				addr = entry.Listen
				return true
			}
		}
		return false
	}, 30*time.Second, 10*time.Millisecond, "the daemon logs its metrics address")
	return "http://" + addr
}

// TestServeMetricsInProcess runs serve with a config file (named endpoints,
// socket mode and group, --listen) and a real socket client: the socket
// has its mode and group, /healthz and /readyz answer, the metrics move as
// points come in and events are delivered, an unknown endpoint fails Init
// with a message naming the option, and no secret shows in /metrics.
func TestServeMetricsInProcess(t *testing.T) {
	standIn, requests := pathRecorder()
	defer standIn.Close()

	dir, err := os.MkdirTemp("", "ksq-metrics-")
	require.NoError(t, err)
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "sq.sock")
	cfg := writeMetricsConfig(t, dir, standIn.URL)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs stack.SyncBuffer
	done := make(chan int, 1)
	go func() { done <- runServe(ctx, []string{"--config", cfg, "--socket", sock}, &logs) }()
	base := metricsAddr(t, logs.String)
	require.Eventually(t, func() bool { _, err := os.Stat(sock); return err == nil }, 30*time.Second, 10*time.Millisecond)

	checkSocketAndProbes(t, sock, base)
	sendTeamEvents(t, sock, requests)
	checkUnknownEndpointInit(t, sock)
	m := checkDeliveryMetrics(t, base)
	checkMetricNames(t, m, standIn.URL)
	checkPprof(t, base)
	checkNotReadyWithoutSocket(t, sock, base)

	cancel()
	select {
	case c := <-done:
		assert.Equal(t, 0, c)
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not stop")
	}
	assert.NotContains(t, logs.String(), cfgSecret)
	assert.Contains(t, logs.String(), `"msg":"alert event"`, "events are logged at debug")
}

// pathRecorder is a stand-in for Squadcast that answers 202 and records
// the path of each request; requests returns them in order.
func pathRecorder() (standIn *httptest.Server, requests func() []string) {
	var mu sync.Mutex
	var paths []string
	standIn = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	return standIn, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), paths...)
	}
}

// writeMetricsConfig writes dir/c.toml: socket mode and group, a data dir,
// --listen, debug logs, and the endpoints "default" and "team" (in the
// incident-webhook format) at the stand-in.
func writeMetricsConfig(t *testing.T, dir, standInURL string) string {
	t.Helper()
	cfg := filepath.Join(dir, "c.toml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`
socket-mode = "0600"
socket-group = "%d"
data-dir = %q
listen = "127.0.0.1:0"
log-level = "debug"
[[endpoint]]
  name = "default"
  url = "%s/v1/incidents/kapacitor/%s"
[[endpoint]]
  name = "team"
  url = "%s/v2/incidents/api/%s"
  format = "incident-webhook"
`, os.Getgid(), filepath.Join(dir, "data"), standInURL, cfgSecret, standInURL, cfgSecret)), 0o600))
	return cfg
}

// checkSocketAndProbes: the socket has its mode and group, /healthz and
// /readyz answer, and no delivery or connection is counted yet.
func checkSocketAndProbes(t *testing.T, sock, base string) {
	t.Helper()
	fi, err := os.Stat(sock)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "socket-mode")
	assert.Equal(t, uint32(os.Getgid()), fi.Sys().(*syscall.Stat_t).Gid, "socket-group")

	code, body := scrape(t, base, "/healthz")
	assert.Equal(t, http.StatusOK, code, body)
	code, body = scrape(t, base, "/readyz")
	assert.Equal(t, http.StatusOK, code, body)
	_, m := scrape(t, base, "/metrics")
	assert.Equal(t, 0.0, metricValue(m, `kapacitor_squadcast_deliveries_total{endpoint="team",result="delivered"}`), m)
	assert.Equal(t, 0.0, metricValue(m, `kapacitor_squadcast_connections`))
}

// sendTeamEvents runs a task on the endpoint "team" whose four points make
// two events, and waits until both reached the team's URL.
func sendTeamEvents(t *testing.T, sock string, requests func() []string) {
	t.Helper()
	k, err := dialUDF(t, sock)
	require.NoError(t, err)
	res, err := k.init("cpu_team", strOpt("crit", `"v" < 10`), strOpt("endpoint", "team"))
	require.NoError(t, err)
	require.True(t, res.GetSuccess(), res.GetError())
	base0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	for i, v := range []float64{50, 5, 5, 60} { // OK, CRITICAL, -, OK
		require.NoError(t, k.point("a", base0+int64(i)*int64(time.Second), v))
	}
	// Events come back downstream as points: two of them.
	points, errs, err := k.sync(1)
	require.NoError(t, err)
	require.Empty(t, errs)
	require.Len(t, points, 2)
	require.Eventually(t, func() bool { return len(requests()) == 2 }, 30*time.Second, 10*time.Millisecond)
	assert.Equal(t, []string{"/v2/incidents/api/" + cfgSecret, "/v2/incidents/api/" + cfgSecret}, requests(), "the named endpoint's URL")
}

// checkUnknownEndpointInit: a task naming an unknown endpoint fails Init,
// naming the option and the configured endpoints.
func checkUnknownEndpointInit(t *testing.T, sock string) {
	t.Helper()
	bad, err := dialUDF(t, sock)
	require.NoError(t, err)
	res, err := bad.init("cpu_bad", strOpt("crit", `"v" < 10`), strOpt("endpoint", "nope"))
	require.NoError(t, err)
	require.False(t, res.GetSuccess())
	assert.Contains(t, res.GetError(), "option .endpoint('nope'): unknown endpoint (configured: default, team)")
}

// checkDeliveryMetrics waits until /metrics counts the two deliveries,
// checks the other series against them, waits until the outbox is empty,
// and returns the page that counted the deliveries.
func checkDeliveryMetrics(t *testing.T, base string) string {
	t.Helper()
	var m string
	var delivered float64
	require.Eventually(t, func() bool {
		_, m = scrape(t, base, "/metrics")
		delivered = metricValue(m, `kapacitor_squadcast_deliveries_total{endpoint="team",result="delivered"}`)
		return delivered == 2
	}, 30*time.Second, 20*time.Millisecond, "deliveries_total moves: %v", delivered)
	for series, want := range map[string]float64{
		`kapacitor_squadcast_points_received_total`:                                                     4,
		`kapacitor_squadcast_alert_events_total{level="CRITICAL"}`:                                      1,
		`kapacitor_squadcast_alert_events_total{level="OK"}`:                                            1,
		`kapacitor_squadcast_alert_events_total{level="WARNING"}`:                                       0,
		`kapacitor_squadcast_deliveries_total{endpoint="default",result="delivered"}`:                   0,
		`kapacitor_squadcast_deliveries_total{endpoint="team",result="retried"}`:                        0,
		`kapacitor_squadcast_delivery_latency_seconds_count{endpoint="team"}`:                           2,
		`kapacitor_squadcast_delivery_latency_by_level_seconds_count{endpoint="team",level="CRITICAL"}`: 1,
		`kapacitor_squadcast_delivery_latency_by_level_seconds_count{endpoint="team",level="OK"}`:       1,
		`kapacitor_squadcast_request_duration_seconds_count{endpoint="team"}`:                           2,
		`kapacitor_squadcast_init_failures_total`:                                                       1,
		`kapacitor_squadcast_connections`:                                                               2,
	} {
		assert.Equal(t, want, metricValue(m, series), series)
	}
	require.Eventually(t, func() bool {
		_, m := scrape(t, base, "/metrics")
		return metricValue(m, `kapacitor_squadcast_outbox_pending_events`) == 0
	}, 30*time.Second, 20*time.Millisecond, "the outbox empties once delivered")
	return m
}

// checkMetricNames: the daemon's own series carry its prefix, the others
// are the Go runtime's and the process's standard ones, and the page shows
// no secret, webhook path or stand-in URL.
func checkMetricNames(t *testing.T, m, standInURL string) {
	t.Helper()
	for line := range strings.Lines(m) {
		if !strings.HasPrefix(line, "#") {
			assert.True(t, strings.HasPrefix(line, "kapacitor_squadcast_") || strings.HasPrefix(line, "go_") || strings.HasPrefix(line, "process_"),
				"metric name without a known prefix: %s", line)
		}
	}
	assert.Positive(t, metricValue(m, "go_memstats_heap_inuse_bytes"), "the Go collector is registered")
	assert.Positive(t, metricValue(m, "process_resident_memory_bytes"), "the process collector is registered")
	assert.NotContains(t, m, cfgSecret)
	assert.NotContains(t, m, "/v2/incidents")
	assert.NotContains(t, m, standInURL)
}

// checkPprof: Go's profiles are served, but not the command line (a --url
// there would show its key).
func checkPprof(t *testing.T, base string) {
	t.Helper()
	code, body := scrape(t, base, "/debug/pprof/")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "heap")
	code, body = scrape(t, base, "/debug/pprof/heap?debug=1")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "heap profile")
	code, _ = scrape(t, base, "/debug/pprof/cmdline")
	assert.Equal(t, http.StatusNotFound, code, "/debug/pprof/cmdline")
}

// checkNotReadyWithoutSocket: once the socket is gone, /readyz answers 503
// naming it, and /healthz still answers.
func checkNotReadyWithoutSocket(t *testing.T, sock, base string) {
	t.Helper()
	require.NoError(t, os.Remove(sock))
	code, body := scrape(t, base, "/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Contains(t, body, "socket")
	code, _ = scrape(t, base, "/healthz")
	assert.Equal(t, http.StatusOK, code)
}

// TestServeListenTaken: a --listen address in use fails the start.
func TestServeListenTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	dir, err := os.MkdirTemp("", "ksq-listen-")
	require.NoError(t, err)
	defer os.RemoveAll(dir)
	var logs stack.SyncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := runServe(ctx, []string{"--socket", filepath.Join(dir, "s.sock"), "--data-dir", dir, "--listen", ln.Addr().String()}, &logs)
	assert.Equal(t, 1, code)
	assert.Contains(t, logs.String(), "--listen")
	_, err = os.Lstat(filepath.Join(dir, "s.sock"))
	assert.True(t, os.IsNotExist(err), "no socket is created")
}
