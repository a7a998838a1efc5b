package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/cmd/internal/stack"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// doctorE2EKey stands for a webhook key: doctor must never print it.
const doctorE2EKey = "E2eD0ct0rKey0123456789"

// TestDoctorE2E runs doctor against a real kapacitord holding one of each
// thing that posts to Squadcast directly: a task's .post('URL'), a
// [[httppost]] endpoint (and a task using it), a topic handler of kind
// post, and a broken @squadcast() task. The Squadcast host names are only
// matched in text: no point is written, so no alert fires and nothing is
// posted anywhere (the [[httppost]] endpoint's host is api.squadcast.com,
// the others squadcast.invalid, given with --squadcast-hosts).
func TestDoctorE2E(t *testing.T) {
	k := doctorStartKapacitord(t, map[string]string{
		"squadcast": "https://api.squadcast.com/v1/incidents/kapacitor/" + doctorE2EKey,
		"internal":  "http://127.0.0.1:1/hooks",
	})
	fake := "http://squadcast.invalid/v1/incidents/kapacitor/" + doctorE2EKey
	alert := "stream\n    |from()\n        .measurement('cpu')\n    |alert()\n        .crit(lambda: \"usage_idle\" < 10)\n"
	require.NoError(t, k.DefineTask("cpu_direct", alert+"        .post('"+fake+"')\n        .header('Content-Type', 'application/json')\n", e2eDBRPs, true))
	require.NoError(t, k.DefineTask("cpu_endpoint", alert+"        .post()\n        .endpoint('squadcast')\n", e2eDBRPs, true))
	require.NoError(t, k.DefineTask("cpu_relayed", alert+"        .post('http://127.0.0.1:9095/relay/default')\n        .post().endpoint('internal')\n", e2eDBRPs, true))
	require.NoError(t, k.DefineTask("cpu_topic", alert+"        .topic('cpu')\n", e2eDBRPs, true))
	require.NoError(t, k.DefineTopicHandler("cpu", stack.TopicHandler{ID: "to-squadcast", Kind: "post",
		Options: map[string]any{"url": fake, "headers": map[string]string{"X-Team": "ops"}}}))
	require.NoError(t, k.DefineTopicHandler("cpu", stack.TopicHandler{ID: "log", Kind: "log",
		Options: map[string]any{"path": filepath.Join(k.Dir, "alerts.log")}}))
	e2eDefineRunning(t, k, "udf_ok", "stream\n    |from()\n        .measurement('cpu')\n    @squadcast()\n        .crit('\"usage_idle\" < 10')\n")
	require.NoError(t, k.DefineTask("udf_broken", "stream\n    |from()\n        .measurement('cpu')\n    @squadcast()\n        .crit('\"usage_idle\" <')\n", e2eDBRPs, true))
	broken, err := k.WaitTaskError("udf_broken", 30*time.Second)
	require.NoError(t, err)

	code, out, errOut := runCLI("doctor", "--kapacitor-url", strings.Replace(k.URL, "http://", "http://admin:S3cretPw@", 1),
		"--squadcast-hosts", "squadcast.invalid")
	t.Logf("doctor's report:\n%s", out)
	assert.Equal(t, 1, code, "stderr: %s", errOut)
	assert.Empty(t, errOut)
	for _, secret := range []string{doctorE2EKey, "S3cretPw", "/v1/incidents"} {
		assert.NotContains(t, out, secret)
	}
	relay := "http://127.0.0.1:9095/relay/default"
	for _, want := range []string{
		"task cpu_direct: replace .post('http://squadcast.invalid/[redacted]') by .post('" + relay + "').header('Authorization', 'Bearer <token>')\n",
		`[[httppost]] squadcast: set url = "` + relay + `" (was https://api.squadcast.com/[redacted]) and headers = { Authorization = "Bearer <token>" } in kapacitor.conf, then restart Kapacitor; used by task cpu_endpoint` + "\n",
		`topic handler cpu/to-squadcast: set options.url to "` + relay + `" (was http://squadcast.invalid/[redacted])`,
		"@squadcast() task udf_broken: enabled but not executing (error: " + strings.Join(strings.Fields(broken.Error), " ") + ")",
		"4 finding(s)\n",
	} {
		assert.Contains(t, out, want)
	}
	assert.Contains(t, broken.Error, "failed to initialize")
	for _, absent := range []string{"cpu_relayed", "cpu_topic", "udf_ok", "internal", "cpu/log"} {
		assert.NotContains(t, out, absent)
	}

	// Without --squadcast-hosts, squadcast.invalid is not Squadcast's.
	code, out, _ = runCLI("doctor", "--kapacitor-url", k.URL)
	assert.Equal(t, 1, code)
	assert.NotContains(t, out, "cpu_direct")
	assert.NotContains(t, out, "cpu/to-squadcast")
	assert.Contains(t, out, "[[httppost]] squadcast: ")
	assert.Contains(t, out, "2 finding(s)\n")
}

// doctorStartKapacitord starts the daemon (for @squadcast() tasks; its
// default URL is a stand-in) and a kapacitord with the given [[httppost]]
// endpoints, all stopped by t.Cleanup.
func doctorStartKapacitord(t *testing.T, httppost map[string]string) *stack.Kapacitord {
	t.Helper()
	kapacitord := e2eKapacitord(t)
	dir, err := os.MkdirTemp("", "ksq-doctor-") // short: a unix socket path
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	standIn := stack.NewStandIn()
	t.Cleanup(standIn.Close)
	bin, err := stack.BuildDaemon(t.Context(), dir)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "data"), 0o755))
	d, err := stack.StartDaemon(stack.DaemonConfig{Binary: bin, Socket: filepath.Join(dir, "squadcast.sock"),
		DataDir: filepath.Join(dir, "data"), URL: standIn.URL + "/daemon"})
	require.NoError(t, err)
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Errorf("stopping the daemon: %v", err)
		}
	})
	k, err := stack.StartKapacitord(stack.KapacitordConfig{Binary: kapacitord, UDFSocket: d.Socket, HTTPPost: httppost})
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kapacitord log (tail):\n%s", k.LogTail(40))
		}
		k.Stop()
	})
	return k
}
