package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/cmd/internal/stack"
)

// docTick is a TICKscript shown in a Markdown file.
type docTick struct {
	file   string // relative to the repository root
	line   int    // of the opening fence
	script string
}

// kind is "stream" or "batch" for a whole script, "" for a fragment (a
// part of a script, e.g. `var trigger = data |alert()...`).
func (d docTick) kind() string {
	for line := range strings.Lines(d.script) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "//") {
			continue
		}
		for _, k := range []string{"stream", "batch"} {
			if line == k || strings.HasPrefix(line, k+" ") {
				return k
			}
		}
		return ""
	}
	return ""
}

// docTickscripts returns the ```js blocks of README.md, CONTRIBUTING.md and
// docs/*.md (indented ones, in lists, included).
func docTickscripts(t *testing.T) []docTick {
	t.Helper()
	root := filepath.Join("..", "..")
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	require.NoError(t, err)
	files = append([]string{filepath.Join(root, "README.md"), filepath.Join(root, "CONTRIBUTING.md")}, files...)
	var out []docTick
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		rel, err := filepath.Rel(root, f)
		require.NoError(t, err)
		out = append(out, jsBlocks(rel, string(b))...)
	}
	return out
}

// jsBlocks returns the ```js fenced blocks of a Markdown text, each
// without the indentation of its fence.
func jsBlocks(file, text string) []docTick {
	var out []docTick
	var cur *docTick
	indent := ""
	for n, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimLeft(line, " ")
		switch {
		case cur == nil && strings.HasPrefix(trimmed, "```js"):
			indent = line[:len(line)-len(trimmed)]
			cur = &docTick{file: file, line: n + 1}
		case cur != nil && strings.TrimSpace(line) == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.script += strings.TrimPrefix(line, indent) + "\n"
		}
	}
	return out
}

// tripleQuoted is the expression with quotes of both kinds that README.md
// and docs/tickscript.md show inline.
const tripleQuoted = `.crit('''"status" == 'down' ''')`

// TestE2EDocTickscripts defines every TICKscript the documentation shows in
// a real kapacitord 1.5.9 with the daemon: each must be accepted (it
// parses, and its options have the types the UDF declares), and each that
// uses @squadcast() or @squadcast_batch() must start: the daemon accepts
// its options and Kapacitor runs it without error. A fragment (a part of a
// script) must be, word for word, a part of one of tickscripts/, which
// the other end-to-end tests run.
func TestE2EDocTickscripts(t *testing.T) {
	ticks := docTickscripts(t)
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	require.Contains(t, string(readme), tripleQuoted)
	ticks = append(ticks, docTick{file: "README.md (inline)", script: "stream\n    |from()\n        .measurement('svc')\n    @squadcast()\n        " + tripleQuoted + "\n"})

	st := e2eStartBatch(t, "/v1/incidents/kapacitor/doc-key")
	defined := 0
	for i, d := range ticks {
		where := fmt.Sprintf("%s:%d", d.file, d.line)
		kind := d.kind()
		if kind == "" {
			assert.True(t, inTickscripts(t, d.script), "%s: a part of a script that is in none of tickscripts/:\n%s", where, d.script)
			continue
		}
		id := fmt.Sprintf("doc%d_%s", i, regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(d.file), "_"))
		ours := strings.Contains(d.script, "@squadcast")
		var err error
		if kind == "batch" {
			err = st.kap.DefineBatchTask(id, d.script, e2eDBRPs, ours)
		} else {
			err = st.kap.DefineTask(id, d.script, e2eDBRPs, ours)
		}
		if !assert.NoError(t, err, "%s: Kapacitor refuses the script:\n%s", where, d.script) {
			continue
		}
		defined++
		if !ours {
			continue
		}
		checkDocTaskStarted(t, st, id, where, d.script)
	}
	// README's, tickscript.md's three, relay.md's .post() task, the
	// CONTRIBUTING pair and the inline expression at least.
	assert.GreaterOrEqual(t, defined, 8, "the docs' TICKscripts are found")
}

// checkDocTaskStarted waits until the daemon accepted the task's Init (it
// logs "task connected" for it) or Kapacitor shows the task's error, and
// checks it is the former, with the task executing.
func checkDocTaskStarted(t *testing.T, st *e2eStack, id, where, script string) {
	t.Helper()
	connected := func() bool {
		for line := range strings.Lines(st.daemon.Output()) {
			if strings.Contains(line, `"msg":"task connected"`) && strings.Contains(line, `"task":"`+id+`"`) {
				return true
			}
		}
		return false
	}
	task, err := st.kap.WaitTask(id, 30*time.Second, "its Init answered", func(task stack.Task) bool {
		return task.Error != "" || connected()
	})
	if assert.NoError(t, err, where) {
		assert.True(t, task.Executing && task.Error == "", "%s: executing %v, error %q:\n%s", where, task.Executing, task.Error, script)
	}
}

// inTickscripts reports whether fragment is a part of one of the scripts
// in tickscripts/ (or a folder of it), the docs' <token> standing for
// their REPLACE-WITH-THE-TOKEN.
func inTickscripts(t *testing.T, fragment string) bool {
	t.Helper()
	fragment = strings.ReplaceAll(fragment, "<token>", "REPLACE-WITH-THE-TOKEN")
	var files []string
	for _, pattern := range []string{"*.tick", "*/*.tick"} {
		m, err := filepath.Glob(filepath.Join("..", "..", "tickscripts", pattern))
		require.NoError(t, err)
		files = append(files, m...)
	}
	require.NotEmpty(t, files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		if strings.Contains(string(b), fragment) {
			return true
		}
	}
	return false
}
