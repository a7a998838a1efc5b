package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/cmd/internal/stack"
)

// TestE2ERelayDifferential: the three ways Kapacitor's .post() reaches
// Squadcast, each pointed at the relay (serve --relay-listen, with a
// token) and, in the same task, straight at a clean stand-in B:
//   - relay_endpoint: tickscripts/relay/httppost_endpoint.tick, whose
//     .post().endpoint('squadcast') is the [[httppost]] section of
//     examples/kapacitor-relay.conf (token in its headers);
//   - relay_chronograf: tickscripts/relay/chronograf.tick, Chronograf's
//     shape, .post('http://RELAY/relay/default') with the token in a
//     .header(), and its |influxDBOut() alert history to a real influxd
//     (left out, and said so in the log, when there is no influxd);
//   - relay_topic: tickscripts/relay/topic.tick publishing to a topic whose
//     handler of kind post (tickscripts/relay/topic_handler.yaml, defined
//     with `kapacitor define-topic-handler`) posts to the relay.
//
// On the same random walk of six hosts, what the daemon delivers to its
// default endpoint (stand-in A, format kapacitor) must equal, byte for byte,
// incident by incident and in order, what Kapacitor's .post() sent to B.
// Neither the token nor the webhook key may show in the daemon's logs or
// /metrics.
func TestE2ERelayDifferential(t *testing.T) {
	r := startRelayDiff(t)
	r.defineTasks(t)
	total := r.writePoints(t)
	r.settle(t, total)
	r.compare(t)
	r.checkAlertHistory(t)
	m := r.rd.metrics(t)
	assert.Equal(t, float64(len(r.a.Requests())), metricValue(m, `kapacitor_squadcast_relay_requests_total{result="accepted"}`),
		"every relayed request was accepted once, and delivered once")
	r.rd.assertNoSecret(t)
}

// relayDiffTasks are the differential's tasks; relayDiffDirect names
// their twin's path on stand-in B, by task.
var (
	relayDiffTasks  = []string{"relay_endpoint", "relay_chronograf", "relay_topic"}
	relayDiffDirect = map[string]string{"relay_endpoint": "/direct/endpoint", "relay_chronograf": "/direct/chronograf", "relay_topic": "/direct/topic"}
)

// relayDiff is TestE2ERelayDifferential's stack.
type relayDiff struct {
	// a is the daemon's endpoint; b gets Kapacitor's .post() directly.
	a, b       *stack.StandIn
	rd         *relayDaemon
	k          *stack.Kapacitord
	kapacitord string
	// influxURL is the InfluxDB of Chronograf's |influxDBOut(); "" for
	// none (the task is cut).
	influxURL string
}

// startRelayDiff starts the stand-ins, influxd, the daemon and kapacitord
// (with the example [[httppost]] "squadcast" at the relay and "direct" at
// B), all stopped by t.Cleanup.
func startRelayDiff(t *testing.T) *relayDiff {
	t.Helper()
	r := &relayDiff{kapacitord: e2eKapacitord(t)}
	dir, err := os.MkdirTemp("", "ksq-relay-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	r.a, r.b = stack.NewStandIn(), stack.NewStandIn()
	t.Cleanup(r.a.Close)
	t.Cleanup(r.b.Close)
	r.influxURL = relayDiffInfluxd(t, dir)

	r.rd = startRelayDaemon(t, dir, r.a)
	kapDir := filepath.Join(dir, "kapacitord")
	require.NoError(t, os.MkdirAll(kapDir, 0o755))
	r.k, err = stack.StartKapacitord(stack.KapacitordConfig{
		Binary:      r.kapacitord,
		Dir:         kapDir,
		InfluxDBURL: r.influxURL,
		HTTPPost:    map[string]string{"direct": r.b.URL + relayDiffDirect["relay_endpoint"]},
		ExtraConfig: relayHTTPPostConf(t, r.rd.relayAddr),
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kapacitord log (tail):\n%s", r.k.LogTail(60))
		}
		r.k.Stop()
	})
	return r
}

