package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/cmd/internal/stack"
)

// TestE2EChaos is the outbox's promise, end to end: once Kapacitor handed a
// point to the daemon, the event it makes reaches Squadcast, in order per
// incident, through an outage and a crash.
//
// One kapacitord runs three tasks on the same points:
//   - chaos_reference: Kapacitor's |alert()...post() to a clean stand-in,
//     the events that must arrive;
//   - chaos_squadcast: @squadcast(), whose daemon posts to a stand-in that
//     answers its first chaosFailures requests 503 with Retry-After;
//   - chaos_builtin: |alert()...post() to a stand-in that fails the same
//     way, to show in the log what Kapacitor's own handler loses.
//
// Halfway through the points the daemon is killed with SIGKILL, with
// events still pending behind the 503s, and started again on the same data
// dir with --kapacitor-url, which restarts chaos_squadcast; then the second
// half is written. Every reference event must arrive at the daemon's
// stand-in, first deliveries in the reference's order per incident, and the
// last event of every incident must be the reference's last (a repeat of an
// already delivered event after the crash is allowed). The daemon holds
// only chaosQueue events in memory, so that most of the backlog waits in
// the outbox only (spilled), across the crash too.
func TestE2EChaos(t *testing.T) {
	c := startChaos(t)
	c.defineTasks(t)
	refEvents := c.writeFirstHalf(t)
	c.crash(t, refEvents)
	c.restart(t)
	c.writeSecondHalf(t)
	want, got := c.awaitDeliveries(t)
	c.reportDeliveries(t, want, got)
	c.reportBuiltinLosses(t, want)

	require.NoError(t, c.daemon.Stop(), "stopping the restarted daemon")
	for _, out := range []string{c.first.Output(), c.daemon.Output()} {
		assert.Empty(t, e2eLineWith(out, "CHAOSKEY"), "the webhook key appears in the daemon's output")
	}
}

const (
	// chaosFailures is how many requests the daemon's and the built-in
	// handler's stand-ins answer 503 before they accept.
	chaosFailures = 200
	// chaosQueue is the daemon's --queue-size.
	chaosQueue       = 40
	chaosDaemonPath  = "/v1/incidents/kapacitor/CHAOSKEY"
	chaosRefPath     = "/reference"
	chaosBuiltinPath = "/builtin"
)

// chaosRun is TestE2EChaos's stack and the points it writes.
type chaosRun struct {
	ref, chaos, builtin *stack.StandIn
	daemonCfg           stack.DaemonConfig
	// first is the daemon killed halfway; daemon is the one running (first
	// until the crash, then the restarted one).
	first, daemon *stack.Daemon
	k             *stack.Kapacitord
	lines         []string
	half          int
}

// startChaos starts the three stand-ins (the daemon's and the built-in
// handler's failing their first chaosFailures requests), the daemon and
// kapacitord, all stopped by t.Cleanup.
func startChaos(t *testing.T) *chaosRun {
	t.Helper()
	kapacitord := e2eKapacitord(t)

	dir, err := os.MkdirTemp("", "ksq-chaos-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })

	c := &chaosRun{ref: stack.NewStandIn(), chaos: stack.NewStandIn(), builtin: stack.NewStandIn()}
	t.Cleanup(c.ref.Close)
	t.Cleanup(c.chaos.Close)
	t.Cleanup(c.builtin.Close)
	c.chaos.FailFirst(chaosFailures, http.StatusServiceUnavailable, "1")
	c.builtin.FailFirst(chaosFailures, http.StatusServiceUnavailable, "1")

	c.startDaemon(t, dir)
	c.startKapacitord(t, kapacitord, dir)
	return c
}

// startDaemon builds and starts the first daemon, with short backoffs and
// a memory queue of chaosQueue events.
func (c *chaosRun) startDaemon(t *testing.T, dir string) {
	t.Helper()
	bin, err := stack.BuildDaemon(t.Context(), dir)
	require.NoError(t, err)
	dataDir := filepath.Join(dir, "data")
	c.daemonCfg = stack.DaemonConfig{
		Binary:  bin,
		Socket:  filepath.Join(dir, "squadcast.sock"),
		DataDir: dataDir,
		URL:     c.chaos.URL + chaosDaemonPath,
		// Keep backoffs short, so that the test does not wait minutes
		// between attempts once the 503s are over.
		Args: []string{"--retry-max-wait", "2s", "--queue-size", strconv.Itoa(chaosQueue)},
	}
	c.first, err = stack.StartDaemon(c.daemonCfg)
	require.NoError(t, err)
	c.daemon = c.first
	t.Cleanup(func() {
		if c.daemon.Alive() {
			if err := c.daemon.Stop(); err != nil {
				t.Errorf("stopping the daemon: %v", err)
			}
		}
		if t.Failed() {
			t.Logf("first daemon's output (tail):\n%s", e2eTail(c.first.Output(), 40))
			if c.daemon != c.first {
				t.Logf("restarted daemon's output (tail):\n%s", e2eTail(c.daemon.Output(), 60))
			}
		}
	})
}

// startKapacitord starts kapacitord with the daemon's UDF and the
// [[httppost]] endpoints "builtin" and "reference".
func (c *chaosRun) startKapacitord(t *testing.T, kapacitord, dir string) {
	t.Helper()
	kapDir := filepath.Join(dir, "kapacitord")
	require.NoError(t, os.MkdirAll(kapDir, 0o755))
	k, err := stack.StartKapacitord(stack.KapacitordConfig{
		Binary:    kapacitord,
		Dir:       kapDir,
		UDFSocket: c.daemonCfg.Socket,
		HTTPPost: map[string]string{
			"builtin":   c.builtin.URL + chaosBuiltinPath,
			"reference": c.ref.URL + chaosRefPath,
		},
	})
	require.NoError(t, err)
	c.k = k
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kapacitord log (tail):\n%s", k.LogTail(60))
		}
		k.Stop()
	})
}

