package main

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/cmd/internal/stack"
)

func exampleFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", name))
	require.NoError(t, err)
	return string(b)
}

// unitDirectives parses a systemd unit: joins continued lines and returns
// each directive's values (comments and section headers skipped).
func unitDirectives(t *testing.T, unit string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	var cont strings.Builder
	sc := bufio.NewScanner(strings.NewReader(unit))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cont.Len() == 0 && (line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[")) {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			cont.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		cont.WriteString(line)
		key, value, ok := strings.Cut(cont.String(), "=")
		require.True(t, ok, "unit line without '=': %q", cont.String())
		out[key] = append(out[key], value)
		cont.Reset()
	}
	require.NoError(t, sc.Err())
	return out
}

// TestE2EExamples runs what examples/ describes: the daemon with the
// command line of kapacitor-squadcast.service (paths moved to a temporary
// directory) and the variable of kapacitor-squadcast.env, and a real
// kapacitord whose config, like the stock kapacitor.conf, already has the
// [udf] and [udf.functions] tables, with examples/kapacitor.conf appended.
// The cpu script must then open and resolve an incident. It also checks
// that the files agree with each other (socket path, directories).
func TestE2EExamples(t *testing.T) {
	kapacitord := e2eKapacitord(t)
	flags := exampleUnitFlags(t)
	checkExampleEnv(t)
	conf := exampleKapacitorConf(t, flags)

	ex := startExampleDaemon(t, flags)
	ex.startKapacitord(t, kapacitord, flags, conf)
	ex.checkIncident(t)
	ex.checkKapacitorURL(t)
}

// exampleUnitFlags checks kapacitor-squadcast.service (its command line is
// the binary, "serve", then --flag value pairs; the socket in the
// RuntimeDirectory, the data dir the StateDirectory, the environment file)
// and returns the flags of its command line.
func exampleUnitFlags(t *testing.T) map[string]string {
	t.Helper()
	unit := unitDirectives(t, exampleFile(t, "kapacitor-squadcast.service"))

	require.Len(t, unit["ExecStart"], 1)
	args := strings.Fields(unit["ExecStart"][0])
	require.GreaterOrEqual(t, len(args), 2)
	assert.Equal(t, "/usr/local/bin/kapacitor-squadcast", args[0], "ExecStart binary (make install's default BINDIR)")
	require.Equal(t, "serve", args[1])
	flags := map[string]string{}
	for i := 2; i < len(args); i += 2 {
		require.True(t, strings.HasPrefix(args[i], "--") && i+1 < len(args), "ExecStart: expected --flag value at %q", args[i:])
		flags[args[i]] = args[i+1]
	}
	require.Equal(t, []string{"kapacitor-squadcast"}, unit["RuntimeDirectory"])
	require.Equal(t, []string{"kapacitor-squadcast"}, unit["StateDirectory"])
	assert.Equal(t, "/run/kapacitor-squadcast", filepath.Dir(flags["--socket"]), "the socket is in the RuntimeDirectory")
	assert.Equal(t, "/run/kapacitor-squadcast", filepath.Dir(flags["--batch-socket"]), "the batch socket is in the RuntimeDirectory")
	assert.Equal(t, "/var/lib/kapacitor-squadcast", flags["--data-dir"], "the data dir is the StateDirectory")
	assert.Equal(t, []string{"/etc/default/kapacitor-squadcast"}, unit["EnvironmentFile"])
	return flags
}

// checkExampleEnv: the environment file sets SQUADCAST_WEBHOOK_URL and
// nothing else.
func checkExampleEnv(t *testing.T) {
	t.Helper()
	var envKeys []string
	for line := range strings.Lines(exampleFile(t, "kapacitor-squadcast.env")) {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			k, _, _ := strings.Cut(line, "=")
			envKeys = append(envKeys, k)
		}
	}
	require.Equal(t, []string{"SQUADCAST_WEBHOOK_URL"}, envKeys)
}

// exampleKapacitorConf returns the kapacitor.conf snippet, checking it
// points at the unit's sockets.
func exampleKapacitorConf(t *testing.T, flags map[string]string) string {
	t.Helper()
	conf := exampleFile(t, "kapacitor.conf")
	require.Contains(t, conf, `socket = "`+flags["--socket"]+`"`, "kapacitor.conf and the unit name the same socket")
	require.Contains(t, conf, `socket = "`+flags["--batch-socket"]+`"`, "kapacitor.conf and the unit name the same batch socket")
	return conf
}

