package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast"
	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// TestCoalesceConfig: an [[endpoint]]'s coalesce key and --coalesce (the
// default endpoint's) set squadcast.Endpoint.Coalesce; off by default;
// --coalesce needs a default endpoint; check-config shows it.
func TestCoalesceConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.toml")
	require.NoError(t, os.WriteFile(file, []byte(`
socket = "/s"
data-dir = "/d"
[[endpoint]]
  name = "default"
  url = "https://file.example.com/v1/`+cfgSecret+`"
[[endpoint]]
  name = "team"
  url = "https://team.example.com/v1/`+cfgSecret+`"
  coalesce = true
`), 0o600))
	coalesce := func(c Config) map[string]bool {
		got := map[string]bool{}
		for _, e := range c.senderEndpoints() {
			got[e.Name] = e.Coalesce
		}
		return got
	}
	for _, tc := range []struct {
		name string
		args []string
		want map[string]bool
	}{
		{"file key", []string{"--config", file}, map[string]bool{"default": false, "team": true}},
		{"flag", []string{"--config", file, "--coalesce"}, map[string]bool{"default": true, "team": true}},
		{"flag alone", []string{"--socket", "/s", "--url", "https://f.example.com/v1/K", "--coalesce"}, map[string]bool{"default": true}},
		{"off by default", []string{"--socket", "/s", "--url", "https://f.example.com/v1/K"}, map[string]bool{"default": false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(webhookEnv, "")
			var errb bytes.Buffer
			c, err := Load(tc.args, &errb)
			require.NoError(t, err, errb.String())
			assert.Equal(t, tc.want, coalesce(c))
		})
	}

	t.Run("needs a default endpoint", func(t *testing.T) {
		t.Setenv(webhookEnv, "")
		var errb bytes.Buffer
		c, err := Load([]string{"--socket", "/s", "--data-dir", "/d", "--coalesce"}, &errb)
		require.NoError(t, err, errb.String())
		require.EqualError(t, c.Validate(), "--coalesce coalesces the default endpoint's events: it needs --url or "+webhookEnv)
	})
	t.Run("check-config", func(t *testing.T) {
		t.Setenv(webhookEnv, "")
		var out, errb bytes.Buffer
		require.Equal(t, 0, run([]string{"check-config", "--config", file}, &out, &errb), errb.String())
		assert.Contains(t, out.String(), `endpoint "team": https://team.example.com/[redacted], format kapacitor, rate limit none, 0 header(s), coalescing`)
		assert.NotContains(t, out.String(), `endpoint "default": https://file.example.com/[redacted], format kapacitor, rate limit none, 0 header(s), coalescing`)
	})
	t.Run("example", func(t *testing.T) {
		t.Setenv(webhookEnv, "")
		var errb bytes.Buffer
		c, err := Load([]string{"--config", filepath.Join("..", "..", "examples", "kapacitor-squadcast.toml")}, &errb)
		require.NoError(t, err, errb.String())
		assert.True(t, coalesce(c)["database-team"])
	})
}

// TestCoalesceDocumented: serve --help, the docs and the example show the
// flag, the key and the metric.
func TestCoalesceDocumented(t *testing.T) {
	code, _, errOut := runCLI("serve", "--help")
	assert.Equal(t, 0, code)
	assert.Contains(t, errOut, "\n  -coalesce\n")
	assert.Contains(t, errOut, "(default off: every event is delivered)")
	read := func(path string) string {
		b, err := os.ReadFile(filepath.Join("..", "..", path))
		require.NoError(t, err)
		return string(b)
	}
	conf := read("docs/configuration.md")
	assert.Contains(t, conf, "| `--coalesce` | off |")
	assert.Contains(t, conf, "| `coalesce` | `false` |")
	ops := read("docs/operations.md")
	assert.Contains(t, ops, "### Coalescing")
	assert.Contains(t, ops, "| `kapacitor_squadcast_events_coalesced_total` | counter | `endpoint` |")
	assert.True(t, strings.Contains(read("examples/kapacitor-squadcast.toml"), "#   coalesce "))
}

// TestCoalescedMetric: on a coalescing endpoint whose one worker is held,
// a trigger and its resolve that wait behind it are dropped, and counted
// in events_coalesced_total by endpoint (present at zero from the start).
func TestCoalescedMetric(t *testing.T) {
	standIn, release := holdingStandIn(t)
	m := newMetrics([]string{"default", "team"})
	s, err := squadcast.New(squadcast.Config{
		Endpoints: []squadcast.Endpoint{{Name: "default", URL: standIn + "/v2/incidents/api/coalesce-key",
			Format: squadcast.FormatIncidentWebhook, Coalesce: true}},
		DataDir: t.TempDir(), Workers: 1, Observer: m,
	})
	require.NoError(t, err)
	defer func() {
		release()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		assert.NoError(t, s.Close(ctx))
	}()
	m.watch(func() int { return 0 }, s)
	base := httptest.NewServer(m.handler(func() error { return nil }))
	defer base.Close()

	p, err := s.Open(udf.Destination{})
	require.NoError(t, err)
	publish := func(id string, l, prev udf.Level) {
		t.Helper()
		require.NoError(t, p.Publish(udf.Event{ID: id, Message: "m", Level: l, PreviousLevel: prev, Time: time.Now()}))
		require.NoError(t, p.Flush(nil))
	}
	publish("held", udf.Critical, udf.OK) // first in line: the one worker is held by it
	publish("storm", udf.Critical, udf.OK)
	publish("storm", udf.OK, udf.Critical)
	require.Eventually(t, func() bool { return s.Stats().Coalesced == 2 }, 10*time.Second, time.Millisecond)
	_, page := scrape(t, base.URL, "/metrics")
	assert.Contains(t, page, `kapacitor_squadcast_events_coalesced_total{endpoint="default"} 2`+"\n")
	assert.Contains(t, page, `kapacitor_squadcast_events_coalesced_total{endpoint="team"} 0`+"\n")
	assert.Contains(t, page, `kapacitor_squadcast_events_coalesced_total{endpoint="inline"} 0`+"\n")
}
