package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/cmd/internal/stack"
)

// TestE2ENamedEndpoints runs the daemon with a config file holding two
// named endpoints, one per format (one URL inline, one in a url-file, each
// with its headers), and --listen; a real kapacitord runs
// tickscripts/cpu_squadcast_endpoints.tick, whose two @squadcast() nodes
// pick the endpoints by name. Each endpoint receives its events in its
// format with its headers; a task naming an unknown endpoint fails with a
// message naming .endpoint; /metrics counts the points, events and
// deliveries by endpoint name, and shows no secret.
func TestE2ENamedEndpoints(t *testing.T) {
	kapacitord := e2eKapacitord(t)
	e := startNamedEndpoints(t, kapacitord)
	e2eDefineRunning(t, e.kap, "cpu_squadcast_endpoints", e2eTick(t, "cpu_squadcast_endpoints.tick"))
	e.checkUnknownEndpoint(t)
	e.writePoints(t)
	e.checkOncall(t)
	e.checkTeam(t)
	e.checkMetrics(t)
}

const (
	namedOncallKey  = "ONCALLSECRETKEY1"
	namedTeamKey    = "TEAMSECRETKEY222"
	namedOncallPath = "/v1/incidents/kapacitor/" + namedOncallKey
	namedTeamPath   = "/v2/incidents/api/" + namedTeamKey
)

// namedEndpoints is TestE2ENamedEndpoints's stack: a stand-in, the daemon
// with two named endpoints and --listen, and kapacitord.
type namedEndpoints struct {
	standIn *stack.StandIn
	daemon  *stack.Daemon
	kap     *stack.Kapacitord
	// base is the daemon's --listen address, as http://host:port.
	base string
}

