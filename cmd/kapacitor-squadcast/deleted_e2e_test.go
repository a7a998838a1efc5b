package main

import (
	"fmt"
	"io"
	"net/http"
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

// deletedE2EPath is where the daemon's default endpoint posts, on the stand-in.
const deletedE2EPath = "/v1/incidents/kapacitor/DELETEDKEY"

// deletedTick alerts per host, with the task's name in the alert id (the
// tasks of the test see the same points).
const deletedTick = "stream\n    |from()\n        .measurement('cpu')\n        .groupBy('host')\n" +
	"    @squadcast()\n        .crit('\"usage_idle\" < 10')\n        .id('{{ .TaskName }}:{{ .Group }}')\n"

// deletedE2E is a stand-in, a daemon with --resolve-deleted-tasks and a
// kapacitord that can be stopped and started again on the same address
// and data.
type deletedE2E struct {
	standIn     *stack.StandIn
	daemon      *stack.Daemon
	kap         *stack.Kapacitord
	kapCfg      stack.KapacitordConfig
	dataDir     string
	metricsAddr string
}

func startDeletedE2E(t *testing.T) *deletedE2E {
	t.Helper()
	kapacitord := e2eKapacitord(t)
	dir, err := os.MkdirTemp("", "ksq-deleted-") // short: a unix socket path
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	e := &deletedE2E{standIn: stack.NewStandIn(), dataDir: filepath.Join(dir, "data")}
	t.Cleanup(e.standIn.Close)
	kapAddr, err := stack.FreeAddr()
	require.NoError(t, err)
	e.metricsAddr, err = stack.FreeAddr()
	require.NoError(t, err)
	bin, err := stack.BuildDaemon(t.Context(), dir)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(e.dataDir, 0o755))
	e.daemon, err = stack.StartDaemon(stack.DaemonConfig{Binary: bin, Socket: filepath.Join(dir, "squadcast.sock"),
		DataDir: e.dataDir, URL: e.standIn.URL + deletedE2EPath,
		Args: []string{"--kapacitor-url", "http://admin:S3cretPw@" + kapAddr, "--resolve-deleted-tasks",
			"--kapacitor-check-interval", "300ms", "--listen", e.metricsAddr}})
	require.NoError(t, err)
	t.Cleanup(func() {
		if e.daemon.Alive() {
			e.kap.Stop()
			assert.NoError(t, e.daemon.Stop())
		}
		if t.Failed() {
			t.Logf("daemon output (tail):\n%s", e2eTail(e.daemon.Output(), 60))
		}
	})
	e.kapCfg = stack.KapacitordConfig{Binary: kapacitord, Dir: filepath.Join(dir, "kapacitord"), Addr: kapAddr, UDFSocket: e.daemon.Socket}
	e.startKapacitord(t)
	return e
}

// startKapacitord starts kapacitord (again: same address, same data).
func (e *deletedE2E) startKapacitord(t *testing.T) { t.Helper(); e.startKapacitordIn(t, e.kapCfg.Dir) }

// startKapacitordIn starts kapacitord on the same address, with its data
// in dir: another Kapacitor for a dir of its own.
func (e *deletedE2E) startKapacitordIn(t *testing.T, dir string) {
	t.Helper()
	cfg := e.kapCfg
	cfg.Dir = dir
	k, err := stack.StartKapacitord(cfg)
	require.NoError(t, err)
	e.kap = k
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kapacitord log (tail):\n%s", k.LogTail(40))
		}
		k.Stop()
	})
}

// logCount counts the daemon's log lines with this message.
func (e *deletedE2E) logCount(msg string) int {
	return strings.Count(e.daemon.Output(), `"msg":"`+msg+`"`)
}

// awaitChecks waits until the daemon logged n more lines with this message.
func (e *deletedE2E) awaitChecks(t *testing.T, msg string, n int) {
	t.Helper()
	want := e.logCount(msg) + n
	require.Eventually(t, func() bool { return e.logCount(msg) >= want }, 60*time.Second, 20*time.Millisecond,
		"%d more %q", n, msg)
}

