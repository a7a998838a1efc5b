package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// docCommand is a kapacitor-squadcast command line shown in a Markdown
// file: the command (with its subcommand for outbox and state) and the
// rest of the line, up to the end of a code span.
type docCommand struct {
	where string
	cmd   []string
	rest  string
}

var (
	docCommandLine = regexp.MustCompile(`kapacitor-squadcast (serve|check-config|send-test|outbox|state|doctor|version)\b([^` + "`" + `\n]*)`)
	docFlag        = regexp.MustCompile(`(?:^|[\s\[(])--([a-z][a-z0-9-]*)`)
)

// docCommands returns the command lines of README.md, CONTRIBUTING.md and
// docs/*.md, a line ending in a backslash joined with the next.
func docCommands(t *testing.T) []docCommand {
	t.Helper()
	root := filepath.Join("..", "..")
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	require.NoError(t, err)
	files = append([]string{filepath.Join(root, "README.md"), filepath.Join(root, "CONTRIBUTING.md")}, files...)
	var out []docCommand
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		text := regexp.MustCompile(`\\\n\s*`).ReplaceAllString(string(b), "")
		for _, m := range docCommandLine.FindAllStringSubmatch(text, -1) {
			c := docCommand{where: filepath.Base(f) + ": " + strings.TrimSpace(m[0]), cmd: []string{m[1]}, rest: m[2]}
			if m[1] == "outbox" || m[1] == "state" {
				sub, rest, _ := strings.Cut(strings.TrimSpace(m[2]), " ")
				if sub == "" || strings.HasPrefix(sub, "--") {
					continue // the command named in prose, e.g. "the state commands"
				}
				c.rest = rest
				for _, s := range strings.Split(sub, "|") {
					c.cmd = []string{m[1], s}
					out = append(out, c)
				}
				continue
			}
			out = append(out, c)
		}
	}
	return out
}

// TestDocCommandLines: every flag a command line of the docs gives is one
// its command takes (as its --help lists them), every subcommand exists,
// and every whole `serve` command line (no placeholder) passes serve's
// checks.
func TestDocCommandLines(t *testing.T) {
	cmds := docCommands(t)
	require.GreaterOrEqual(t, len(cmds), 20, "the docs' command lines are found")
	flagsOf := map[string][]string{}
	served := 0
	for _, c := range cmds {
		key := strings.Join(c.cmd, " ")
		if _, ok := flagsOf[key]; !ok {
			var out bytes.Buffer
			code := run(append(slices.Clone(c.cmd), "--help"), &out, &out)
			if !assert.Equal(t, 0, code, "%s: `%s --help` fails: is %q a command?\n%s", c.where, key, key, out.String()) {
				continue
			}
			flagsOf[key] = flagNames(helpFlag, out.String())
		}
		for _, f := range docFlag.FindAllStringSubmatch(c.rest, -1) {
			assert.Contains(t, flagsOf[key], f[1], "%s: `%s` has no --%s", c.where, key, f[1])
		}
		// A whole serve command line: its socket given, no placeholder,
		// no config file (which is not on this machine).
		if key == "serve" && strings.Contains(c.rest, "--socket") && !regexp.MustCompile(`\.\.\.|\b[A-Z]{3,}\b|\[|--config`).MatchString(c.rest) {
			checkDocServe(t, c)
			served++
		}
	}
	assert.GreaterOrEqual(t, served, 3, "README's, tickscript.md's and operations.md's serve command lines")
}

// checkDocServe loads a serve command line as serve does, with a webhook
// URL in the environment.
func checkDocServe(t *testing.T, c docCommand) {
	t.Helper()
	t.Setenv(webhookEnv, "https://api.squadcast.com/v1/incidents/kapacitor/"+cfgSecret)
	var errb bytes.Buffer
	cfg, err := Load(strings.Fields(c.rest), &errb)
	if assert.NoError(t, err, "%s: %s", c.where, errb.String()) {
		assert.NoError(t, cfg.Validate(), c.where)
	}
}