// startNamedEndpoints writes the config file (the endpoint "oncall", its
// URL inline, and "team", its URL in a url-file, in the incident-webhook
// format, each with its headers) and starts the stack, stopped by
// t.Cleanup.
func startNamedEndpoints(t *testing.T, kapacitord string) *namedEndpoints {
	t.Helper()
	dir, err := os.MkdirTemp("", "ksq-e2e-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	e := &namedEndpoints{standIn: stack.NewStandIn()}
	t.Cleanup(e.standIn.Close)

	teamFile := filepath.Join(dir, "team.url")
	require.NoError(t, os.WriteFile(teamFile, []byte(e.standIn.URL+namedTeamPath+"\n"), 0o600))
	cfg := filepath.Join(dir, "kapacitor-squadcast.toml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`
listen = "127.0.0.1:0"
[[endpoint]]
  name = "oncall"
  url = "%s%s"
  headers = { X-Team = "oncall" }
[[endpoint]]
  name = "team"
  url-file = %q
  format = "incident-webhook"
  headers = { X-Team = "team", Authorization = "Bearer team-token" }
`, e.standIn.URL, namedOncallPath, teamFile)), 0o600))

	bin, err := stack.BuildDaemon(t.Context(), dir)
	require.NoError(t, err)
	e.daemon, err = stack.StartDaemon(stack.DaemonConfig{
		Binary: bin, Socket: filepath.Join(dir, "squadcast.sock"), DataDir: filepath.Join(dir, "data"),
		Args: []string{"--config", cfg},
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		if e.kap != nil {
			e.kap.Stop()
		}
		if err := e.daemon.Stop(); err != nil {
			t.Errorf("stopping the daemon: %v", err)
		}
		if t.Failed() {
			t.Logf("daemon output (tail):\n%s", e2eTail(e.daemon.Output(), 60))
		}
	})
	e.base = metricsAddr(t, e.daemon.Output)

	kapDir := filepath.Join(dir, "kapacitord")
	require.NoError(t, os.MkdirAll(kapDir, 0o755))
	e.kap, err = stack.StartKapacitord(stack.KapacitordConfig{Binary: kapacitord, Dir: kapDir, UDFSocket: e.daemon.Socket})
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kapacitord log (tail):\n%s", e.kap.LogTail(60))
		}
	})
	return e
}

// checkUnknownEndpoint: an unknown endpoint fails its task, naming the option.
func (e *namedEndpoints) checkUnknownEndpoint(t *testing.T) {
	t.Helper()
	err := e.kap.DefineTask("unknown_endpoint", e2eTick(t, "cpu_squadcast_unknown_endpoint.tick"), e2eDBRPs, true)
	if err != nil {
		assert.Contains(t, err.Error(), ".endpoint('no-such-endpoint')", "define error")
	} else {
		bad, err := e.kap.WaitTaskError("unknown_endpoint", 30*time.Second)
		require.NoError(t, err)
		assert.False(t, bad.Executing)
		assert.Contains(t, bad.Error, "option .endpoint('no-such-endpoint'): unknown endpoint (configured: oncall, team)")
	}
}

// writePoints writes h1: OK, WARNING, CRITICAL, OK; h2: WARNING, OK, and
// waits for the seven events they make.
func (e *namedEndpoints) writePoints(t *testing.T) {
	t.Helper()
	start := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	var lines []string
	for i, v := range []float64{50, 20, 5, 60} {
		lines = append(lines, stack.Line("h1", v, 0, start.Add(time.Duration(i)*time.Second)))
	}
	for i, v := range []float64{20, 70} {
		lines = append(lines, stack.Line("h2", v, 0, start.Add(time.Duration(i)*time.Second)))
	}
	require.NoError(t, e.kap.Write("telegraf", "autogen", strings.Join(lines, "\n")))
	_, err := e.standIn.WaitFor(2+5, 60*time.Second)
	require.NoError(t, err, "2 events to oncall, 5 to team")
	time.Sleep(500 * time.Millisecond) // let late extras show up before counting
	require.Len(t, e.standIn.Requests(), 7)
}

// checkOncall: "oncall" received Kapacitor's alert JSON, CRITICAL only,
// with its headers alone.
func (e *namedEndpoints) checkOncall(t *testing.T) {
	t.Helper()
	oncall := e.standIn.RequestsTo(namedOncallPath)
	require.Len(t, oncall, 2)
	var levels []string
	for _, ev := range e2eDecode(t, oncall) {
		levels = append(levels, fmt.Sprint(ev["id"], " ", ev["level"]))
	}
	assert.Equal(t, []string{"cpu:host=h1 CRITICAL", "cpu:host=h1 OK"}, levels, "oncall: Kapacitor's alert JSON, CRITICAL only")
	for _, r := range oncall {
		assert.Equal(t, "oncall", r.Header.Get("X-Team"))
		assert.Empty(t, r.Header.Get("Authorization"), "another endpoint's headers")
	}
}

// checkTeam: "team" received the Incident Webhook format, WARNING and up,
// with its headers.
func (e *namedEndpoints) checkTeam(t *testing.T) {
	t.Helper()
	team := e.standIn.RequestsTo(namedTeamPath)
	require.Len(t, team, 5)
	byID := map[string][]string{}
	for _, ev := range e2eDecode(t, team) {
		id := fmt.Sprint(ev["event_id"])
		byID[id] = append(byID[id], fmt.Sprint(ev["status"]))
		assert.NotContains(t, ev, "level", "incident-webhook JSON, not Kapacitor's")
	}
	assert.Equal(t, map[string][]string{
		"team:host=h1": {"trigger", "trigger", "resolve"},
		"team:host=h2": {"trigger", "resolve"},
	}, byID, "team: the Incident Webhook format, WARNING and up")
	for _, r := range team {
		assert.Equal(t, "team", r.Header.Get("X-Team"))
		assert.Equal(t, "Bearer team-token", r.Header.Get("Authorization"))
	}
}

// checkMetrics: the metrics count by endpoint name, /readyz answers, and
// no secret shows in /metrics, the daemon's output or kapacitord's log.
func (e *namedEndpoints) checkMetrics(t *testing.T) {
	t.Helper()
	var m string
	require.Eventually(t, func() bool {
		_, m = scrape(t, e.base, "/metrics")
		return metricValue(m, `kapacitor_squadcast_deliveries_total{endpoint="oncall",result="delivered"}`) == 2 &&
			metricValue(m, `kapacitor_squadcast_deliveries_total{endpoint="team",result="delivered"}`) == 5 &&
			metricValue(m, `kapacitor_squadcast_connections`) >= 2
	}, 30*time.Second, 50*time.Millisecond, "deliveries by endpoint and connections:\n%s", e2eGrep(&m, "deliveries_total", "connections"))
	// Two nodes of the good task; Kapacitor 1.5.9 may also keep the
	// connection of the task that failed its Init open.
	assert.LessOrEqual(t, metricValue(m, `kapacitor_squadcast_connections`), 3.0)
	for series, want := range map[string]float64{
		`kapacitor_squadcast_points_received_total`:                                    2 * 6, // two nodes
		`kapacitor_squadcast_alert_events_total{level="CRITICAL"}`:                     2,
		`kapacitor_squadcast_alert_events_total{level="WARNING"}`:                      2,
		`kapacitor_squadcast_alert_events_total{level="OK"}`:                           3,
		`kapacitor_squadcast_alert_events_total{level="INFO"}`:                         0,
		`kapacitor_squadcast_deliveries_total{endpoint="team",result="dead_lettered"}`: 0,
		`kapacitor_squadcast_delivery_latency_seconds_count{endpoint="oncall"}`:        2,
		`kapacitor_squadcast_init_failures_total`:                                      1,
	} {
		assert.Equal(t, want, metricValue(m, series), series)
	}
	code, body := scrape(t, e.base, "/readyz")
	assert.Equal(t, http.StatusOK, code, body)
	assert.NotContains(t, m, e.standIn.URL, "/metrics shows no URL, not even its host")
	for _, secret := range []string{namedOncallKey, namedTeamKey, "team-token"} {
		assert.NotContains(t, m, secret, "/metrics")
		assert.Empty(t, e2eLineWith(e.daemon.Output(), secret), "daemon output")
	}
	assert.Empty(t, e2eLineWith(e.kap.LogTail(1<<20), namedOncallKey), "kapacitord's log")
}

// e2eGrep returns the lines of *text that contain one of subs (read when called).
func e2eGrep(text *string, subs ...string) fmt.Stringer {
	return grepper{text, subs}
}

type grepper struct {
	text *string
	subs []string
}

func (g grepper) String() string {
	var out []string
	for line := range strings.Lines(*g.text) {
		for _, s := range g.subs {
			if strings.Contains(line, s) && !strings.HasPrefix(line, "#") {
				out = append(out, strings.TrimSpace(line))
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
