package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// composeCommand returns the command list of the kapacitor-squadcast
// service in examples/docker-compose.yml: its `- item` lines after
// `command:`, comments skipped.
func composeCommand(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", "docker-compose.yml"))
	require.NoError(t, err)
	var args []string
	in := false
	for line := range strings.Lines(string(b)) {
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "command:":
			in = true
		case !in || strings.HasPrefix(trimmed, "#"):
		case strings.HasPrefix(trimmed, "- "):
			args = append(args, strings.TrimPrefix(trimmed, "- "))
		default:
			in = false
		}
	}
	return args
}

// TestDockerComposeServesTheSnippetsSockets: the daemon's command in
// examples/docker-compose.yml passes serve's checks and serves every
// socket of examples/kapacitor.conf, which the compose file tells you to
// append to Kapacitor's config as it is (Kapacitor does not start when a
// configured socket never appears).
func TestDockerComposeServesTheSnippetsSockets(t *testing.T) {
	args := composeCommand(t)
	require.GreaterOrEqual(t, len(args), 2, "the compose file has the daemon's command")
	require.Equal(t, "serve", args[0])
	t.Setenv(webhookEnv, "https://api.squadcast.com/v1/incidents/kapacitor/"+cfgSecret)
	var errb bytes.Buffer
	cfg, err := Load(args[1:], &errb)
	require.NoError(t, err, errb.String())
	require.NoError(t, cfg.Validate())

	var conf struct {
		UDF struct {
			Functions map[string]struct {
				Socket string `toml:"socket"`
			} `toml:"functions"`
		} `toml:"udf"`
	}
	_, err = toml.DecodeFile(filepath.Join("..", "..", "examples", "kapacitor.conf"), &conf)
	require.NoError(t, err)
	served := map[string]string{"squadcast": cfg.Socket, "squadcast_batch": cfg.BatchSocket}
	require.NotEmpty(t, conf.UDF.Functions)
	for name, f := range conf.UDF.Functions {
		s, ok := served[name]
		if assert.True(t, ok, "kapacitor.conf's [udf.functions.%s] is no UDF of the daemon", name) {
			assert.Equal(t, f.Socket, s, "the compose daemon serves [udf.functions.%s]'s socket", name)
		}
	}
}
