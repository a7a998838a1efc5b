package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast/outbox"
)

// stateT0 is the point time the test states start from.
var stateT0 = time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC)

func stateAt(d time.Duration) int64 { return stateT0.Add(d).UnixNano() }

// saveTestStates writes into dir's outbox the alert state of two tasks as
// the daemon saves it: cpu (node squadcast2 with a CRITICAL and a WARNING
// group, squadcast5 with one INFO group, without groupBy) and mem (one
// CRITICAL group whose id is long and has a tab).
func saveTestStates(t *testing.T, dir string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o700))
	db, err := outbox.Open(outbox.Path(dir), outbox.Options{})
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.Commit(&outbox.Batch{State: []*outbox.StateChange{
		{Task: "cpu", Node: "squadcast2", AsOf: stateAt(5 * time.Minute), Put: []outbox.GroupState{
			{Group: "host=a", Level: outbox.LevelCritical, FirstTriggered: stateAt(time.Minute), LastTriggered: stateAt(5 * time.Minute), ID: "cpu:host=a"},
			{Group: "host=b", Level: outbox.LevelWarning, FirstTriggered: stateAt(2 * time.Minute), LastTriggered: stateAt(2 * time.Minute), ID: "cpu:host=b"},
		}},
		{Task: "cpu", Node: "squadcast5", AsOf: stateAt(3 * time.Minute), Put: []outbox.GroupState{
			{Level: outbox.LevelInfo, FirstTriggered: stateAt(3 * time.Minute), LastTriggered: stateAt(3 * time.Minute), ID: "cpu:nil"},
		}},
		{Task: "mem", Node: "squadcast3", AsOf: stateAt(time.Hour), Put: []outbox.GroupState{
			{Group: "host=c", Level: outbox.LevelCritical, FirstTriggered: stateAt(time.Hour), LastTriggered: stateAt(time.Hour),
				ID: "mem\t" + strings.Repeat("x", 100)},
		}},
	}}))
}

