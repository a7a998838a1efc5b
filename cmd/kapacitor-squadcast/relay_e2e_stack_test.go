package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/cmd/internal/stack"
)

// The relay's end-to-end tests (relay_e2e_test.go, relay_chaos_e2e_test.go)
// share these: a daemon serving the relay with a token and a webhook URL
// holding a key (neither may show in its logs or /metrics), the token in
// the places Kapacitor sends it from, and the comparison of bodies.

const (
	// relayE2EKey is the default endpoint's webhook key.
	relayE2EKey = "R3layWebhookKey0123456789"
	// relayE2EToken is the relay's token (--relay-token-file).
	relayE2EToken = "r3lay-T0ken-e2e-5ecret"
	// relayE2EPath is the path of the default endpoint's webhook URL.
	relayE2EPath = "/v1/incidents/kapacitor/" + relayE2EKey
	// relayExampleAddr is the relay address in the examples and
	// tickscripts/relay, replaced by the test's.
	relayExampleAddr = "127.0.0.1:9095"
	// relayExampleToken stands for the token in the examples.
	relayExampleToken = "REPLACE-WITH-THE-TOKEN"
)

// relayDaemon runs kapacitor-squadcast serve with the relay on a fixed
// address (kept across a restart), a token, /metrics, and its default
// endpoint at a stand-in's relayE2EPath.
type relayDaemon struct {
	cfg stack.DaemonConfig
	// relayAddr and metricsAddr are --relay-listen and --listen.
	relayAddr, metricsAddr string
	// all are the daemons started, the running one last.
	all []*stack.Daemon
}

// startRelayDaemon builds and starts the daemon in dir (short: it holds a
// unix socket), its default endpoint at standIn; args are more flags. It
// is stopped by t.Cleanup, which logs its output if the test failed.
func startRelayDaemon(t *testing.T, dir string, standIn *stack.StandIn, args ...string) *relayDaemon {
	t.Helper()
	bin, err := stack.BuildDaemon(t.Context(), dir)
	require.NoError(t, err)
	tokenFile := filepath.Join(dir, "relay.token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(relayE2EToken+"\n"), 0o600))
	dataDir := filepath.Join(dir, "data")
	require.NoError(t, os.MkdirAll(dataDir, 0o755))
	rd := &relayDaemon{}
	rd.relayAddr, err = stack.FreeAddr()
	require.NoError(t, err)
	rd.metricsAddr, err = stack.FreeAddr()
	require.NoError(t, err)
	rd.cfg = stack.DaemonConfig{
		Binary:  bin,
		Socket:  filepath.Join(dir, "squadcast.sock"),
		DataDir: dataDir,
		URL:     standIn.URL + relayE2EPath,
		Args: append([]string{"--relay-listen", rd.relayAddr, "--relay-token-file", tokenFile,
			"--listen", rd.metricsAddr}, args...),
	}
	rd.start(t)
	t.Cleanup(func() {
		d := rd.daemon()
		if d.Alive() {
			if err := d.Stop(); err != nil {
				t.Errorf("stopping the daemon: %v", err)
			}
		}
		if t.Failed() {
			for i, d := range rd.all {
				t.Logf("daemon %d's output (tail):\n%s", i+1, e2eTail(d.Output(), 40))
			}
		}
	})
	return rd
}

// start starts a daemon (again, on the same data dir and addresses) and
// waits until its relay serves.
func (rd *relayDaemon) start(t *testing.T) {
	t.Helper()
	d, err := stack.StartDaemon(rd.cfg)
	require.NoError(t, err)
	rd.all = append(rd.all, d)
	// After a SIGKILL the old socket file is still there: StartDaemon
	// returns at once, so wait for the relay's own line.
	require.Eventually(t, func() bool {
		return e2eLineWith(d.Output(), "serving the relay") != "" || !d.Alive()
	}, 30*time.Second, 20*time.Millisecond, "the daemon serves the relay")
	require.True(t, d.Alive(), "the daemon exited: %s", e2eTail(d.Output(), 20))
}

// daemon returns the running (last started) daemon.
func (rd *relayDaemon) daemon() *stack.Daemon { return rd.all[len(rd.all)-1] }

// url returns the relay's URL for the default endpoint.
func (rd *relayDaemon) url() string { return "http://" + rd.relayAddr + "/relay/default" }

// metrics returns the running daemon's /metrics.
func (rd *relayDaemon) metrics(t *testing.T) string {
	t.Helper()
	code, m := scrape(t, "http://"+rd.metricsAddr, "/metrics")
	require.Equal(t, 200, code)
	return m
}

// assertNoSecret checks that neither the token nor the webhook key shows
// in the output of any daemon started, nor in the running one's /metrics.
func (rd *relayDaemon) assertNoSecret(t *testing.T) {
	t.Helper()
	m := rd.metrics(t)
	for _, secret := range []string{relayE2EToken, relayE2EKey} {
		assert.NotContains(t, m, secret, "/metrics")
		for i, d := range rd.all {
			assert.Empty(t, e2eLineWith(d.Output(), secret), "daemon %d's output", i+1)
		}
	}
}

// relayExample returns a file of examples/ or tickscripts/ (a path from
// the module root) with the example relay address, if any, replaced by
// addr and the token placeholder by relayE2EToken.
func relayExample(t *testing.T, path, addr string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", path))
	require.NoError(t, err)
	s := string(b)
	s = strings.ReplaceAll(s, relayExampleAddr, addr)
	return strings.ReplaceAll(s, relayExampleToken, relayE2EToken)
}

// relayHTTPPostConf is examples/kapacitor-relay.conf for a relay at addr,
// with its token: the commented-out headers line that carries the token
// replaces the one without.
func relayHTTPPostConf(t *testing.T, addr string) string {
	t.Helper()
	var out []string
	withToken := false
	for line := range strings.Lines(relayExample(t, "examples/kapacitor-relay.conf", addr)) {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "# headers = ") && strings.Contains(trimmed, relayE2EToken):
			line = strings.Replace(line, "# headers", "headers", 1)
			withToken = true
		case strings.HasPrefix(trimmed, "headers = "):
			continue
		}
		out = append(out, line)
	}
	require.True(t, withToken, "examples/kapacitor-relay.conf shows the headers line with the token")
	return strings.Join(out, "") + "\n"
}

