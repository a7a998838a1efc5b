package main

// End-to-end tests: a real kapacitord (v1.5.9, $KAPACITORD, built by
// `make kapacitord`) drives the real kapacitor-squadcast binary over its
// socket, and a stand-in for Squadcast records what arrives. Without
// $KAPACITORD they skip, unless KAPACITOR_SQUADCAST_E2E=required (as `make
// test` sets), when they fail.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/cmd/internal/stack"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	e2eSecret     = "SECRETKEY123"
	e2eDaemonPath = "/v1/incidents/kapacitor/" + e2eSecret
	e2eBuiltin    = "/builtin"
	// e2eDownstream is where |httpPost().endpoint('downstream') posts.
	e2eDownstream = "/downstream"
)

var e2eDBRPs = []stack.DBRP{{DB: "telegraf", RP: "autogen"}}

// e2eStack is a stand-in, a daemon and a kapacitord wired together.
type e2eStack struct {
	standIn *stack.StandIn
	daemon  *stack.Daemon
	kap     *stack.Kapacitord
	// influx is the InfluxDB batch tasks query (e2eStartBatch only).
	influx *stack.Influxd

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

func e2eStartWith(t *testing.T, daemonPath string, batch bool) *e2eStack {
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
	st.daemon, err = stack.StartDaemon(stack.DaemonConfig{
		Binary:      bin,
		Socket:      filepath.Join(dir, "squadcast.sock"),
		BatchSocket: batchSocket,
		DataDir:     dataDir,
		URL:         st.standIn.URL + daemonPath,
	})
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

// TestE2EDifferential runs Kapacitor's own alert node (.post() to an
// [[httppost]] endpoint) and the @squadcast() UDF on the same points and
// checks that, per alert id, the daemon sent the same events, field for
// field, as Kapacitor did (all but "details").
func TestE2EDifferential(t *testing.T) {
	st := e2eStart(t, e2eDaemonPath)
	k := st.kap
	e2eDefineRunning(t, k, "cpu_alert_post", e2eTick(t, "cpu_alert_post.tick"))
	e2eDefineRunning(t, k, "cpu_squadcast", e2eTick(t, "cpu_squadcast.tick"))

	hosts := []string{"web-1", "web-2", "db-1", "db-2", "cache-1"}
	start := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	lines := stack.RandomWalk(20240301, hosts, 400, start, 10*time.Second)
	total := int64(len(lines))
	for i, body := range stack.Batches(lines, 500) {
		require.NoError(t, k.Write("telegraf", "autogen", body), "writing batch %d", i)
	}

	// Wait until both tasks have taken every point and Kapacitor's own
	// handler has delivered every event its alert node triggered.
	var post, udf stack.Task
	builtin, daemon := e2eSettle(t, st.standIn, 90*time.Second, time.Second, func(posted int) (bool, string) {
		var err1, err2 error
		post, err1 = k.Task("cpu_alert_post")
		udf, err2 = k.Task("cpu_squadcast")
		triggered := e2eStat(post, "alert", "alerts_triggered")
		return err1 == nil && err2 == nil &&
				e2eStat(post, "alert", "collected") == total &&
				e2eStat(udf, "squadcast", "collected") == total &&
				int64(posted) == triggered,
			fmt.Sprintf("cpu_alert_post: alert node collected %d of %d points, alerts_triggered %d (err %v); "+
				"cpu_squadcast: squadcast node collected %d of %d points, executing %v, error %q (err %v)",
				e2eStat(post, "alert", "collected"), total, triggered, err1,
				e2eStat(udf, "squadcast", "collected"), total, udf.Executing, udf.Error, err2)
	})
	require.Empty(t, udf.Error, "cpu_squadcast task error")
	require.Greater(t, len(builtin), 100, "the random walk should trigger many events")
	require.Equal(t, len(st.standIn.Requests()), len(builtin)+len(daemon), "every request went to %s or %s", e2eBuiltin, e2eDaemonPath)
	assert.Equal(t, len(builtin), len(daemon), "the daemon sent %d requests, Kapacitor's alert node %d", len(daemon), len(builtin))

	for i, r := range daemon {
		assert.Equal(t, "POST", r.Method, "daemon request %d", i)
		assert.Equal(t, e2eDaemonPath, r.Path, "daemon request %d", i)
		assert.Contains(t, r.Header.Get("Content-Type"), "application/json", "daemon request %d", i)
	}

	want, got := e2eByID(e2eDecode(t, builtin)), e2eByID(e2eDecode(t, daemon))
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	gotIDs := make([]string, 0, len(got))
	for id := range got {
		gotIDs = append(gotIDs, id)
	}
	sort.Strings(gotIDs)
	require.Equal(t, ids, gotIDs, "alert ids")
	require.Len(t, ids, len(hosts))

	levels := e2eCompare(t, ids, want, got)
	t.Logf("%d points, %d events per side over %d ids %v; levels %v", total, len(builtin), len(ids), ids, levels)

	require.NoError(t, st.stop(), "stopping the daemon")
	assert.Empty(t, e2eLineWith(st.daemon.Output(), e2eSecret), "the webhook key appears in the daemon's output")
	assert.Empty(t, e2eLineWith(k.LogTail(1<<20), e2eSecret), "the webhook key appears in kapacitord's log")
}

// TestE2EBadOptionDoesNotHurtNeighbours defines a task with an unparsable
// .crit next to a good one on the same daemon: the bad task fails with an
// error that names .crit, and the good one goes on delivering events.
func TestE2EBadOptionDoesNotHurtNeighbours(t *testing.T) {
	const path = "/v1/incidents/kapacitor/NEIGHBOURKEY"
	st := e2eStart(t, path)
	k := st.kap
	e2eDefineRunning(t, k, "good", e2eTick(t, "cpu_squadcast.tick"))

	// Levels per host: OK, INFO, CRITICAL, OK, then WARNING, OK.
	hosts := []string{"n1", "n2"}
	start := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	var first, second []string
	for h, host := range hosts {
		for i, v := range []float64{80, 30, 5, 70} {
			first = append(first, stack.Line(host, v, int64(h), start.Add(time.Duration(i)*time.Second)))
		}
		for i, v := range []float64{20, 90} {
			second = append(second, stack.Line(host, v, int64(h), start.Add(time.Duration(10+i)*time.Second)))
		}
	}
	require.NoError(t, k.Write("telegraf", "autogen", strings.Join(first, "\n")))
	_, err := st.standIn.WaitFor(2*3, 30*time.Second)
	require.NoError(t, err, "events for the first points from the good task")

	// The bad task: Kapacitor may refuse the definition, or (as 1.5.9 does
	// when the UDF's Init fails) accept it and show the error on the task.
	err = k.DefineTask("bad", e2eTick(t, "cpu_squadcast_bad.tick"), e2eDBRPs, true)
	if err != nil {
		assert.Contains(t, err.Error(), ".crit", "define error")
		t.Logf("defining the bad task failed: %v", err)
	} else {
		bad, err := k.WaitTaskError("bad", 30*time.Second)
		require.NoError(t, err)
		assert.False(t, bad.Executing, "the bad task is not executing")
		assert.Contains(t, bad.Error, ".crit", "the bad task's error names the option")
		t.Logf("the bad task's error: %s", bad.Error)
	}

	require.NoError(t, k.Write("telegraf", "autogen", strings.Join(second, "\n")))
	reqs, err := st.standIn.WaitFor(2*5, 30*time.Second)
	require.NoError(t, err, "events for the later points from the good task")
	good, err := k.WaitTask("good", 30*time.Second, "all points collected", func(t stack.Task) bool {
		return e2eStat(t, "squadcast", "collected") == int64(len(first)+len(second))
	})
	require.NoError(t, err)
	assert.True(t, good.Executing, "the good task is still executing")
	assert.Empty(t, good.Error, "the good task has no error")
	assert.True(t, st.daemon.Alive(), "the daemon is still running")

	// Let late extras show up before counting.
	time.Sleep(500 * time.Millisecond)
	reqs = st.standIn.Requests()
	require.Len(t, reqs, 2*5, "events: two hosts x INFO, CRITICAL, OK, WARNING, OK")
	byID := e2eByID(e2eDecode(t, reqs))
	for _, host := range hosts {
		var seq []string
		for _, ev := range byID["cpu:host="+host] {
			seq = append(seq, fmt.Sprint(ev["level"]))
		}
		assert.Equal(t, []string{"INFO", "CRITICAL", "OK", "WARNING", "OK"}, seq, "levels for host %s", host)
	}
	for _, r := range reqs {
		assert.Equal(t, path, r.Path)
	}
}
