package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/kapacitor/udf/agent"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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
	srv, count := leakServer(t)
	refused := refusedURL(t)

	t.Setenv("SQUADCAST_WEBHOOK_URL", srv.URL+"/retry/v1/incidents/kapacitor/"+keys["default"])
	d := startTestDaemon(t, "--log-level", "debug", "--retry-max-wait", "1s", "--shutdown-timeout", "500ms", "--listen", "127.0.0.1:0")
	metricsBase := metricsAddr(t, d.logs.String)
	answers := initLeakTasks(t, d, srv.URL, refused, keys)
	metricsText := awaitLeakPaths(t, d, count, metricsBase)
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

// leakServer stands in for Squadcast, each path prefix a way to fail:
// /retry/ answers 503 twice (its body echoing the URL), /perm/ answers 400
// (its body echoing the key and URL), /hang/ answers only when the request
// is cancelled or the test ends.
func leakServer(t *testing.T) (*httptest.Server, func(prefix string) int) {
	t.Helper()
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
	return srv, count
}

// refusedURL returns the URL of a local port nothing listens on.
func refusedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	refused := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())
	return refused
}

// initLeakTasks starts one task per way to fail (and three with bad
// .url()s, which fail Init), sends each good one a CRITICAL point, and
// returns everything the daemon said to "Kapacitor".
func initLeakTasks(t *testing.T, d *testDaemon, srvURL, refused string, keys map[string]string) (answers []string) {
	t.Helper()
	crit := strOpt("crit", `"v" > 90`)
	tasks := []struct {
		name string
		opts []*agent.Option
		ok   bool
	}{
		{"default", []*agent.Option{crit}, true},
		{"perm", []*agent.Option{crit, strOpt("url", srvURL+"/perm/v2/incidents/api/"+keys["perm"]), strOpt("format", "incident-webhook")}, true},
		{"hang", []*agent.Option{crit, strOpt("url", srvURL+"/hang/v1/incidents/kapacitor/"+keys["hang"])}, true},
		{"refused", []*agent.Option{crit, strOpt("url", refused+"/v1/incidents/kapacitor/"+keys["refused"])}, true},
		{"badurl", []*agent.Option{crit, strOpt("url", "ftp://api.squadcast.com/v2/incidents/api/"+keys["badurl"])}, false},
		{"dup", []*agent.Option{crit, strOpt("url", srvURL+"/x/"+keys["dup"]), strOpt("url", srvURL+"/y/"+keys["dup"])}, false},
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
	return answers
}

// awaitLeakPaths waits until each way to fail has been taken (retried then
// delivered, dead-lettered, refused, timed out) and returns the /metrics
// page then.
func awaitLeakPaths(t *testing.T, d *testDaemon, count func(prefix string) int, metricsBase string) string {
	t.Helper()
	logHas := func(s string) func() bool { return func() bool { return strings.Contains(d.logs.String(), s) } }
	require.Eventually(t, func() bool { return count("/retry") == 3 }, 60*time.Second, 20*time.Millisecond, "retried twice, then delivered")
	require.Eventually(t, logHas(`"msg":"squadcast event dead-lettered"`), 60*time.Second, 20*time.Millisecond)
	require.Eventually(t, logHas("connection refused"), 60*time.Second, 20*time.Millisecond)
	// The default per-attempt timeout is 10s.
	require.Eventually(t, logHas("attempt timed out after 10s"), 60*time.Second, 50*time.Millisecond)
	code, metricsText := scrape(t, metricsBase, "/metrics")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, metricsText, `kapacitor_squadcast_deliveries_total{endpoint="inline",result="dead_lettered"} 1`, "the metrics saw the paths too")
	return metricsText
}

// srv0 is the scheme and host a request was sent to.
func srv0(r *http.Request) string { return "http://" + r.Host }
