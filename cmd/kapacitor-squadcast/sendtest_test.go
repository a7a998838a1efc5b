package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sendTestServer records the requests of send-test and answers status.
type sendTestServer struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []map[string]any
	paths  []string
	teams  []string
	status int
}

func newSendTestServer(t *testing.T, status int) *sendTestServer {
	s := &sendTestServer{status: status}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var body map[string]any
		if err := json.Unmarshal(b, &body); err != nil {
			t.Errorf("body is not JSON: %q", b)
		}
		s.mu.Lock()
		s.bodies = append(s.bodies, body)
		s.paths = append(s.paths, r.URL.Path)
		s.teams = append(s.teams, r.Header.Get("X-Team"))
		status := s.status
		s.mu.Unlock()
		w.WriteHeader(status)
		if status >= 300 {
			_, _ = w.Write([]byte(`{"message":"invalid api key"}`))
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func runSendTestCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := runSendTest(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestSendTest: a trigger then its resolve, in either format, to --url or
// a configured endpoint (with its headers); a refusal exits 1 with the
// HTTP status; the key is never printed. The subtests run in order on one
// recording server.
func TestSendTest(t *testing.T) {
	t.Setenv(webhookEnv, "")
	srv := newSendTestServer(t, http.StatusAccepted)
	dir := t.TempDir()
	cfg := writeSendTestConfig(t, dir, srv.URL)

	t.Run("kapacitor format to --url", func(t *testing.T) { sendTestToURL(t, srv) })
	t.Run("incident-webhook format to a named endpoint", func(t *testing.T) { sendTestToEndpoint(t, srv, cfg) })
	t.Run("--format overrides the endpoint's", func(t *testing.T) { sendTestFormatOverride(t, srv, cfg) })
	t.Run("environment as the default endpoint", func(t *testing.T) { sendTestFromEnvironment(t, srv) })

	failing := newSendTestServer(t, http.StatusUnauthorized)
	t.Run("refused: exit 1 with the status, no resolve", func(t *testing.T) { sendTestRefused(t, failing) })
	t.Run("unreachable", sendTestUnreachable)
	sendTestUsageErrors(t, srv.URL, cfg, dir)
	assert.False(t, strings.Contains(srv.URL, cfgSecret))
}

// writeSendTestConfig writes dir/c.toml with the endpoints "default" and
// "team" (incident-webhook format, an X-Team header) at srvURL.
func writeSendTestConfig(t *testing.T, dir, srvURL string) string {
	t.Helper()
	cfg := filepath.Join(dir, "c.toml")
	require.NoError(t, os.WriteFile(cfg, []byte(`
[[endpoint]]
  name = "default"
  url = "`+srvURL+`/v1/incidents/kapacitor/`+cfgSecret+`"
[[endpoint]]
  name = "team"
  url = "`+srvURL+`/v2/incidents/api/`+cfgSecret+`"
  format = "incident-webhook"
  headers = { X-Team = "infra" }
`), 0o600))
	return cfg
}

func sendTestToURL(t *testing.T, srv *sendTestServer) {
	t.Helper()
	srv.mu.Lock()
	srv.bodies, srv.paths, srv.teams = nil, nil, nil
	srv.mu.Unlock()
	code, out, errs := runSendTestCmd("--url", srv.URL+"/v1/incidents/kapacitor/"+cfgSecret, "--resolve-after", "0s")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "accepted (http status 202)")
	assert.NotContains(t, out+errs, cfgSecret)
	srv.mu.Lock()
	defer srv.mu.Unlock()
	require.Len(t, srv.bodies, 2)
	assert.Equal(t, "CRITICAL", srv.bodies[0]["level"])
	assert.Equal(t, "OK", srv.bodies[1]["level"])
	assert.Equal(t, "CRITICAL", srv.bodies[1]["previousLevel"])
	assert.Equal(t, srv.bodies[0]["id"], srv.bodies[1]["id"], "the resolve has the trigger's id")
	assert.Contains(t, srv.bodies[0]["id"], "kapacitor-squadcast-test")
}

func sendTestToEndpoint(t *testing.T, srv *sendTestServer, cfg string) {
	t.Helper()
	srv.mu.Lock()
	srv.bodies, srv.paths, srv.teams = nil, nil, nil
	srv.mu.Unlock()
	code, out, errs := runSendTestCmd("--config", cfg, "--endpoint", "team", "--resolve-after", "0s")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, `endpoint "team"`)
	assert.NotContains(t, out+errs, cfgSecret)
	srv.mu.Lock()
	defer srv.mu.Unlock()
	require.Len(t, srv.bodies, 2)
	assert.Equal(t, "trigger", srv.bodies[0]["status"])
	assert.Equal(t, "resolve", srv.bodies[1]["status"])
	assert.Equal(t, srv.bodies[0]["event_id"], srv.bodies[1]["event_id"])
	assert.Equal(t, []string{"infra", "infra"}, srv.teams, "the endpoint's headers")
	assert.Equal(t, "/v2/incidents/api/"+cfgSecret, srv.paths[0])
}

func sendTestFormatOverride(t *testing.T, srv *sendTestServer, cfg string) {
	t.Helper()
	srv.mu.Lock()
	srv.bodies = nil
	srv.mu.Unlock()
	code, _, errs := runSendTestCmd("--config", cfg, "--format", "incident-webhook", "--resolve-after", "0s")
	require.Equal(t, 0, code, errs)
	srv.mu.Lock()
	defer srv.mu.Unlock()
	require.Len(t, srv.bodies, 2)
	assert.Equal(t, "trigger", srv.bodies[0]["status"], "the default endpoint, in incident-webhook format")
}

func sendTestFromEnvironment(t *testing.T, srv *sendTestServer) {
	t.Helper()
	t.Setenv(webhookEnv, srv.URL+"/env/"+cfgSecret)
	srv.mu.Lock()
	srv.paths = nil
	srv.mu.Unlock()
	code, _, errs := runSendTestCmd("--resolve-after", "0s")
	require.Equal(t, 0, code, errs)
	srv.mu.Lock()
	defer srv.mu.Unlock()
	assert.Equal(t, []string{"/env/" + cfgSecret, "/env/" + cfgSecret}, srv.paths)
}

func sendTestRefused(t *testing.T, failing *sendTestServer) {
	t.Helper()
	code, out, errs := runSendTestCmd("--url", failing.URL+"/v1/incidents/kapacitor/"+cfgSecret, "--resolve-after", "0s")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "the trigger failed: http status 401 Unauthorized")
	assert.Contains(t, errs, "invalid api key", "the start of Squadcast's answer")
	assert.NotContains(t, out+errs, cfgSecret)
	failing.mu.Lock()
	defer failing.mu.Unlock()
	assert.Len(t, failing.bodies, 1, "no resolve after a failed trigger")
}

