package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/cmd/internal/stack"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The .resolveStale() tests run tickscripts/cpu_squadcast_stale.tick
// (.resolveStale(2s)) in a real kapacitord: web-1 and web-2 go CRITICAL,
// web-1 then sends nothing while web-2 keeps reporting.

const (
	staleTask  = "cpu_squadcast_stale"
	staleWeb1  = "cpu:host=web-1"
	staleWeb2  = "cpu:host=web-2"
	staleAfter = 2 * time.Second
)

// staleEvent is the part of the daemon's Kapacitor-format body the tests read.
type staleEvent struct {
	ID            string    `json:"id"`
	Message       string    `json:"message"`
	Time          time.Time `json:"time"`
	Duration      int64     `json:"duration"`
	Level         string    `json:"level"`
	PreviousLevel string    `json:"previousLevel"`
}

// staleRun writes points of the stale task's hosts, at the wall clock's
// time, and reads what reached the stand-in.
type staleRun struct {
	t  *testing.T
	st *e2eStack

	mu   sync.Mutex
	last map[string]time.Time // the time of each host's last point
}

func startStaleRun(t *testing.T, args ...string) *staleRun {
	t.Helper()
	st := e2eStartWith(t, e2eDaemonPath, false, args...)
	e2eDefineRunning(t, st.kap, staleTask, e2eTick(t, "cpu_squadcast_stale.tick"))
	return &staleRun{t: t, st: st, last: map[string]time.Time{}}
}

// write writes one point of host with usage_idle v, at the wall clock's time.
func (r *staleRun) write(host string, v float64) error {
	now := time.Now()
	if err := r.st.kap.Write("telegraf", "autogen", fmt.Sprintf("cpu,host=%s usage_idle=%g %d", host, v, now.UnixNano())); err != nil {
		return err
	}
	r.mu.Lock()
	r.last[host] = now
	r.mu.Unlock()
	return nil
}

func (r *staleRun) lastPoint(host string) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last[host]
}

// keepReporting writes a CRITICAL point of host every 300ms (well within
// the task's 2s) until the returned function is called.
func (r *staleRun) keepReporting(host string) (stop func()) {
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				_ = r.write(host, 5) // Kapacitor takes writes whatever the daemon does
			}
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { close(done); <-stopped }) }
	r.t.Cleanup(stop)
	return stop
}

// events returns the events that reached the stand-in, by id, in order.
func (r *staleRun) events() map[string][]staleEvent {
	out := map[string][]staleEvent{}
	for _, req := range r.st.standIn.RequestsTo(e2eDaemonPath) {
		var ev staleEvent
		require.NoError(r.t, json.Unmarshal(req.Body, &ev), "%s", req.Body)
		out[ev.ID] = append(out[ev.ID], ev)
	}
	return out
}

// levels returns the levels of id's events.
func (r *staleRun) levels(id string) []string {
	var out []string
	for _, ev := range r.events()[id] {
		out = append(out, ev.Level)
	}
	return out
}

// await waits until id's events have the given levels.
func (r *staleRun) await(id string, want []string, what string) {
	r.t.Helper()
	require.Eventually(r.t, func() bool { return strings.Join(r.levels(id), " ") == strings.Join(want, " ") },
		60*time.Second, 50*time.Millisecond, "%s: %s should have sent %v, sent %v", what, id, want, r.levels(id))
}

// checkStaleOK checks web-1's stale resolution: the usual OK of its
// incident, saying why, never earlier than 2s after its last point nor
// than notBefore.
func (r *staleRun) checkStaleOK(ev staleEvent, trigger staleEvent, notBefore time.Time) {
	t := r.t
	t.Helper()
	assert.Equal(t, "OK", ev.Level)
	assert.Equal(t, "CRITICAL", ev.PreviousLevel)
	assert.Equal(t, staleWeb1+" is OK (no data for 2s)", ev.Message)
	last := r.lastPoint("web-1")
	assert.False(t, ev.Time.Before(last.Add(staleAfter)), "never early: resolved at %s, last point at %s", ev.Time, last)
	assert.False(t, ev.Time.Before(notBefore), "never early: resolved at %s, not before %s", ev.Time, notBefore)
	assert.Equal(t, ev.Time.Sub(trigger.Time).Nanoseconds(), ev.Duration, "duration: from the trigger's point to the resolution")
}

