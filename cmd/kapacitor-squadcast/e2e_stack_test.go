package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/cmd/internal/stack"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// e2eStack is a stand-in, a daemon and a kapacitord wired together.
type e2eStack struct {
	standIn *stack.StandIn
	daemon  *stack.Daemon
	kap     *stack.Kapacitord
	// influx is the InfluxDB batch tasks query (e2eStartBatch only).
	influx *stack.Influxd
	// daemonCfg is how the daemon was started, to start it again.
	daemonCfg stack.DaemonConfig

	stopOnce sync.Once
	stopErr  error
}

// e2eKapacitord returns $KAPACITORD, or skips (fails when
// KAPACITOR_SQUADCAST_E2E=required) when it is not set.
func e2eKapacitord(t *testing.T) string {
	t.Helper()
	bin := os.Getenv(stack.KapacitordEnv)
	if bin == "" {
		if os.Getenv("KAPACITOR_SQUADCAST_E2E") == "required" {
			t.Fatalf("%s is not set but KAPACITOR_SQUADCAST_E2E=required: run `make test`, which builds kapacitord and sets it", stack.KapacitordEnv)
		}
		t.Skipf("%s is not set: skipping the end-to-end test (`make test` builds kapacitord 1.5.9 and sets it)", stack.KapacitordEnv)
	}
	return bin
}

// e2eStart starts a stand-in, the daemon (default URL: stand-in + daemonPath)
// and kapacitord (UDF "squadcast" on the daemon's socket, [[httppost]]
// endpoint "builtin" = stand-in + /builtin), all stopped by t.Cleanup.
func e2eStart(t *testing.T, daemonPath string) *e2eStack {
	t.Helper()
	return e2eStartWith(t, daemonPath, false)
}

// e2eInfluxd returns the influxd binary, or skips (fails when
// KAPACITOR_SQUADCAST_E2E=required) when there is none.
func e2eInfluxd(t *testing.T) string {
	t.Helper()
	bin, err := stack.InfluxdBinary()
	if err != nil {
		if os.Getenv("KAPACITOR_SQUADCAST_E2E") == "required" {
			t.Fatalf("%v, but KAPACITOR_SQUADCAST_E2E=required: run `make test`, which installs it", err)
		}
		t.Skipf("%v: skipping the batch end-to-end test", err)
	}
	return bin
}

// e2eStartBatch is e2eStart for batch tasks: it also starts a local InfluxDB
// (database "telegraf") that kapacitord queries, and serves the batch UDF
// "squadcast_batch" on the daemon's --batch-socket.
func e2eStartBatch(t *testing.T, daemonPath string) *e2eStack {
	t.Helper()
	return e2eStartWith(t, daemonPath, true)
}

// e2eStartWith is e2eStart (or e2eStartBatch when batch), args being more
// of the daemon's command-line arguments.
func e2eStartWith(t *testing.T, daemonPath string, batch bool, args ...string) *e2eStack {
	t.Helper()
	kapacitord := e2eKapacitord(t)
	var influxd string
	if batch {
		influxd = e2eInfluxd(t)
	}

	// A short directory: unix socket paths are limited to ~100 bytes and
	// t.TempDir() paths carry the test name.
	dir, err := os.MkdirTemp("", "ksq-e2e-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })

	st := &e2eStack{standIn: stack.NewStandIn()}
	t.Cleanup(st.standIn.Close)
	var batchSocket, influxURL string
	if batch {
		batchSocket = filepath.Join(dir, "batch.sock")
		st.influx, err = stack.StartInfluxd(influxd, filepath.Join(dir, "influxd"))
		require.NoError(t, err)
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("influxd log (tail):\n%s", st.influx.LogTail(30))
			}
			st.influx.Stop()
		})
		require.NoError(t, st.influx.Query("", `CREATE DATABASE "telegraf"`))
		influxURL = st.influx.URL
	}

	bin, err := stack.BuildDaemon(t.Context(), dir)
	require.NoError(t, err)
	dataDir := filepath.Join(dir, "data")
	require.NoError(t, os.MkdirAll(dataDir, 0o755))
	st.daemonCfg = stack.DaemonConfig{
		Binary:      bin,
		Socket:      filepath.Join(dir, "squadcast.sock"),
		BatchSocket: batchSocket,
		DataDir:     dataDir,
		URL:         st.standIn.URL + daemonPath,
		Args:        args,
	}
	st.daemon, err = stack.StartDaemon(st.daemonCfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		if err := st.stop(); err != nil {
			t.Errorf("stopping the daemon: %v", err)
		}
		if t.Failed() {
			t.Logf("daemon output (tail):\n%s", e2eTail(st.daemon.Output(), 60))
		}
	})

	kapDir := filepath.Join(dir, "kapacitord") // kept until the end, for its log
	require.NoError(t, os.MkdirAll(kapDir, 0o755))
	st.kap, err = stack.StartKapacitord(stack.KapacitordConfig{
		Binary:         kapacitord,
		Dir:            kapDir,
		UDFSocket:      st.daemon.Socket,
		BatchUDFSocket: batchSocket,
		InfluxDBURL:    influxURL,
		HTTPPost:       map[string]string{"builtin": st.standIn.URL + e2eBuiltin, "downstream": st.standIn.URL + e2eDownstream},
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kapacitord log (tail):\n%s", st.kap.LogTail(60))
		}
		st.kap.Stop()
	})
	return st
}

