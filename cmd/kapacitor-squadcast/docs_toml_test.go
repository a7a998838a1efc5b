package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// docTOML returns the ```toml blocks of a Markdown file of the repository
// (indented ones, in lists, included), each without its fence's indentation.
func docTOML(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", file))
	require.NoError(t, err)
	var blocks []string
	cur, indent, in := "", "", false
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimLeft(line, " ")
		switch {
		case !in && strings.HasPrefix(trimmed, "```toml"):
			in, cur, indent = true, "", line[:len(line)-len(trimmed)]
		case in && strings.TrimSpace(line) == "```":
			blocks = append(blocks, cur)
			in = false
		case in:
			cur += strings.TrimPrefix(line, indent) + "\n"
		}
	}
	return blocks
}

// kapacitorConf is what the docs show of kapacitor.conf: UDF functions
// and [[httppost]] endpoints.
type kapacitorConf struct {
	UDF struct {
		Functions map[string]map[string]any `toml:"functions"`
	} `toml:"udf"`
	HTTPPost []map[string]any `toml:"httppost"`
}

func decodeKapacitorConf(t *testing.T, text, where string) kapacitorConf {
	t.Helper()
	var c kapacitorConf
	_, err := toml.Decode(text, &c)
	require.NoError(t, err, where)
	return c
}

// TestDocsTOML checks the TOML the docs show: the config file of
// docs/configuration.md passes check-config's checks (its url-file and
// group made to exist here), and every kapacitor.conf snippet is what
// examples/kapacitor.conf (UDF functions) or examples/kapacitor-relay.conf
// ([[httppost]]) holds.
func TestDocsTOML(t *testing.T) {
	examples := map[string]kapacitorConf{}
	for _, f := range []string{"kapacitor.conf", "kapacitor-relay.conf"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "examples", f))
		require.NoError(t, err)
		examples[f] = decodeKapacitorConf(t, string(b), f)
	}
	daemonConfigs, snippets := 0, 0
	for _, file := range []string{"README.md", "docs/configuration.md", "docs/install.md", "docs/relay.md", "docs/tickscript.md", "CONTRIBUTING.md"} {
		for i, block := range docTOML(t, file) {
			where := fmt.Sprintf("%s, TOML block %d", file, i+1)
			c := decodeKapacitorConf(t, block, where)
			if len(c.UDF.Functions) == 0 && len(c.HTTPPost) == 0 {
				checkDocDaemonConfig(t, block, where)
				daemonConfigs++
				continue
			}
			snippets++
			for name, fn := range c.UDF.Functions {
				assert.Equal(t, examples["kapacitor.conf"].UDF.Functions[name], fn, "%s: [udf.functions.%s] as in examples/kapacitor.conf", where, name)
			}
			if len(c.HTTPPost) > 0 {
				assert.Equal(t, examples["kapacitor-relay.conf"].HTTPPost, c.HTTPPost, "%s: [[httppost]] as in examples/kapacitor-relay.conf", where)
			}
		}
	}
	assert.Equal(t, 1, daemonConfigs, "configuration.md's config file")
	assert.GreaterOrEqual(t, snippets, 4, "the kapacitor.conf snippets of README, install, relay and tickscript")
}

// checkDocDaemonConfig loads a config file shown in the docs as serve
// --config would, its url-files written and its socket-group "kapacitor"
// made this process's group.
func checkDocDaemonConfig(t *testing.T, text, where string) {
	t.Helper()
	dir := t.TempDir()
	var raw struct {
		Endpoints []struct {
			URLFile string `toml:"url-file"`
		} `toml:"endpoint"`
	}
	_, err := toml.Decode(text, &raw)
	require.NoError(t, err, where)
	for i, e := range raw.Endpoints {
		if e.URLFile == "" {
			continue
		}
		local := filepath.Join(dir, fmt.Sprintf("url%d", i))
		require.NoError(t, os.WriteFile(local, []byte("https://api.squadcast.com/v1/incidents/kapacitor/"+cfgSecret+"\n"), 0o600))
		text = strings.Replace(text, fmt.Sprintf("%q", e.URLFile), fmt.Sprintf("%q", local), 1)
	}
	text = strings.Replace(text, `socket-group = "kapacitor"`, fmt.Sprintf(`socket-group = "%d"`, os.Getgid()), 1)
	cfgFile := filepath.Join(dir, "c.toml")
	require.NoError(t, os.WriteFile(cfgFile, []byte(text), 0o600))
	var errb bytes.Buffer
	cfg, err := Load([]string{"--config", cfgFile}, &errb)
	require.NoError(t, err, "%s: %s", where, errb.String())
	require.NoError(t, cfg.Validate(), where)
	assert.NotEmpty(t, cfg.Endpoints, where)
}
