package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/cmd/internal/stack"
)

const (
	// prioWarnings is how many hosts turn WARNING at once: at
	// prioRate, a backlog of about 12 seconds.
	prioWarnings = 60
	prioRate     = "300/m" // 5 requests a second
	// prioOvertake is the most WARNING triggers that may reach the stand-in
	// between the writing of the CRITICAL points and each CRITICAL trigger.
	// First-in first-out, the CRITICALs would wait behind the whole
	// backlog (at least prioMinBacklog); by priority, behind the
	// requests that go while Kapacitor and the daemon take the points
	// (a second or two of slots under -race on slow machines, not 4).
	prioOvertake = 20
	// prioMinBacklog is the fewest WARNING triggers that must still wait
	// when the CRITICAL points are written, for the test to tell priority
	// from first-in first-out.
	prioMinBacklog = 2 * prioOvertake
)

// TestE2EPriorityCriticalOvertakesWarnings: on a rate-limited endpoint
// (--rate-limit 300/m), a late CRITICAL overtakes a backlog of WARNINGs.
// prioWarnings hosts turn WARNING at once; once the daemon has taken all
// their events and the first have reached the stand-in, three new hosts
// turn CRITICAL, and so does the last WARNING host. Each new CRITICAL
// trigger reaches the stand-in before prioOvertake more WARNINGs have (in
// request order), while at least prioMinBacklog WARNINGs were still
// waiting; every event is delivered in the end, once, each incident's in
// order (the last host's WARNING before its CRITICAL).
func TestE2EPriorityCriticalOvertakesWarnings(t *testing.T) {
	st := e2eStartWith(t, e2eDaemonPath, false, "--rate-limit", prioRate)
	k := st.kap
	// A child node makes Kapacitor count the points the daemon emits, one
	// per event once it is durable: how the test knows the daemon holds
	// every WARNING before it writes the CRITICAL points.
	e2eDefineRunning(t, k, "prio", e2eTick(t, "cpu_squadcast.tick")+"\n    |httpOut('events')\n")

	start := time.Date(2024, 8, 1, 0, 0, 0, 0, time.UTC)
	warnHosts := make([]string, prioWarnings)
	var lines []string
	for i := range warnHosts {
		warnHosts[i] = fmt.Sprintf("warn-%02d", i)
		lines = append(lines, stack.Line(warnHosts[i], 20, 8, start))
	}
	require.NoError(t, k.Write("telegraf", "autogen", strings.Join(lines, "\n")))
	_, err := k.WaitTask("prio", 30*time.Second, "one event per WARNING host", func(tk stack.Task) bool {
		return e2eStat(tk, "squadcast", "collected") == prioWarnings && e2eStat(tk, "squadcast", "emitted") == prioWarnings
	})
	require.NoError(t, err)
	_, err = st.standIn.WaitFor(3, 30*time.Second)
	require.NoError(t, err, "the first WARNINGs")

	// Three new hosts CRITICAL, and the last WARNING host escalating: its
	// CRITICAL must wait for its own WARNING.
	critHosts := []string{"crit-0", "crit-1", "crit-2"}
	escalated := warnHosts[len(warnHosts)-1]
	lines = lines[:0]
	for _, host := range append(critHosts, escalated) {
		lines = append(lines, stack.Line(host, 5, 10, start.Add(10*time.Second)))
	}
	written := st.standIn.Count()
	require.NoError(t, k.Write("telegraf", "autogen", strings.Join(lines, "\n")))

	total := prioWarnings + len(critHosts) + 1
	_, err = st.standIn.WaitFor(total, 45*time.Second)
	require.NoError(t, err, "every event")
	time.Sleep(500 * time.Millisecond) // let late extras show up before counting
	reqs := st.standIn.Requests()
	evs := e2eDecode(t, reqs)
	for i, r := range reqs {
		assert.Equal(t, e2eDaemonPath, r.Path, "request %d", i)
	}

	want := map[string][]string{}
	for _, host := range warnHosts {
		want["cpu:host="+host] = []string{"WARNING"}
	}
	want["cpu:host="+escalated] = []string{"WARNING", "CRITICAL"}
	for _, host := range critHosts {
		want["cpu:host="+host] = []string{"CRITICAL"}
	}
	require.Equal(t, want, tickLevels(evs), "every event delivered once, each incident's in order")

	backlog := prioWarnings - prioCount(evs[:written], "WARNING")
	require.GreaterOrEqual(t, backlog, prioMinBacklog,
		"WARNINGs still waiting when the CRITICAL points were written (%d requests had arrived): too few to tell priority from first-in first-out", written)
	for _, host := range critHosts {
		i := prioIndex(evs, "cpu:host="+host)
		require.GreaterOrEqual(t, i, written, "%s's CRITICAL arrived before its point was written", host)
		overtaken := prioCount(evs[written:i], "WARNING")
		assert.Less(t, overtaken, prioOvertake,
			"%s's CRITICAL is request %d (0-based); %d WARNINGs went between the writing of the CRITICAL points (%d requests had arrived) and it, of the %d waiting",
			host, i, overtaken, written, backlog)
		t.Logf("%s's CRITICAL: request %d (0-based), after %d of the %d waiting WARNINGs (points written when %d requests had arrived; %s after the first request)",
			host, i, overtaken, backlog, written, reqs[i].Received.Sub(reqs[0].Received).Round(time.Millisecond))
	}
	last := reqs[len(reqs)-1].Received.Sub(reqs[0].Received)
	t.Logf("%d events in %s at %s", len(reqs), last.Round(time.Millisecond), prioRate)
}

// prioCount returns how many of evs are at level.
func prioCount(evs []e2eEvent, level string) int {
	n := 0
	for _, ev := range evs {
		if fmt.Sprint(ev["level"]) == level {
			n++
		}
	}
	return n
}

// prioIndex returns the index of the first event of id in evs, or -1.
func prioIndex(evs []e2eEvent, id string) int {
	for i, ev := range evs {
		if fmt.Sprint(ev["id"]) == id {
			return i
		}
	}
	return -1
}
