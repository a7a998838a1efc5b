package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConfigPrintsNoSecret: a loaded Config, printed with any of fmt's
// verbs or as JSON, shows no webhook key, no Kapacitor password and no
// header value; only where it sends requests does it give them up.
func TestConfigPrintsNoSecret(t *testing.T) {
	dir := t.TempDir()
	const (
		fileKey   = "FiLeWeBhOoKkEy0123"
		teamKey   = "TeAmWeBhOoKkEy4567"
		envKey    = "EnVwEbHoOkKeY89012"
		flagKey   = "FlAgWeBhOoKkEy3456"
		kapSecret = "KaPaCiToRpAsSwOrD"
		token     = "BeArErToKeN7890"
	)
	teamFile := filepath.Join(dir, "team.url")
	require.NoError(t, os.WriteFile(teamFile, []byte("https://api.squadcast.com/v2/incidents/api/"+teamKey+"\n"), 0o600))
	cfg := filepath.Join(dir, "c.toml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`
socket = "/run/s.sock"
data-dir = %q
kapacitor-url = "http://admin:%s@localhost:9092"
[[endpoint]]
  name = "oncall"
  url = "https://api.squadcast.com/v1/incidents/kapacitor/%s?token=%s"
  headers = { Authorization = "Bearer %s" }
[[endpoint]]
  name = "team"
  url-file = %q
  format = "incident-webhook"
`, dir, kapSecret, fileKey, fileKey, token, teamFile)), 0o600))

	for _, tc := range []struct {
		name string
		args []string
	}{
		{"default endpoint from the environment", []string{"--config", cfg}},
		{"default endpoint from --url", []string{"--config", cfg, "--url", "https://api.squadcast.com/v1/incidents/kapacitor/" + flagKey}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(webhookEnv, "https://api.squadcast.com/v1/incidents/kapacitor/"+envKey)
			var errb bytes.Buffer
			c, err := Load(tc.args, &errb)
			require.NoError(t, err, errb.String())
			require.NoError(t, c.Validate())
			require.Equal(t, []string{"default", "oncall", "team"}, c.endpointNames())

			var outputs []string
			for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
				for _, v := range []any{c, &c, c.Endpoints, c.Endpoints[1], &c.Endpoints[1], c.DaemonConfig, c.KapacitorURL} {
					outputs = append(outputs, fmt.Sprintf(verb, v))
				}
			}
			for _, v := range []any{c, c.Endpoints, c.Endpoints[1], c.DaemonConfig} {
				b, err := json.Marshal(v)
				require.NoError(t, err)
				outputs = append(outputs, string(b))
			}
			outputs = append(outputs, c.summary()...)
			for _, out := range outputs {
				for _, secret := range []string{fileKey, teamKey, envKey, flagKey, kapSecret, token, "/incidents/"} {
					require.NotContains(t, out, secret)
				}
			}
			assert.Contains(t, fmt.Sprintf("%+v", c), "https://api.squadcast.com/[redacted]")
			assert.Contains(t, fmt.Sprintf("%v", c.KapacitorURL), "http://localhost:9092/[redacted]")

			// Where requests go, the URLs are whole.
			eps := c.senderEndpoints()
			assert.Contains(t, eps[1].URL, fileKey)
			assert.Contains(t, eps[2].URL, teamKey)
			assert.Contains(t, c.KapacitorURL.Reveal(), kapSecret)
		})
	}
}