// exampleStack is TestE2EExamples's stand-in, daemon and kapacitord, with
// the temporary paths that replace the examples' own.
type exampleStack struct {
	dir, socket, batchSocket string
	// addr is kapacitord's HTTP address, which --kapacitor-url is given.
	addr    string
	standIn *stack.StandIn
	daemon  *stack.Daemon
	kap     *stack.Kapacitord
}

// startExampleDaemon starts the daemon with the unit's flags (paths moved
// to a temporary directory) and the environment file's variable.
func startExampleDaemon(t *testing.T, flags map[string]string) *exampleStack {
	t.Helper()
	dir, err := os.MkdirTemp("", "ksq-ex-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	ex := &exampleStack{dir: dir, socket: filepath.Join(dir, "squadcast.sock"), batchSocket: filepath.Join(dir, "squadcast_batch.sock")}
	ex.standIn = stack.NewStandIn()
	t.Cleanup(ex.standIn.Close)
	ex.addr, err = stack.FreeAddr()
	require.NoError(t, err)

	var extra []string
	for flag, value := range flags {
		switch flag {
		case "--socket", "--data-dir": // StartDaemon passes the temporary ones
		case "--batch-socket":
			extra = append(extra, flag, ex.batchSocket)
		case "--kapacitor-url":
			extra = append(extra, flag, "http://"+ex.addr)
		default:
			extra = append(extra, flag, value)
		}
	}
	bin, err := stack.BuildDaemon(t.Context(), dir)
	require.NoError(t, err)
	ex.daemon, err = stack.StartDaemon(stack.DaemonConfig{
		Binary:  bin,
		Socket:  ex.socket,
		DataDir: filepath.Join(dir, "data"),
		Args:    extra,
		Env:     []string{"SQUADCAST_WEBHOOK_URL=" + ex.standIn.URL + e2eDaemonPath},
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon output (tail):\n%s", e2eTail(ex.daemon.Output(), 60))
		}
	})
	return ex
}

// startKapacitord starts kapacitord with a config that, like the stock
// kapacitor.conf, already has the [udf] and [udf.functions] tables, with
// the snippet appended (its sockets moved to the temporary ones). Its
// cleanup stops kapacitord, then the daemon.
func (ex *exampleStack) startKapacitord(t *testing.T, kapacitord string, flags map[string]string, conf string) {
	t.Helper()
	kapDir := filepath.Join(ex.dir, "kapacitord")
	require.NoError(t, os.MkdirAll(kapDir, 0o755))
	k, err := stack.StartKapacitord(stack.KapacitordConfig{
		Binary: kapacitord,
		Dir:    kapDir,
		Addr:   ex.addr,
		// As in the stock kapacitor.conf, then the snippet appended.
		ExtraConfig: "[udf]\n[udf.functions]\n\n" + strings.NewReplacer(flags["--socket"], ex.socket, flags["--batch-socket"], ex.batchSocket).Replace(conf),
	})
	require.NoError(t, err)
	ex.kap = k
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kapacitord log (tail):\n%s", k.LogTail(60))
		}
		k.Stop()
		assert.NoError(t, ex.daemon.Stop(), "stopping the daemon")
	})
}

// checkIncident: the cpu script opens and resolves an incident at the
// environment's URL.
func (ex *exampleStack) checkIncident(t *testing.T) {
	t.Helper()
	e2eDefineRunning(t, ex.kap, "cpu_squadcast", e2eTick(t, "cpu_squadcast.tick"))
	start := time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC)
	var lines []string
	for i, idle := range []float64{80, 5, 90} {
		lines = append(lines, stack.Line("ex1", idle, 1, start.Add(time.Duration(i)*time.Second)))
	}
	require.NoError(t, ex.kap.Write("telegraf", "autogen", strings.Join(lines, "\n")))
	reqs, err := ex.standIn.WaitFor(2, 30*time.Second)
	require.NoError(t, err, "the incident's trigger and resolve")
	for _, r := range reqs {
		assert.Equal(t, e2eDaemonPath, r.Path)
	}
	assert.Equal(t, map[string][]string{"cpu:host=ex1": {"CRITICAL", "OK"}}, tickLevels(e2eDecode(t, reqs)))
}

// checkKapacitorURL: --kapacitor-url reached Kapacitor's API (it retries
// until it answers).
func (ex *exampleStack) checkKapacitorURL(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(ex.daemon.Output(), "checked Kapacitor's tasks") {
		require.True(t, time.Now().Before(deadline), "the daemon did not check Kapacitor's tasks at --kapacitor-url within 30s")
		time.Sleep(50 * time.Millisecond)
	}
}