// TestStateCommands: state list and drop over a data dir holding the
// state of two tasks, run in order (each row sees what the rows before it
// dropped).
func TestStateCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	saveTestStates(t, dir)
	cfg := filepath.Join(t.TempDir(), "c.toml")
	require.NoError(t, os.WriteFile(cfg, []byte(`data-dir = "`+dir+`"`+"\n"), 0o600))
	longID := `"mem\t` + strings.Repeat("x", 55) + `…"`
	for _, tc := range []struct {
		name string
		args []string
		code int
		out  []string // the lines of stdout, as regular expressions
		err  string
	}{
		{"list", []string{"list", "--data-dir", dir}, 0, []string{
			`^TASK +NODE +GROUPS +CRITICAL +WARNING +INFO +LAST CHANGE$`,
			`^cpu +squadcast2 +2 +1 +1 +0 +2026-12-04T18:05:00Z$`,
			`^cpu +squadcast5 +1 +0 +0 +1 +2026-12-04T18:03:00Z$`,
			`^mem +squadcast3 +1 +1 +0 +0 +2026-12-04T19:00:00Z$`,
			`^$`,
			`^2 task\(s\), 3 node\(s\), 4 alerting group\(s\): 2 CRITICAL, 1 WARNING, 1 INFO$`,
		}, ""},
		{"list --task cpu, --config", []string{"list", "--task", "cpu", "--config", cfg}, 0, []string{
			`^NODE +GROUP +ID +LEVEL +SINCE$`,
			`^squadcast2 +host=a +cpu:host=a +CRITICAL +2026-12-04T18:01:00Z$`,
			`^squadcast2 +host=b +cpu:host=b +WARNING +2026-12-04T18:02:00Z$`,
			`^squadcast5 +- +cpu:nil +INFO +2026-12-04T18:03:00Z$`,
			`^$`,
			`^task cpu: 2 node\(s\), 3 alerting group\(s\): 1 CRITICAL, 1 WARNING, 1 INFO$`,
		}, ""},
		{"list --task mem: a long id cut", []string{"list", "--data-dir", dir, "--task", "mem"}, 0, []string{
			`^NODE +GROUP +ID +LEVEL +SINCE$`,
			`^squadcast3 +host=c +` + regexp.QuoteMeta(longID) + ` +CRITICAL +2026-12-04T19:00:00Z$`,
			`^$`,
			`^task mem: 1 node\(s\), 1 alerting group\(s\): 1 CRITICAL, 0 WARNING, 0 INFO$`,
		}, ""},
		{"list --task unknown", []string{"list", "--data-dir", dir, "--task", "cp"}, 1, nil,
			"kapacitor-squadcast state list: no saved alert state of task cp (see 'state list' for the tasks)"},
		{"drop a node", []string{"drop", "--data-dir", dir, "--task", "cpu", "--node", "squadcast5"}, 0,
			[]string{`^dropped the saved state of node squadcast5 of task cpu$`}, ""},
		{"drop it again", []string{"drop", "--data-dir", dir, "--task", "cpu", "--node", "squadcast5"}, 1, nil,
			"kapacitor-squadcast state drop: no saved alert state of node squadcast5 of task cpu (see 'state list')"},
		{"drop a task, --config", []string{"drop", "--config", cfg, "--task", "mem"}, 0,
			[]string{`^dropped the saved state of 1 node\(s\) of task mem$`}, ""},
		{"drop an unknown task", []string{"drop", "--data-dir", dir, "--task", "nosuch"}, 1, nil,
			"kapacitor-squadcast state drop: no saved alert state of task nosuch (see 'state list')"},
		{"list what is left", []string{"list", "--data-dir", dir}, 0, []string{
			`^TASK +NODE +GROUPS +CRITICAL +WARNING +INFO +LAST CHANGE$`,
			`^cpu +squadcast2 +2 +1 +1 +0 +2026-12-04T18:05:00Z$`,
			`^$`,
			`^1 task\(s\), 1 node\(s\), 2 alerting group\(s\): 1 CRITICAL, 1 WARNING, 0 INFO$`,
		}, ""},
		{"drop the last", []string{"drop", "--data-dir", dir, "--task", "cpu"}, 0,
			[]string{`^dropped the saved state of 1 node\(s\) of task cpu$`}, ""},
		{"list nothing", []string{"list", "--data-dir", dir}, 0, []string{`^no saved alert state$`}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(append([]string{"state"}, tc.args...)...)
			assert.Equal(t, tc.code, code, errOut)
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if tc.out == nil {
				lines = nil
				assert.Empty(t, out)
			}
			require.Len(t, lines, len(tc.out), out)
			for i, re := range tc.out {
				assert.Regexp(t, re, lines[i])
			}
			if tc.err == "" {
				assert.Empty(t, errOut)
			} else {
				assert.Equal(t, tc.err+"\n", errOut)
			}
		})
	}
}

// TestStateInUse: while a daemon holds the outbox, list and drop refuse
// it and drop nothing.
func TestStateInUse(t *testing.T) {
	dir := t.TempDir()
	saveTestStates(t, dir)
	db, err := outbox.Open(outbox.Path(dir), outbox.Options{}) // as the daemon holds it
	require.NoError(t, err)
	for _, args := range [][]string{
		{"state", "list", "--data-dir", dir},
		{"state", "list", "--data-dir", dir, "--task", "cpu"},
		{"state", "drop", "--data-dir", dir, "--task", "cpu"},
	} {
		code, out, errOut := runCLI(args...)
		assert.Equal(t, 1, code, "%v", args)
		assert.Empty(t, out)
		assert.Equal(t, "kapacitor-squadcast "+strings.Join(args[:2], " ")+": open outbox "+outbox.Path(dir)+
			": the data dir is in use by a running daemon; stop it first\n", errOut)
	}
	require.NoError(t, db.Close())
	code, out, errOut := runCLI("state", "list", "--data-dir", dir)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "2 task(s), 3 node(s)", "nothing dropped")
}