// defineTasks defines chaos_reference, chaos_builtin and chaos_squadcast.
func (c *chaosRun) defineTasks(t *testing.T) {
	t.Helper()
	post := e2eTick(t, "cpu_alert_post.tick")
	refScript := strings.Replace(post, ".endpoint('builtin')", ".endpoint('reference')", 1)
	require.NotEqual(t, post, refScript, "cpu_alert_post.tick posts to the endpoint 'builtin'")
	e2eDefineRunning(t, c.k, "chaos_reference", refScript)
	e2eDefineRunning(t, c.k, "chaos_builtin", post)
	// A child node makes Kapacitor count the points the daemon emits (one
	// per event, sent once the event is durable): that is how the test
	// knows the daemon has read every point before it kills it.
	e2eDefineRunning(t, c.k, "chaos_squadcast", e2eTick(t, "cpu_squadcast.tick")+"\n    |httpOut('events')\n")
}

// writeFirstHalf makes the points, writes the first half, then waits until
// the daemon has read all of it: its node emitted one point per event, as
// many as the reference's alert node triggered for the same points. It
// returns that number of events.
func (c *chaosRun) writeFirstHalf(t *testing.T) (refEvents int64) {
	t.Helper()
	hosts := make([]string, 12)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("host-%02d", i)
	}
	c.lines = stack.RandomWalk(42, hosts, 120, time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC), 10*time.Second)
	c.half = len(c.lines) / 2

	for i, body := range stack.Batches(c.lines[:c.half], 500) {
		require.NoError(t, c.k.Write("telegraf", "autogen", body), "writing batch %d", i)
	}
	_, err := c.k.WaitTask("chaos_reference", 60*time.Second, "all first-half points collected", func(tk stack.Task) bool {
		refEvents = e2eStat(tk, "alert", "alerts_triggered")
		return e2eStat(tk, "alert", "collected") == int64(c.half)
	})
	require.NoError(t, err)
	_, err = c.k.WaitTask("chaos_squadcast", 60*time.Second, "one emitted point per reference event", func(tk stack.Task) bool {
		return e2eStat(tk, "squadcast", "collected") == int64(c.half) && e2eStat(tk, "squadcast", "emitted") == refEvents
	})
	require.NoError(t, err, "reference alert node: %v", refStats(c.k))
	// The daemon writes its responses after making the burst's events
	// durable, except when its write buffer fills first: give it a moment
	// to reach the end of its input.
	time.Sleep(500 * time.Millisecond)
	return refEvents
}

// crash kills the daemon (SIGKILL) while the outage still lasts.
func (c *chaosRun) crash(t *testing.T, refEvents int64) {
	t.Helper()
	c.daemon.Kill()
	failedSoFar := countStatus(c.chaos.Requests(), http.StatusServiceUnavailable)
	t.Logf("SIGKILL after %d of %d points: %d events so far, the daemon's stand-in had answered %d requests, %d of them 503",
		c.half, len(c.lines), refEvents, c.chaos.Count(), failedSoFar)
	require.Less(t, failedSoFar, chaosFailures, "the outage must outlast the first daemon, or the crash tests nothing")
}

