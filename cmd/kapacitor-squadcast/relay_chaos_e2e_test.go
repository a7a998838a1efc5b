package main

import (
	"encoding/json"
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

// TestE2ERelayChaos is the relay's promise, end to end: an event the relay
// answered 200 for reaches Squadcast, in order per incident, through an
// outage and a crash.
//
// One task of a real kapacitord posts every event twice: through a proxy
// (relaySniffer, which records what the relay acknowledged) to the relay,
// with the token in a .header(), and straight to stand-in C. The daemon's
// endpoint, stand-in A, and C each answer their first relayChaosFailures
// requests 503 with Retry-After: 1. relayChaosHosts hosts trigger and
// recover relayChaosPoints/2 times each, written in three parts:
//  1. the daemon is killed with SIGKILL right after the relay's
//     relayChaosKillAt-th answer of 200, in the middle of this part,
//     while A's outage keeps the acknowledged events pending;
//  2. with the daemon down: Kapacitor's .post() to the relay (the rest of
//     part 1, and part 2) gets no answer (502 from the proxy): those events
//     are Kapacitor's losses, not the daemon's, and nothing acknowledges
//     them;
//  3. after a restart on the same data dir and relay address.
//
// Per incident, the distinct bodies A accepted must be exactly the
// acknowledged ones, byte for byte and in order (a repeat after the crash
// is allowed). The log shows what Kapacitor's direct .post() lost to C's
// identical outage.
func TestE2ERelayChaos(t *testing.T) {
	r := startRelayChaos(t)
	r.defineTask(t)

	killed := r.killAtAck(relayChaosKillAt)
	r.write(t, 0, relayChaosPoints*2/5)
	r.crash(t, killed)
	r.awaitPosted(t, relayChaosPoints*2/5)
	r.write(t, relayChaosPoints*2/5, relayChaosPoints*3/5)
	part2 := r.awaitPosted(t, relayChaosPoints*3/5)
	_, acked := r.proxy.counts()
	require.Equal(t, relayChaosKillAt, acked, "the relay acknowledged nothing while the daemon was down")
	t.Logf("while the daemon was down, Kapacitor's .post() to the relay lost %d events (no answer): Kapacitor's losses, not the daemon's", part2-acked)

	r.rd.start(t)
	r.checkResumed(t)
	r.write(t, relayChaosPoints*3/5, relayChaosPoints)
	total := r.awaitPosted(t, relayChaosPoints)

	r.awaitDeliveries(t)
	assert.Equal(t, relayChaosFailures, countStatus(r.a.Requests(), http.StatusServiceUnavailable), "the daemon went through the whole outage")
	r.reportDirectLosses(t, total)
	r.rd.assertNoSecret(t)
}

const (
	// relayChaosFailures is how many requests A and C answer 503 before
	// they accept.
	relayChaosFailures = 300
	// relayChaosHosts is the number of hosts (groups, incidents).
	relayChaosHosts = 50
	// relayChaosPoints is the number of points per host, alternately
	// critical and OK: each is an event. A multiple of 5 (the parts).
	relayChaosPoints = 10
	// relayChaosKillAt is the number of events the relay acknowledges
	// before the daemon is killed: in the middle of the first part's
	// relayChaosHosts*relayChaosPoints*2/5 events.
	relayChaosKillAt = 120
	// relayChaosDirect is the path of the twin .post() on C.
	relayChaosDirect = "/direct"
)

// relayChaos is TestE2ERelayChaos's stack.
type relayChaos struct {
	// a is the daemon's endpoint; c gets Kapacitor's .post() directly.
	a, c  *stack.StandIn
	proxy *relaySniffer
	rd    *relayDaemon
	k     *stack.Kapacitord
	// deliveredAtKill is how many requests A had accepted at the kill.
	deliveredAtKill int
}

// startRelayChaos starts the failing stand-ins, the daemon (short backoffs,
// a worker per incident), the proxy to its relay and kapacitord, all
// stopped by t.Cleanup.
func startRelayChaos(t *testing.T) *relayChaos {
	t.Helper()
	kapacitord := e2eKapacitord(t)
	dir, err := os.MkdirTemp("", "ksq-rchaos-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	r := &relayChaos{a: stack.NewStandIn(), c: stack.NewStandIn()}
	t.Cleanup(r.a.Close)
	t.Cleanup(r.c.Close)
	r.a.FailFirst(relayChaosFailures, http.StatusServiceUnavailable, "1")
	r.c.FailFirst(relayChaosFailures, http.StatusServiceUnavailable, "1")

	r.rd = startRelayDaemon(t, dir, r.a, "--retry-max-wait", "2s", "--workers", strconv.Itoa(relayChaosHosts))
	r.proxy = newRelaySniffer(r.rd.relayAddr)
	t.Cleanup(r.proxy.Close)

	kapDir := filepath.Join(dir, "kapacitord")
	require.NoError(t, os.MkdirAll(kapDir, 0o755))
	r.k, err = stack.StartKapacitord(stack.KapacitordConfig{Binary: kapacitord, Dir: kapDir})
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kapacitord log (tail):\n%s", r.k.LogTail(60))
		}
		r.k.Stop()
	})
	return r
}