// relayDiffInfluxd starts the InfluxDB that Chronograf's task writes its
// alert history to, and returns its URL; without an influxd (and unless
// KAPACITOR_SQUADCAST_E2E=required) it returns "": the task then runs
// without its |influxDBOut().
func relayDiffInfluxd(t *testing.T, dir string) string {
	t.Helper()
	bin, err := stack.InfluxdBinary()
	if err != nil {
		if os.Getenv("KAPACITOR_SQUADCAST_E2E") == "required" {
			t.Fatalf("%v, but KAPACITOR_SQUADCAST_E2E=required: run `make test`, which installs it", err)
		}
		t.Logf("%v: Chronograf's task runs without its |influxDBOut() alert history", err)
		return ""
	}
	influx, err := stack.StartInfluxd(bin, filepath.Join(dir, "influxd"))
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("influxd log (tail):\n%s", influx.LogTail(30))
		}
		influx.Stop()
	})
	return influx.URL
}

// defineTasks defines the three tasks from tickscripts/relay, each with a
// twin handler straight to B, and the topic's two handlers. Each task's
// alert ids have their own prefix, so that incidents do not mix.
func (r *relayDiff) defineTasks(t *testing.T) {
	t.Helper()
	addr := r.rd.relayAddr
	endpoint := relayExample(t, "tickscripts/relay/httppost_endpoint.tick", addr)
	endpoint = mustReplace(t, endpoint, "    |alert()\n", "    |alert()\n        .id('endpoint:{{.Group}}')\n")
	endpoint = mustReplace(t, endpoint, ".endpoint('squadcast')\n", ".endpoint('squadcast')\n        .post()\n            .endpoint('direct')\n")
	e2eDefineRunning(t, r.k, "relay_endpoint", endpoint)

	chronograf := relayExample(t, "tickscripts/relay/chronograf.tick", addr)
	auth := ".header('Authorization', 'Bearer " + relayE2EToken + "')\n"
	if r.influxURL == "" { // cut the alert history: from its "trigger" to the next
		start := strings.Index(chronograf, "\ntrigger\n    |eval(")
		end := strings.Index(chronograf, "\ntrigger\n    |httpOut(")
		require.True(t, start >= 0 && end > start, "chronograf.tick has its |influxDBOut() before its |httpOut()")
		chronograf = chronograf[:start] + chronograf[end:]
	}
	chronograf = mustReplace(t, chronograf, auth, auth+"        .header('X-Test', 'v')\n        .post('"+r.b.URL+relayDiffDirect["relay_chronograf"]+"')\n")
	e2eDefineRunning(t, r.k, "relay_chronograf", chronograf)

	topic := relayExample(t, "tickscripts/relay/topic.tick", addr)
	topic = mustReplace(t, topic, "    |alert()\n", "    |alert()\n        .id('topic:{{.Group}}')\n")
	e2eDefineRunning(t, r.k, "relay_topic", topic)
	defineTopicHandlerFile(t, r.k, r.kapacitord, relayExample(t, "tickscripts/relay/topic_handler.yaml", addr), "squadcast",
		stack.TopicHandler{ID: "squadcast-relay", Kind: "post", Options: map[string]any{
			"url": r.rd.url(), "headers": map[string]string{"Authorization": "Bearer " + relayE2EToken}}})
	require.NoError(t, r.k.DefineTopicHandler("squadcast", stack.TopicHandler{ID: "direct", Kind: "post",
		Options: map[string]any{"url": r.b.URL + relayDiffDirect["relay_topic"]}}))
}

// mustReplace replaces the one occurrence of old in s.
func mustReplace(t *testing.T, s, old, repl string) string {
	t.Helper()
	require.Equal(t, 1, strings.Count(s, old), "%q occurs once in:\n%s", old, s)
	return strings.Replace(s, old, repl, 1)
}

// writePoints writes a random walk of six hosts and returns the number of points.
func (r *relayDiff) writePoints(t *testing.T) int64 {
	t.Helper()
	hosts := []string{"web-1", "web-2", "db-1", "db-2", "cache-1", "cache-2"}
	lines := stack.RandomWalk(1414, hosts, 80, time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC), 10*time.Second)
	for i, body := range stack.Batches(lines, 200) {
		require.NoError(t, r.k.Write("telegraf", "autogen", body), "writing batch %d", i)
	}
	return int64(len(lines))
}