// restart starts the daemon again on the same data dir; --kapacitor-url
// restarts the task Kapacitor still runs on the dead connection. The
// restarted daemon must resume the outbox, most of it left on disk.
func (c *chaosRun) restart(t *testing.T) {
	t.Helper()
	c.daemonCfg.Args = append(c.daemonCfg.Args, "--kapacitor-url", c.k.URL)
	var err error
	c.daemon, err = stack.StartDaemon(c.daemonCfg)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		line := e2eLineWith(c.daemon.Output(), "restarted task left on a previous daemon's connection")
		return strings.Contains(line, `"chaos_squadcast"`)
	}, 60*time.Second, 100*time.Millisecond, "the restarted daemon restarts chaos_squadcast")
	_, err = c.k.WaitTask("chaos_squadcast", 30*time.Second, "executing again", func(tk stack.Task) bool {
		return tk.Executing && tk.Error == ""
	})
	require.NoError(t, err)
	loaded := e2eLineWith(c.daemon.Output(), "loaded the outbox")
	m := regexp.MustCompile(`"pending":(\d+),"pending_left_on_disk":(\d+)`).FindStringSubmatch(loaded)
	require.NotNil(t, m, "the restarted daemon resumes the outbox: %s", loaded)
	pending, err := strconv.Atoi(m[1])
	require.NoError(t, err)
	onDisk, err := strconv.Atoi(m[2])
	require.NoError(t, err)
	t.Logf("the restarted daemon found %d events pending, %d of them left on disk until the memory queue (%d) has room", pending, onDisk, chaosQueue)
	require.Equal(t, max(pending-chaosQueue, 0), onDisk)
	require.Positive(t, onDisk, "the backlog is larger than the memory queue, or spilling is not tested")
}

// writeSecondHalf writes the rest of the points and waits until both
// tasks have collected them and the reference has posted every event.
func (c *chaosRun) writeSecondHalf(t *testing.T) {
	t.Helper()
	for i, body := range stack.Batches(c.lines[c.half:], 500) {
		require.NoError(t, c.k.Write("telegraf", "autogen", body), "writing batch %d", i)
	}
	_, err := c.k.WaitTask("chaos_reference", 60*time.Second, "all points collected", func(tk stack.Task) bool {
		refEvents := e2eStat(tk, "alert", "alerts_triggered")
		return e2eStat(tk, "alert", "collected") == int64(len(c.lines)) && int64(len(c.ref.Requests())) == refEvents
	})
	require.NoError(t, err)
	_, err = c.k.WaitTask("chaos_squadcast", 60*time.Second, "the second half collected", func(tk stack.Task) bool {
		return e2eStat(tk, "squadcast", "collected") == int64(len(c.lines)-c.half)
	})
	require.NoError(t, err)
}

// awaitDeliveries waits until every reference event has been delivered,
// or gives up after a generous deadline and reports what is missing. It
// returns the reference's events and the daemon's, by incident.
func (c *chaosRun) awaitDeliveries(t *testing.T) (want, got map[string][]e2eEvent) {
	t.Helper()
	want = e2eByID(e2eDecode(t, c.ref.Requests()))
	var problems []string
	deadline := time.Now().Add(180 * time.Second)
	for {
		got = e2eByID(e2eDecode(t, okRequests(c.chaos.Requests())))
		problems = chaosProblems(want, got)
		if len(problems) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	for _, p := range problems {
		t.Error(p)
	}
	return want, got
}

// reportDeliveries logs what the daemon delivered and checks it went
// through the whole outage.
func (c *chaosRun) reportDeliveries(t *testing.T, want, got map[string][]e2eEvent) {
	t.Helper()
	delivered, repeats := 0, 0
	for _, evs := range got {
		delivered += len(evs)
	}
	for id := range want {
		repeats += len(got[id]) - len(dedupeEvents(got[id]))
	}
	t.Logf("reference: %d events over %d incidents; the daemon delivered %d (%d repeats after the crash) through %d answers of 503",
		len(c.ref.Requests()), len(want), delivered, repeats, countStatus(c.chaos.Requests(), http.StatusServiceUnavailable))
	assert.Equal(t, chaosFailures, countStatus(c.chaos.Requests(), http.StatusServiceUnavailable), "the daemon went through the whole outage")
}

// reportBuiltinLosses logs what Kapacitor's own .post() beside the daemon
// lost to the same outage, and checks it lost something.
func (c *chaosRun) reportBuiltinLosses(t *testing.T, want map[string][]e2eEvent) {
	t.Helper()
	builtinOK := e2eByID(e2eDecode(t, okRequests(c.builtin.Requests())))
	lost, lostRecoveries, openForever := 0, 0, 0
	for id, evs := range want {
		seen := map[string]bool{}
		for _, ev := range builtinOK[id] {
			seen[eventKey(ev)] = true
		}
		for _, ev := range evs {
			if !seen[eventKey(ev)] {
				lost++
				if ev["level"] == "OK" {
					lostRecoveries++
				}
			}
		}
		if b := builtinOK[id]; evs[len(evs)-1]["level"] == "OK" && (len(b) == 0 || b[len(b)-1]["level"] != "OK") {
			openForever++
		}
	}
	t.Logf("Kapacitor's built-in .post() against the same outage: lost %d of %d events (%d of them recoveries); %d incidents it would leave open",
		lost, len(c.ref.Requests()), lostRecoveries, openForever)
	assert.Positive(t, lost, "the built-in .post() never retries: the outage should cost it events")
}