// defineTask defines relay_chaos: every event to the relay through the
// proxy, and to C.
func (r *relayChaos) defineTask(t *testing.T) {
	t.Helper()
	script := fmt.Sprintf(`stream
    |from()
        .measurement('cpu')
        .groupBy('host')
    |alert()
        .id('chaos:{{.Group}}')
        .crit(lambda: "usage_idle" < 10)
        .stateChangesOnly()
        .post('%s/relay/default')
        .header('Authorization', 'Bearer %s')
        .post('%s%s')
`, r.proxy.URL, relayE2EToken, r.c.URL, relayChaosDirect)
	e2eDefineRunning(t, r.k, "relay_chaos", script)
}

// write writes points [from, to) of every host: even points critical
// (usage_idle 5), odd ones OK (50), ten seconds apart.
func (r *relayChaos) write(t *testing.T, from, to int) {
	t.Helper()
	start := time.Date(2024, 8, 1, 0, 0, 0, 0, time.UTC)
	var lines []string
	for i := from; i < to; i++ {
		idle := 50.0
		if i%2 == 0 {
			idle = 5
		}
		for h := range relayChaosHosts {
			lines = append(lines, stack.Line(fmt.Sprintf("host-%02d", h), idle, 0, start.Add(time.Duration(i)*10*time.Second)))
		}
	}
	for i, body := range stack.Batches(lines, 250) {
		require.NoError(t, r.k.Write("telegraf", "autogen", body), "writing batch %d of points %d..%d", i, from, to)
	}
}

// awaitPosted waits until the alert node has taken the first points of
// every host and Kapacitor's .post() has sent each event it triggered to
// the proxy (whatever the answer) and to C, and returns that number of
// events: one per point.
func (r *relayChaos) awaitPosted(t *testing.T, points int) int {
	t.Helper()
	want := int64(points * relayChaosHosts)
	_, err := r.k.WaitTask("relay_chaos", 60*time.Second, fmt.Sprintf("%d events posted", want), func(tk stack.Task) bool {
		seen, _ := r.proxy.counts()
		return e2eStat(tk, "alert", "collected") == want && e2eStat(tk, "alert", "alerts_triggered") == want &&
			int64(seen) == want && int64(r.c.Count()) == want
	})
	seen, acked := r.proxy.counts()
	require.NoError(t, err, "the proxy saw %d requests (%d acknowledged), C %d", seen, acked, r.c.Count())
	return int(want)
}

// killAtAck makes the proxy kill the daemon (SIGKILL) right after the
// relay's acked-th answer of 200, before Kapacitor sees that answer, so
// in the middle of Kapacitor's posting. The channel closes once it is dead.
func (r *relayChaos) killAtAck(acked int) <-chan struct{} {
	killed := make(chan struct{})
	d := r.rd.daemon()
	r.proxy.AfterAck(func(n int) {
		if n == acked {
			d.Kill()
			close(killed)
		}
	})
	return killed
}

// crash waits for the kill and checks that the acknowledged events were
// still pending behind A's outage.
func (r *relayChaos) crash(t *testing.T, killed <-chan struct{}) {
	t.Helper()
	select {
	case <-killed:
	case <-time.After(60 * time.Second):
		seen, acked := r.proxy.counts()
		t.Fatalf("the relay acknowledged %d events of %d posted, want %d before the kill", acked, seen, relayChaosKillAt)
	}
	_, acked := r.proxy.counts()
	require.Equal(t, relayChaosKillAt, acked, "events acknowledged at the kill")
	failed, delivered := countStatus(r.a.Requests(), http.StatusServiceUnavailable), len(okRequests(r.a.Requests()))
	t.Logf("SIGKILL right after the relay's answer %d (Kapacitor still posting): A had answered %d requests 503, accepted %d", acked, failed, delivered)
	require.Less(t, failed, relayChaosFailures, "the outage must outlast the first daemon, or the crash tests nothing")
	require.Less(t, delivered, acked, "acknowledged events are pending at the crash")
	r.deliveredAtKill = delivered
}