// TestE2EResolveDeletedTasks: with --resolve-deleted-tasks, deleting a task
// whose two hosts are CRITICAL resolves both incidents (OK events with the
// incident's id, previousLevel CRITICAL and the reason) and drops its
// saved state; a disabled task's incidents stay open, also while
// Kapacitor is stopped and after it started again; the resolutions are
// counted in the metric; the log shows neither the password in
// --kapacitor-url nor the webhook key.
func TestE2EResolveDeletedTasks(t *testing.T) {
	e := startDeletedE2E(t)
	e2eDefineRunning(t, e.kap, "del_cpu", deletedTick)
	e2eDefineRunning(t, e.kap, "dis_cpu", deletedTick)
	now := time.Now()
	require.NoError(t, e.kap.Write("telegraf", "autogen", fmt.Sprintf("cpu,host=a usage_idle=5 %d\ncpu,host=b usage_idle=3 %d",
		now.UnixNano(), now.Add(time.Millisecond).UnixNano())))
	_, err := e.standIn.WaitFor(4, 60*time.Second)
	require.NoError(t, err, "two CRITICAL events per task")
	// A task's absence counts only once this Kapacitor has listed it: a
	// check that started after the events lists both tasks.
	e.awaitChecks(t, "checked for deleted tasks", 2)

	require.NoError(t, e.kap.DisableTask("dis_cpu"))
	require.NoError(t, e.kap.DeleteTask("del_cpu"))
	reqs, err := e.standIn.WaitFor(6, 60*time.Second)
	require.NoError(t, err, "the deleted task's two incidents resolved")
	t.Logf("a resolution: %s", reqs[4].Body)
	oks := e2eByID(e2eDecode(t, reqs[4:]))
	for _, host := range []string{"a", "b"} {
		id := "del_cpu:host=" + host
		require.Len(t, oks[id], 1, "one OK for %s", id)
		ev := oks[id][0]
		assert.Equal(t, "OK", ev["level"], id)
		assert.Equal(t, "CRITICAL", ev["previousLevel"], id)
		assert.Equal(t, id+" is OK (task del_cpu deleted)", ev["message"])
		assert.Equal(t, true, ev["recoverable"])
		assert.Regexp(t, `^\d+$`, fmt.Sprint(ev["duration"]))
	}
	for _, r := range reqs {
		assert.Equal(t, deletedE2EPath, r.Path)
	}
	require.Eventually(t, func() bool {
		return strings.Contains(e.daemon.Output(), `"msg":"resolved the open incidents of a task deleted from Kapacitor and dropped its alert state","task":"del_cpu","incidents":2,"nodes":1`)
	}, 30*time.Second, 20*time.Millisecond, "the log names the task and its incidents")
	assert.Contains(t, deletedMetric(t, e.metricsAddr), `kapacitor_squadcast_deleted_task_resolutions_total{endpoint="default"} 2`)

	// Kapacitor stopped for a while: the checks fail, nothing is resolved;
	// started again, the disabled task is still listed: kept.
	e.kap.Stop()
	e.awaitChecks(t, "checked for deleted tasks: Kapacitor's task list cannot be read", 5)
	e.startKapacitord(t)
	e.awaitChecks(t, "checked for deleted tasks", 5)
	assert.Len(t, e.standIn.Requests(), 6, "nothing more was sent: the disabled task's incidents stay open")
	assert.Equal(t, 1, e.logCount("cannot read Kapacitor's task list: no task counts as deleted until it answers"))

	e.checkOtherKapacitor(t)

	e.kap.Stop()
	require.NoError(t, e.daemon.Stop())
	out := e.daemon.Output()
	for _, secret := range []string{"S3cretPw", "DELETEDKEY"} {
		assert.NotContains(t, out, secret)
	}
	code, list, errOut := runCLI("state", "list", "--data-dir", e.dataDir)
	require.Equal(t, 0, code, errOut)
	assert.Regexp(t, regexp.MustCompile(`(?m)^dis_cpu +squadcast2 +2 +2 +0 +0 `), list)
	assert.NotContains(t, list, "del_cpu")
}

// checkOtherKapacitor: another Kapacitor (a fresh kapacitord on a new
// data dir, so a new server_id, and no task) answering at the URL makes
// the saved task dis_cpu look deleted: it is kept, its incidents stay
// open, and the daemon says so once, naming both Kapacitors' server IDs.
// The first Kapacitor back, the task is listed again: still kept.
func (e *deletedE2E) checkOtherKapacitor(t *testing.T) {
	t.Helper()
	firstDir := e.kap.Dir
	e.kap.Stop()
	e.startKapacitordIn(t, filepath.Join(filepath.Dir(e.kapCfg.Dir), "kapacitord-fresh"))
	e.awaitChecks(t, "checked for deleted tasks", 5)
	assert.Len(t, e.standIn.Requests(), 6, "nothing was resolved for another Kapacitor")
	first, err := os.ReadFile(filepath.Join(firstDir, "server.id"))
	require.NoError(t, err)
	fresh, err := os.ReadFile(filepath.Join(e.kap.Dir, "server.id"))
	require.NoError(t, err)
	require.NotEqual(t, string(first), string(fresh))
	const kept = `"msg":"a task that saved alert state is not in Kapacitor's task list, but this Kapacitor never listed it: its alert state and incidents are kept.`
	out := e.daemon.Output()
	assert.Equal(t, 1, strings.Count(out, kept), "logged once")
	assert.Regexp(t, regexp.QuoteMeta(kept)+`[^\n]*"task":"dis_cpu","server_id":"`+string(fresh)+`","listed_by":"`+string(first)+`"`, out)

	e.kap.Stop()
	e.startKapacitordIn(t, firstDir)
	e.awaitChecks(t, "checked for deleted tasks", 5)
	assert.Len(t, e.standIn.Requests(), 6, "the first Kapacitor lists the disabled task: kept")
}

// deletedMetric returns the daemon's /metrics.
func deletedMetric(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}
