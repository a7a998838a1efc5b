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
	const (
		chaosFailures = 200
		chaosQueue    = 40
		daemonPath    = "/v1/incidents/kapacitor/CHAOSKEY"
		refPath       = "/reference"
		builtinPath   = "/builtin"
	)
	kapacitord := e2eKapacitord(t)

	dir, err := os.MkdirTemp("", "ksq-chaos-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })

	ref, chaos, builtin := stack.NewStandIn(), stack.NewStandIn(), stack.NewStandIn()
	t.Cleanup(ref.Close)
	t.Cleanup(chaos.Close)
	t.Cleanup(builtin.Close)
	chaos.FailFirst(chaosFailures, http.StatusServiceUnavailable, "1")
	builtin.FailFirst(chaosFailures, http.StatusServiceUnavailable, "1")

	bin, err := stack.BuildDaemon(t.Context(), dir)
	require.NoError(t, err)
	dataDir := filepath.Join(dir, "data")
	daemonCfg := stack.DaemonConfig{
		Binary:  bin,
		Socket:  filepath.Join(dir, "squadcast.sock"),
		DataDir: dataDir,
		URL:     chaos.URL + daemonPath,
		// Keep backoffs short, so that the test does not wait minutes
		// between attempts once the 503s are over.
		Args: []string{"--retry-max-wait", "2s", "--queue-size", strconv.Itoa(chaosQueue)},
	}
	first, err := stack.StartDaemon(daemonCfg)
	require.NoError(t, err)
	daemon := first
	t.Cleanup(func() {
		if daemon.Alive() {
			if err := daemon.Stop(); err != nil {
				t.Errorf("stopping the daemon: %v", err)
			}
		}
		if t.Failed() {
			t.Logf("first daemon's output (tail):\n%s", e2eTail(first.Output(), 40))
			if daemon != first {
				t.Logf("restarted daemon's output (tail):\n%s", e2eTail(daemon.Output(), 60))
			}
		}
	})

	kapDir := filepath.Join(dir, "kapacitord")
	require.NoError(t, os.MkdirAll(kapDir, 0o755))
	k, err := stack.StartKapacitord(stack.KapacitordConfig{
		Binary:    kapacitord,
		Dir:       kapDir,
		UDFSocket: daemonCfg.Socket,
		HTTPPost: map[string]string{
			"builtin":   builtin.URL + builtinPath,
			"reference": ref.URL + refPath,
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kapacitord log (tail):\n%s", k.LogTail(60))
		}
		k.Stop()
	})

	post := e2eTick(t, "cpu_alert_post.tick")
	refScript := strings.Replace(post, ".endpoint('builtin')", ".endpoint('reference')", 1)
	require.NotEqual(t, post, refScript, "cpu_alert_post.tick posts to the endpoint 'builtin'")
	e2eDefineRunning(t, k, "chaos_reference", refScript)
	e2eDefineRunning(t, k, "chaos_builtin", post)
	// A child node makes Kapacitor count the points the daemon emits (one
	// per event, sent once the event is durable): that is how the test
	// knows the daemon has read every point before it kills it.
	e2eDefineRunning(t, k, "chaos_squadcast", e2eTick(t, "cpu_squadcast.tick")+"\n    |httpOut('events')\n")

	hosts := make([]string, 12)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("host-%02d", i)
	}
	lines := stack.RandomWalk(42, hosts, 120, time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC), 10*time.Second)
	half := len(lines) / 2

	// First half, then wait until the daemon has read all of it: its node
	// emitted one point per event, as many as the reference's alert node
	// triggered for the same points.
	for i, body := range stack.Batches(lines[:half], 500) {
		require.NoError(t, k.Write("telegraf", "autogen", body), "writing batch %d", i)
	}
	var refEvents int64
	_, err = k.WaitTask("chaos_reference", 60*time.Second, "all first-half points collected", func(tk stack.Task) bool {
		refEvents = e2eStat(tk, "alert", "alerts_triggered")
		return e2eStat(tk, "alert", "collected") == int64(half)
	})
	require.NoError(t, err)
	_, err = k.WaitTask("chaos_squadcast", 60*time.Second, "one emitted point per reference event", func(tk stack.Task) bool {
		return e2eStat(tk, "squadcast", "collected") == int64(half) && e2eStat(tk, "squadcast", "emitted") == refEvents
	})
	require.NoError(t, err, "reference alert node: %v", refStats(k))
	// The daemon writes its responses after making the burst's events
	// durable, except when its write buffer fills first: give it a moment
	// to reach the end of its input.
	time.Sleep(500 * time.Millisecond)

	daemon.Kill()
	failedSoFar := countStatus(chaos.Requests(), http.StatusServiceUnavailable)
	t.Logf("SIGKILL after %d of %d points: %d events so far, the daemon's stand-in had answered %d requests, %d of them 503",
		half, len(lines), refEvents, chaos.Count(), failedSoFar)
	require.Less(t, failedSoFar, chaosFailures, "the outage must outlast the first daemon, or the crash tests nothing")

	// Start again on the same data dir; --kapacitor-url restarts the task
	// Kapacitor still runs on the dead connection.
	daemonCfg.Args = append(daemonCfg.Args, "--kapacitor-url", k.URL)
	daemon, err = stack.StartDaemon(daemonCfg)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		line := e2eLineWith(daemon.Output(), "restarted task left on a previous daemon's connection")
		return strings.Contains(line, `"chaos_squadcast"`)
	}, 60*time.Second, 100*time.Millisecond, "the restarted daemon restarts chaos_squadcast")
	_, err = k.WaitTask("chaos_squadcast", 30*time.Second, "executing again", func(tk stack.Task) bool {
		return tk.Executing && tk.Error == ""
	})
	require.NoError(t, err)
	loaded := e2eLineWith(daemon.Output(), "loaded the outbox")
	m := regexp.MustCompile(`"pending":(\d+),"pending_left_on_disk":(\d+)`).FindStringSubmatch(loaded)
	require.NotNil(t, m, "the restarted daemon resumes the outbox: %s", loaded)
	pending, err := strconv.Atoi(m[1])
	require.NoError(t, err)
	onDisk, err := strconv.Atoi(m[2])
	require.NoError(t, err)
	t.Logf("the restarted daemon found %d events pending, %d of them left on disk until the memory queue (%d) has room", pending, onDisk, chaosQueue)
	require.Equal(t, max(pending-chaosQueue, 0), onDisk)
	require.Positive(t, onDisk, "the backlog is larger than the memory queue, or spilling is not tested")

	for i, body := range stack.Batches(lines[half:], 500) {
		require.NoError(t, k.Write("telegraf", "autogen", body), "writing batch %d", i)
	}
	_, err = k.WaitTask("chaos_reference", 60*time.Second, "all points collected", func(tk stack.Task) bool {
		refEvents = e2eStat(tk, "alert", "alerts_triggered")
		return e2eStat(tk, "alert", "collected") == int64(len(lines)) && int64(len(ref.Requests())) == refEvents
	})
	require.NoError(t, err)
	_, err = k.WaitTask("chaos_squadcast", 60*time.Second, "the second half collected", func(tk stack.Task) bool {
		return e2eStat(tk, "squadcast", "collected") == int64(len(lines)-half)
	})
	require.NoError(t, err)

	// Wait until every reference event has been delivered, or give up
	// after a generous deadline and report what is missing.
	want := e2eByID(e2eDecode(t, ref.Requests()))
	var got map[string][]e2eEvent
	var problems []string
	deadline := time.Now().Add(180 * time.Second)
	for {
		got = e2eByID(e2eDecode(t, okRequests(chaos.Requests())))
		problems = chaosProblems(want, got)
		if len(problems) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	for _, p := range problems {
		t.Error(p)
	}

	delivered, repeats := 0, 0
	for _, evs := range got {
		delivered += len(evs)
	}
	for id := range want {
		repeats += len(got[id]) - len(dedupeEvents(got[id]))
	}
	t.Logf("reference: %d events over %d incidents; the daemon delivered %d (%d repeats after the crash) through %d answers of 503",
		len(ref.Requests()), len(want), delivered, repeats, countStatus(chaos.Requests(), http.StatusServiceUnavailable))
	assert.Equal(t, chaosFailures, countStatus(chaos.Requests(), http.StatusServiceUnavailable), "the daemon went through the whole outage")

	// Kapacitor's own .post() beside it, same outage: what it lost.
	builtinOK := e2eByID(e2eDecode(t, okRequests(builtin.Requests())))
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
		lost, len(ref.Requests()), lostRecoveries, openForever)
	assert.Positive(t, lost, "the built-in .post() never retries: the outage should cost it events")

	require.NoError(t, daemon.Stop(), "stopping the restarted daemon")
	for _, out := range []string{first.Output(), daemon.Output()} {
		assert.Empty(t, e2eLineWith(out, "CHAOSKEY"), "the webhook key appears in the daemon's output")
	}
}