// settle waits until every task's alert node has taken every point, B has
// every event the alert nodes triggered, A as many, and nothing has
// arrived for a second.
func (r *relayDiff) settle(t *testing.T, total int64) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	last, lastChange := [2]int{-1, -1}, time.Now()
	for {
		var triggered int64
		var status []string
		for _, id := range relayDiffTasks {
			task, err := r.k.Task(id)
			require.NoError(t, err)
			require.Empty(t, task.Error, "task %s", id)
			triggered += e2eStat(task, "alert", "alerts_triggered")
			if c := e2eStat(task, "alert", "collected"); c != total {
				status = append(status, fmt.Sprintf("%s collected %d of %d", id, c, total))
			}
		}
		c := [2]int{r.a.Count(), r.b.Count()}
		if c != last {
			last, lastChange = c, time.Now()
		}
		if len(status) == 0 && int64(c[1]) == triggered && c[0] == c[1] && time.Since(lastChange) >= time.Second {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not settled within 90s: %s; alert nodes triggered %d, B has %d requests, A %d",
				strings.Join(status, ", "), triggered, c[1], c[0])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// compare checks that A's bodies equal B's byte for byte, per incident and
// in order, and that each task opened and resolved several incidents.
func (r *relayDiff) compare(t *testing.T) {
	t.Helper()
	for i, req := range r.a.Requests() {
		require.Equal(t, relayE2EPath, req.Path, "A's request %d", i)
		require.Equal(t, 200, req.Status, "A's request %d", i)
		assertNoTokenSent(t, req, fmt.Sprintf("A's request %d", i))
	}
	for i, req := range r.b.Requests() {
		require.Equal(t, "application/json", req.Header.Get("Content-Type"), "B's request %d", i)
	}
	want, got := relayBodiesByID(t, r.b.Requests()), relayBodiesByID(t, r.a.Requests())
	require.Equal(t, sortedIDs(want), sortedIDs(got), "incidents")
	for id, w := range want {
		g := got[id]
		assert.Equal(t, len(w), len(g), "incident %s: events", id)
		for i := range min(len(w), len(g)) {
			if !assert.Equal(t, w[i], g[i], "incident %s, event %d of %d: the relay's body differs from .post()'s", id, i, len(w)) {
				break
			}
		}
		for _, b := range w {
			require.True(t, strings.HasSuffix(b, "}\n"), "incident %s: Kapacitor's body ends with a newline: %q", id, b)
		}
	}
	for _, task := range relayDiffTasks {
		reqs := r.b.RequestsTo(relayDiffDirect[task])
		byID := relayBodiesByID(t, reqs)
		resolved := 0
		for _, bodies := range byID {
			// An event of level OK is only sent on a recovery.
			if strings.Contains(strings.Join(bodies, ""), `"level":"OK"`) {
				resolved++
			}
		}
		t.Logf("%s: %d events over %d incidents, %d of them resolved at least once", task, len(reqs), len(byID), resolved)
		assert.GreaterOrEqual(t, resolved, 2, "%s: the points trigger and resolve several incidents", task)
	}
}

func sortedIDs(m map[string][]string) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// checkAlertHistory checks that Chronograf's task wrote its alert history,
// one point per event, to InfluxDB: disabling the task flushes its
// |influxDBOut().
func (r *relayDiff) checkAlertHistory(t *testing.T) {
	t.Helper()
	if r.influxURL == "" {
		return
	}
	want := len(r.b.RequestsTo(relayDiffDirect["relay_chronograf"]))
	require.NoError(t, r.k.DisableTask("relay_chronograf"))
	q := url.Values{"db": {"chronograf"}, "q": {`SELECT count("value") FROM "alerts"`}}
	var got int
	require.Eventually(t, func() bool {
		resp, err := http.Get(r.influxURL + "/query?" + q.Encode())
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var res struct {
			Results []struct {
				Series []struct{ Values [][]any } // [[time, count]]
			}
		}
		if json.NewDecoder(resp.Body).Decode(&res) != nil || len(res.Results) == 0 || len(res.Results[0].Series) == 0 {
			return false
		}
		if v := res.Results[0].Series[0].Values; len(v) == 1 && len(v[0]) == 2 {
			n, _ := v[0][1].(float64)
			got = int(n)
		}
		return got == want
	}, 20*time.Second, 100*time.Millisecond, "Chronograf's alert history in chronograf.autogen.alerts: want %d points", want)
	t.Logf("relay_chronograf: %d points of alert history in InfluxDB", got)
}