// stop stops kapacitord, then the daemon (SIGTERM; it must exit 0). Later
// calls return the first result.
func (st *e2eStack) stop() error {
	st.stopOnce.Do(func() {
		if st.kap != nil {
			st.kap.Stop()
		}
		st.stopErr = st.daemon.Stop()
	})
	return st.stopErr
}

func e2eTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// e2eLineWith returns the first line of s that contains sub, or "".
func e2eLineWith(s, sub string) string {
	for line := range strings.Lines(s) {
		if strings.Contains(line, sub) {
			return line
		}
	}
	return ""
}

func e2eTick(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "tickscripts", name))
	require.NoError(t, err)
	return string(b)
}

// e2eDefineRunning defines an enabled task and checks Kapacitor reports it
// executing without error.
func e2eDefineRunning(t *testing.T, k *stack.Kapacitord, id, script string) {
	t.Helper()
	require.NoError(t, k.DefineTask(id, script, e2eDBRPs, true), "defining task %s", id)
	task, err := k.Task(id)
	require.NoError(t, err)
	require.True(t, task.Executing && task.Error == "", "task %s: executing %v, error %q", id, task.Executing, task.Error)
}

// e2eEvent is one decoded request body, numbers kept as written.
type e2eEvent map[string]any

func e2eDecode(t *testing.T, reqs []stack.Request) []e2eEvent {
	t.Helper()
	out := make([]e2eEvent, 0, len(reqs))
	for i, r := range reqs {
		var ev e2eEvent
		dec := json.NewDecoder(bytes.NewReader(r.Body))
		dec.UseNumber()
		require.NoError(t, dec.Decode(&ev), "request %d to %s: body is not a JSON object: %q", i, r.Path, r.Body)
		out = append(out, ev)
	}
	return out
}

// e2eByID groups events by their "id", keeping their order.
func e2eByID(evs []e2eEvent) map[string][]e2eEvent {
	m := map[string][]e2eEvent{}
	for _, ev := range evs {
		id, _ := ev["id"].(string)
		m[id] = append(m[id], ev)
	}
	return m
}

func e2eJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// e2eFields are the alert JSON fields the daemon must send exactly as
// Kapacitor does: all but "details".
var e2eFields = []string{"id", "message", "time", "duration", "level", "data", "previousLevel", "recoverable"}

// e2eCompare checks, for each id, that the daemon's events equal
// Kapacitor's field for field (details aside), reporting the first
// difference per id, and returns how many events of each level compared equal.
func e2eCompare(t *testing.T, ids []string, want, got map[string][]e2eEvent) map[string]int {
	t.Helper()
	levels := map[string]int{}
	for _, id := range ids {
		w, g := want[id], got[id]
		if len(g) != len(w) {
			t.Errorf("id %s: the daemon sent %d events, Kapacitor %d", id, len(g), len(w))
		}
		for i := range min(len(w), len(g)) {
			var problems []string
			if _, ok := g[i]["details"].(string); !ok {
				problems = append(problems, "no string \"details\"")
			}
			for _, f := range e2eFields {
				if !assert.ObjectsAreEqual(w[i][f], g[i][f]) {
					problems = append(problems, fmt.Sprintf("%s: kapacitor %s, daemon %s", f, e2eJSON(w[i][f]), e2eJSON(g[i][f])))
				}
			}
			for f := range g[i] {
				if f != "details" && !slices.Contains(e2eFields, f) {
					problems = append(problems, fmt.Sprintf("%s: only the daemon sent it", f))
				}
			}
			if len(problems) > 0 {
				// The first difference per id is enough to read.
				t.Errorf("id %s event %d of %d differs: %s\nkapacitor: %s\ndaemon:    %s", id, i, len(w), strings.Join(problems, "; "), e2eJSON(w[i]), e2eJSON(g[i]))
				break
			}
			levels[fmt.Sprint(w[i]["level"])]++
		}
	}
	return levels
}

// e2eSettle waits until the requests Kapacitor posts to e2eBuiltin and the
// daemon's to e2eDaemonPath have stopped coming, and returns them:
// complete (given the number of Kapacitor's requests) must hold, and the
// counts must not have moved for settle when they are equal, or for 10s
// when not (the caller's assertions then say how they differ). It fails the
// test after wait, with complete's status.
func e2eSettle(t *testing.T, standIn *stack.StandIn, wait, settle time.Duration, complete func(builtin int) (bool, string)) (builtin, daemon []stack.Request) {
	t.Helper()
	deadline := time.Now().Add(wait)
	last, lastChange := [2]int{-1, -1}, time.Now()
	for {
		builtin, daemon = standIn.RequestsTo(e2eBuiltin), standIn.RequestsTo(e2eDaemonPath)
		if c := [2]int{len(builtin), len(daemon)}; c != last {
			last, lastChange = c, time.Now()
		}
		done, status := complete(len(builtin))
		quiet := time.Since(lastChange)
		if done && (len(daemon) == len(builtin) && quiet >= settle || quiet >= 10*time.Second) {
			return builtin, daemon
		}
		if time.Now().After(deadline) {
			t.Fatalf("not settled within %s: %s; %d requests from Kapacitor, %d from the daemon", wait, status, len(builtin), len(daemon))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func e2eStat(task stack.Task, node, key string) int64 {
	n, _ := task.Stat(node, key)
	return n
}