// chaosProblems compares, per incident, the events the daemon delivered
// with the reference's: the first deliveries of distinct events must be the
// reference's events in order (nothing lost, nothing reordered, nothing
// made up), and the last delivered event must be the reference's last (the
// incident ends in the right state). It returns what is wrong, or nothing.
func chaosProblems(want, got map[string][]e2eEvent) []string {
	var problems []string
	for id, w := range want {
		g := got[id]
		firsts := dedupeEvents(g)
		n := min(len(w), len(firsts))
		for i := range n {
			for _, f := range e2eFields {
				if !assertEqualJSON(w[i][f], firsts[i][f]) {
					problems = append(problems, fmt.Sprintf("incident %s, event %d of %d: %s: reference %s, daemon %s", id, i, len(w), f, e2eJSON(w[i][f]), e2eJSON(firsts[i][f])))
					break
				}
			}
		}
		switch {
		case len(firsts) < len(w):
			problems = append(problems, fmt.Sprintf("incident %s: %d of %d events delivered", id, len(firsts), len(w)))
		case len(firsts) > len(w):
			problems = append(problems, fmt.Sprintf("incident %s: %d distinct events delivered, the reference has %d", id, len(firsts), len(w)))
		case eventKey(g[len(g)-1]) != eventKey(w[len(w)-1]):
			problems = append(problems, fmt.Sprintf("incident %s: the last delivery is %s, the reference's last event %s", id, eventKey(g[len(g)-1]), eventKey(w[len(w)-1])))
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			problems = append(problems, fmt.Sprintf("incident %s: delivered by the daemon, unknown to the reference", id))
		}
	}
	return problems
}

func refStats(k *stack.Kapacitord) string {
	a, _ := k.Task("chaos_reference")
	b, _ := k.Task("chaos_squadcast")
	return fmt.Sprintf("%v / %v", a.NodeStats, b.NodeStats)
}

func assertEqualJSON(a, b any) bool { return e2eJSON(a) == e2eJSON(b) }

// eventKey identifies an alert event: its id, time and level.
func eventKey(ev e2eEvent) string {
	return fmt.Sprintf("%v@%v=%v", ev["id"], ev["time"], ev["level"])
}

// dedupeEvents keeps the first occurrence of each event.
func dedupeEvents(evs []e2eEvent) []e2eEvent {
	seen := map[string]bool{}
	var out []e2eEvent
	for _, ev := range evs {
		if k := eventKey(ev); !seen[k] {
			seen[k] = true
			out = append(out, ev)
		}
	}
	return out
}

func okRequests(reqs []stack.Request) []stack.Request {
	var out []stack.Request
	for _, r := range reqs {
		if r.Status/100 == 2 {
			out = append(out, r)
		}
	}
	return out
}

func countStatus(reqs []stack.Request, status int) int {
	n := 0
	for _, r := range reqs {
		if r.Status == status {
			n++
		}
	}
	return n
}