// TestStateUsage: help, usage errors (exit 2) and a config file without
// a data dir; every flag shows its default.
func TestStateUsage(t *testing.T) {
	dir := t.TempDir()
	noDataDir := filepath.Join(dir, "nodir.toml")
	require.NoError(t, os.WriteFile(noDataDir, []byte("workers = 2\n"), 0o600))
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"state"}, 2, "kapacitor-squadcast state drop --task T [--node N] (--data-dir DIR | --config FILE)"},
		{[]string{"state", "help"}, 0, "its groups start from OK"},
		{[]string{"state", "frob"}, 2, `kapacitor-squadcast state: unknown command "frob"`},
		{[]string{"state", "list", "--help"}, 0, "Usage: kapacitor-squadcast state list [--task T] (--data-dir DIR | --config FILE)"},
		{[]string{"state", "drop", "-h"}, 0, "-node ID\n"},
		{[]string{"state", "list"}, 2, "kapacitor-squadcast state list: --data-dir (or --config) is required"},
		{[]string{"state", "drop", "--data-dir", dir}, 2, "kapacitor-squadcast state drop: --task is required"},
		{[]string{"state", "list", "--node", "n", "--data-dir", dir}, 2, "flag provided but not defined: -node"},
		{[]string{"state", "list", "--data-dir", dir, "cpu"}, 2, "unexpected arguments: [cpu]"},
		{[]string{"state", "list", "--config", noDataDir}, 2, "config file " + noDataDir + " sets no data-dir: give --data-dir"},
		{[]string{"state", "drop", "--task", "t", "--config", filepath.Join(dir, "missing.toml")}, 1, "read config file"},
		{[]string{"state", "list", "--data-dir", dir}, 1, "has the daemon run with this data dir?"},
		{[]string{"state", "drop", "--data-dir", dir, "--task", "t"}, 1, "has the daemon run with this data dir?"},
		{[]string{"help"}, 0, "kapacitor-squadcast state drop --task T [--node N] (--data-dir DIR | --config FILE)"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, errOut := runCLI(tc.args...)
			assert.Equal(t, tc.code, code)
			assert.Contains(t, out+errOut, tc.want)
		})
	}
	_, err := os.Stat(outbox.Path(dir))
	assert.ErrorIs(t, err, os.ErrNotExist, "drop creates no outbox")
	for _, cmd := range []string{"list", "drop"} {
		_, _, help := runCLI("state", cmd, "--help")
		for _, b := range strings.Split(help, "\n  -")[1:] {
			assert.True(t, strings.Contains(b, "default") || strings.Contains(b, "required"), "state %s: -%s shows no default", cmd, b)
		}
	}
}

// TestStateCorrupt: a node with a record that cannot be read is listed,
// with the command that drops its state.
func TestStateCorrupt(t *testing.T) {
	dir := t.TempDir()
	saveTestStates(t, dir)
	corruptStateRecord(t, outbox.Path(dir), "mem\x00squadcast3")

	code, out, errOut := runCLI("state", "list", "--data-dir", dir)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "\ntask mem node squadcast3: 1 corrupt record(s); the daemon starts this node from OK: drop its state with 'state drop --task mem --node squadcast3'\n")
	code, out, _ = runCLI("state", "list", "--data-dir", dir, "--task", "mem")
	require.Equal(t, 0, code)
	assert.Contains(t, out, "task mem node squadcast3: 1 corrupt record(s)")
}

// corruptStateRecord writes a group record that cannot be read into the
// state of node (TaskID NUL NodeID) of the outbox at path.
func corruptStateRecord(t *testing.T, path, node string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("alert_state")).Bucket([]byte(node)).Put([]byte("ghost=z"), []byte{2, 9})
	}))
}