// kapacitorCLI returns the kapacitor CLI next to $KAPACITORD, or "".
func kapacitorCLI(kapacitord string) string {
	cli := filepath.Join(filepath.Dir(kapacitord), "kapacitor")
	if _, err := os.Stat(cli); err != nil {
		return ""
	}
	return cli
}

// defineTopicHandlerFile defines a topic handler from a YAML file as
// users do, `kapacitor define-topic-handler FILE`, with the CLI next to
// kapacitord; without it, it defines the same handler through the API
// (h) and says so.
func defineTopicHandlerFile(t *testing.T, k *stack.Kapacitord, kapacitord, yaml, topic string, h stack.TopicHandler) {
	t.Helper()
	cli := kapacitorCLI(kapacitord)
	if cli == "" {
		t.Logf("no kapacitor CLI beside %s: defining topic handler %s/%s through the API", kapacitord, topic, h.ID)
		require.NoError(t, k.DefineTopicHandler(topic, h))
		return
	}
	file := filepath.Join(k.Dir, h.ID+".yaml")
	require.NoError(t, os.WriteFile(file, []byte(yaml), 0o600))
	out, err := exec.Command(cli, "-url", k.URL, "define-topic-handler", file).CombinedOutput()
	require.NoError(t, err, "kapacitor define-topic-handler %s: %s", file, out)
}

// relayBodiesByID groups the bodies of requests by their alert's "id",
// each incident's in arrival order, bodies as they were received.
func relayBodiesByID(t *testing.T, reqs []stack.Request) map[string][]string {
	t.Helper()
	m := map[string][]string{}
	for i, r := range reqs {
		var a struct {
			ID *string `json:"id"`
		}
		require.NoError(t, json.NewDecoder(bytes.NewReader(r.Body)).Decode(&a), "request %d to %s: %q", i, r.Path, r.Body)
		require.NotNil(t, a.ID, "request %d to %s has no id: %q", i, r.Path, r.Body)
		m[*a.ID] = append(m[*a.ID], string(r.Body))
	}
	return m
}

// firstOccurrences keeps the first occurrence of each body (a delivery
// repeated after a crash is allowed: at least once).
func firstOccurrences(bodies []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, b := range bodies {
		if !seen[b] {
			seen[b] = true
			out = append(out, b)
		}
	}
	return out
}

// assertNoTokenSent checks that a request the daemon sent to Squadcast
// carries neither the relay's token nor an Authorization header: the
// relay takes the token, it does not pass it on.
func assertNoTokenSent(t *testing.T, req stack.Request, what string) {
	t.Helper()
	assert.Empty(t, req.Header.Values("Authorization"), "%s: Authorization", what)
	for name, values := range req.Header {
		for _, v := range values {
			assert.NotContains(t, v, relayE2EToken, "%s: header %s", what, name)
		}
	}
	assert.NotContains(t, string(req.Body), relayE2EToken, "%s: body", what)
}
