package main

import (
	"bytes"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// plistDict is a launchd property list's top dict: keys, and the values
// that follow them (strings, arrays of strings, dicts of strings).
type plistDict struct {
	Items []plistItem `xml:",any"`
}

type plistItem struct {
	XMLName xml.Name
	Text    string      `xml:",chardata"`
	Strings []string    `xml:"string"`
	Items   []plistItem `xml:",any"`
}

// TestLaunchdPlist: examples/kapacitor-squadcast.plist is a well-formed
// property list whose program is `kapacitor-squadcast serve` with flags
// serve takes and that pass its checks, and whose environment gives the
// default endpoint's URL.
func TestLaunchdPlist(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", "kapacitor-squadcast.plist"))
	require.NoError(t, err)
	var doc struct {
		Dict plistDict `xml:"dict"`
	}
	require.NoError(t, xml.Unmarshal(b, &doc))
	values := map[string]plistItem{}
	items := doc.Dict.Items
	for i := 0; i+1 < len(items); i += 2 {
		require.Equal(t, "key", items[i].XMLName.Local, "keys and values alternate")
		values[items[i].Text] = items[i+1]
	}
	assert.Equal(t, "kapacitor-squadcast", values["Label"].Text)
	args := values["ProgramArguments"].Strings
	require.GreaterOrEqual(t, len(args), 2)
	assert.Equal(t, "kapacitor-squadcast", filepath.Base(args[0]))
	assert.Equal(t, "serve", args[1])

	env := values["EnvironmentVariables"] // a dict: its keys, and its string values
	require.Len(t, env.Items, 1)
	require.Len(t, env.Strings, 1)
	assert.Equal(t, webhookEnv, env.Items[0].Text)
	t.Setenv(webhookEnv, strings.TrimSpace(env.Strings[0]))
	var errb bytes.Buffer
	cfg, err := Load(args[2:], &errb)
	require.NoError(t, err, errb.String())
	require.NoError(t, cfg.Validate())
	assert.NotEmpty(t, cfg.Socket)
	assert.NotEmpty(t, cfg.DataDir)
	assert.Equal(t, "console", cfg.LogFormat)
	assert.Equal(t, "true", values["RunAtLoad"].XMLName.Local)
}