// TestE2EResolveStale: web-1's incident is resolved once it has sent
// nothing for 2s, web-2's (reporting) is not; web-1 reporting again opens
// a new incident; the resolutions are counted by endpoint.
func TestE2EResolveStale(t *testing.T) {
	r := startStaleRun(t, "--listen", "127.0.0.1:0")
	require.NoError(t, r.write("web-1", 5))
	require.NoError(t, r.write("web-2", 5))
	stopWeb2 := r.keepReporting("web-2")
	r.await(staleWeb1, []string{"CRITICAL", "OK"}, "web-1 is resolved")

	evs := r.events()
	r.checkStaleOK(evs[staleWeb1][1], evs[staleWeb1][0], time.Time{})
	// web-2 goes on reporting for longer than 2s: it is not resolved.
	time.Sleep(3 * staleAfter / 2)
	assert.Equal(t, []string{"CRITICAL"}, r.levels(staleWeb2), "web-2 keeps reporting: its incident stays open")

	// web-1 reports again: a new incident.
	require.NoError(t, r.write("web-1", 5))
	r.await(staleWeb1, []string{"CRITICAL", "OK", "CRITICAL"}, "web-1 alerts afresh")
	again := r.events()[staleWeb1][2]
	assert.Equal(t, "OK", again.PreviousLevel, "a new incident")
	assert.Zero(t, again.Duration)

	// web-2 stops: it is resolved in turn, as web-1's new incident is.
	stopWeb2()
	r.await(staleWeb2, []string{"CRITICAL", "OK"}, "web-2 is resolved once silent")
	r.await(staleWeb1, []string{"CRITICAL", "OK", "CRITICAL", "OK"}, "web-1's new incident is resolved")

	base := metricsAddr(t, r.st.daemon.Output)
	_, page := scrape(t, base, "/metrics")
	assert.Equal(t, 3.0, metricValue(page, `kapacitor_squadcast_stale_resolutions_total{endpoint="default"}`), "web-1 twice, web-2 once")
	assert.Equal(t, 0.0, metricValue(page, `kapacitor_squadcast_stale_resolutions_total{endpoint="inline"}`))
	assert.NotContains(t, page, e2eSecret)
}

// TestE2EResolveStaleAcrossRestart: the daemon restarts while web-1 is
// silent; the restarted daemon (--kapacitor-url restarts the task) starts
// web-1's clock again from the saved state and resolves it, once, 2s
// after the restart at the earliest; web-2, reporting, is not resolved
// and not triggered again.
func TestE2EResolveStaleAcrossRestart(t *testing.T) {
	r := startStaleRun(t)
	require.NoError(t, r.write("web-1", 5))
	require.NoError(t, r.write("web-2", 5))
	r.keepReporting("web-2")
	r.await(staleWeb1, []string{"CRITICAL"}, "web-1 triggers")
	r.await(staleWeb2, []string{"CRITICAL"}, "web-2 triggers")

	require.NoError(t, r.st.daemon.Stop(), "the daemon stops cleanly")
	require.Equal(t, []string{"CRITICAL"}, r.levels(staleWeb1), "stopped before web-1's 2s were up")
	restarted := time.Now()
	cfg := r.st.daemonCfg
	cfg.Args = append(append([]string(nil), cfg.Args...), "--kapacitor-url", r.st.kap.URL)
	d, err := stack.StartDaemon(cfg)
	require.NoError(t, err)
	r.st.daemon = d // stopped by the stack's cleanup
	require.Eventually(t, func() bool {
		return strings.Contains(e2eLineWith(d.Output(), "restarted task left on a previous daemon's connection"), `"`+staleTask+`"`)
	}, 60*time.Second, 100*time.Millisecond, "the restarted daemon restarts %s", staleTask)

	r.await(staleWeb1, []string{"CRITICAL", "OK"}, "web-1 is resolved after the restart")
	evs := r.events()
	r.checkStaleOK(evs[staleWeb1][1], evs[staleWeb1][0], restarted.Add(staleAfter))
	time.Sleep(3 * staleAfter / 2)
	assert.Equal(t, []string{"CRITICAL", "OK"}, r.levels(staleWeb1), "resolved once")
	assert.Equal(t, []string{"CRITICAL"}, r.levels(staleWeb2), "web-2 keeps reporting: neither resolved nor triggered again")
	assert.Contains(t, d.Output(), "resolved groups that received no data")

	require.NoError(t, r.write("web-1", 5))
	r.await(staleWeb1, []string{"CRITICAL", "OK", "CRITICAL"}, "web-1 alerts afresh")
	assert.Equal(t, "OK", r.events()[staleWeb1][2].PreviousLevel, "a new incident")
}
