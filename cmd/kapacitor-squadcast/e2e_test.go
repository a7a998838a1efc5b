package main

// End-to-end tests: a real kapacitord (v1.5.9, $KAPACITORD, built by
// `make kapacitord`) drives the real kapacitor-squadcast binary over its
// socket, and a stand-in for Squadcast records what arrives. Without
// $KAPACITORD they skip, unless KAPACITOR_SQUADCAST_E2E=required (as `make
// test` sets), when they fail.

import (
	"fmt"
	"sort"
	"strings"
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