// checkResumed checks that the restarted daemon found in its outbox every
// acknowledged event A had not accepted at the kill (and perhaps some it
// had, whose delivery the daemon had no time to record).
func (r *relayChaos) checkResumed(t *testing.T) {
	t.Helper()
	var m []string
	require.Eventually(t, func() bool {
		m = regexp.MustCompile(`"loaded the outbox","pending":(\d+)`).FindStringSubmatch(r.rd.daemon().Output())
		return m != nil
	}, 10*time.Second, 20*time.Millisecond, "the restarted daemon loads its outbox")
	pending, err := strconv.Atoi(m[1])
	require.NoError(t, err)
	t.Logf("the restarted daemon found %d events pending in its outbox", pending)
	require.GreaterOrEqual(t, pending, relayChaosKillAt-r.deliveredAtKill, "acknowledged and not delivered")
	require.LessOrEqual(t, pending, relayChaosKillAt, "acknowledged")
}

// awaitDeliveries waits until, for every incident, the distinct bodies A
// accepted are the acknowledged ones in order, or fails after a deadline
// showing the first difference.
func (r *relayChaos) awaitDeliveries(t *testing.T) {
	t.Helper()
	want := map[string][]string{}
	for _, s := range r.proxy.Seen() {
		if s.status == http.StatusOK {
			id := regexp.MustCompile(`"id":"([^"]*)"`).FindStringSubmatch(s.body)
			require.NotNil(t, id, "an acknowledged body without an id: %q", s.body)
			want[id[1]] = append(want[id[1]], s.body)
		}
	}
	require.Len(t, want, relayChaosHosts)
	var problems []string
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := relayBodiesByID(t, okRequests(r.a.Requests()))
		problems = relayChaosProblems(want, got)
		if len(problems) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for i, p := range problems {
		if i == 10 {
			t.Errorf("... and %d more", len(problems)-i)
			break
		}
		t.Error(p)
	}
	for i, req := range r.a.Requests() {
		assertNoTokenSent(t, req, fmt.Sprintf("A's request %d", i))
	}
	ok := okRequests(r.a.Requests())
	t.Logf("A accepted %d requests (%d repeats) for %d acknowledged events, after %d answers of 503",
		len(ok), len(ok)-countBodies(want), countBodies(want), countStatus(r.a.Requests(), http.StatusServiceUnavailable))
}

// relayChaosProblems compares per incident the first occurrences of the
// bodies delivered with the acknowledged ones; it returns the differences.
func relayChaosProblems(want, got map[string][]string) []string {
	var problems []string
	for id, w := range want {
		g := firstOccurrences(got[id])
		if strings.Join(g, "") == strings.Join(w, "") && len(g) == len(w) {
			continue
		}
		i := 0
		for i < min(len(w), len(g)) && w[i] == g[i] {
			i++
		}
		if i < min(len(w), len(g)) {
			wk, gk := relayEventKey(w[i]), relayEventKey(g[i])
			if wk == gk {
				gk += fmt.Sprintf(" with another body (%d bytes, acknowledged %d)", len(g[i]), len(w[i]))
			}
			problems = append(problems, fmt.Sprintf("incident %s: distinct delivery %d of %d: acknowledged %s, delivered %s", id, i, len(w), wk, gk))
		} else {
			problems = append(problems, fmt.Sprintf("incident %s: %d distinct events delivered, %d acknowledged", id, len(g), len(w)))
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			problems = append(problems, fmt.Sprintf("incident %s: delivered, never acknowledged", id))
		}
	}
	return problems
}

// relayEventKey says which event a body is: its time and level.
func relayEventKey(body string) string {
	var ev struct{ Time, Level string }
	if err := json.Unmarshal([]byte(body), &ev); err != nil {
		return fmt.Sprintf("%q", body)
	}
	return ev.Time + "=" + ev.Level
}

func countBodies(m map[string][]string) int {
	n := 0
	for _, bodies := range m {
		n += len(bodies)
	}
	return n
}

// reportDirectLosses logs what Kapacitor's direct .post() to C lost to
// the same outage: events C never accepted, recoveries among them, and
// incidents whose last accepted event is not the last sent.
func (r *relayChaos) reportDirectLosses(t *testing.T, total int) {
	t.Helper()
	sent := relayBodiesByID(t, r.c.Requests())
	accepted := relayBodiesByID(t, okRequests(r.c.Requests()))
	lost, lostRecoveries, wrongState := 0, 0, 0
	for _, req := range r.c.Requests() {
		if req.Status/100 != 2 {
			lost++
			if strings.Contains(string(req.Body), `"level":"OK"`) {
				lostRecoveries++
			}
		}
	}
	for id, bodies := range sent {
		acc := accepted[id]
		if len(acc) == 0 || acc[len(acc)-1] != bodies[len(bodies)-1] {
			wrongState++
		}
	}
	t.Logf("Kapacitor's direct .post() against the same outage: lost %d of %d events (%d of them recoveries); %d of %d incidents left in the wrong state",
		lost, total, lostRecoveries, wrongState, len(sent))
	assert.Equal(t, total, r.c.Count(), "C got every event once")
}