func sendTestUnreachable(t *testing.T) {
	code, out, errs := runSendTestCmd("--url", "http://127.0.0.1:1/v1/incidents/kapacitor/"+cfgSecret, "--resolve-after", "0s")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "the trigger failed")
	assert.NotContains(t, out+errs, cfgSecret)
}

// sendTestUsageErrors: wrong command lines exit with their code and
// message, without the key.
func sendTestUsageErrors(t *testing.T, srvURL, cfg, dir string) {
	t.Helper()
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"both --url and --endpoint", []string{"--url", srvURL + "/x/" + cfgSecret, "--endpoint", "team"}, 2, "give --endpoint or --url, not both"},
		{"unknown endpoint", []string{"--config", cfg, "--endpoint", "nope"}, 1, `--endpoint: unknown endpoint "nope" (configured: default, team)`},
		{"nothing configured", nil, 1, "no endpoint is configured"},
		{"bad url", []string{"--url", "ftp://h/" + cfgSecret}, 1, `--url: the URL has scheme "ftp"`},
		{"bad format", []string{"--url", srvURL + "/x/" + cfgSecret, "--format", "xml"}, 1, `--format: "xml" is unknown`},
		{"bad config", []string{"--config", filepath.Join(dir, "missing.toml")}, 1, "read config file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runSendTestCmd(tc.args...)
			assert.Equal(t, tc.code, code)
			assert.Contains(t, errs, tc.want)
			assert.NotContains(t, out+errs, cfgSecret)
		})
	}
}
