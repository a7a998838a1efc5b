package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// KapacitordEnv is the environment variable that holds the path of the
// kapacitord binary (built by .ci/build-kapacitord; `make test` sets it).
const KapacitordEnv = "KAPACITORD"

// KapacitordConfig says how to start a Kapacitord.
type KapacitordConfig struct {
	// Binary is the kapacitord executable; empty means $KAPACITORD.
	Binary string
	// UDFSocket, when not empty, configures the socket UDF UDFName
	// ([udf.functions.NAME] socket = ..., timeout = UDFTimeout). The process
	// listening on it must be running before kapacitord starts.
	UDFSocket string
	// UDFName is the UDF's name in TICKscript (@NAME()); empty means "squadcast".
	UDFName string
	// UDFTimeout is the UDF's keepalive timeout; zero means 10s.
	UDFTimeout time.Duration
	// BatchUDFSocket, when not empty, configures the batch UDF NAME_batch
	// (NAME is UDFName) on that socket, with the same timeout: the
	// daemon's --batch-socket.
	BatchUDFSocket string
	// InfluxDBURL, when not empty, is the InfluxDB that batch tasks query
	// (an enabled default [[influxdb]] section, without subscriptions);
	// empty disables InfluxDB. It must answer before kapacitord starts.
	InfluxDBURL string
	// MoreUDFs configures more socket UDFs: name → socket, each with
	// UDFTimeout. Their processes must be running before kapacitord starts.
	MoreUDFs map[string]string
	// HTTPPost maps [[httppost]] endpoint names to URLs, for
	// `.post().endpoint('NAME')` in TICKscripts.
	HTTPPost map[string]string
	// Dir is where the config, data and log go; empty means a new temporary
	// directory, removed by Stop.
	Dir string
	// StartTimeout bounds the wait for /kapacitor/v1/ping; zero means 60s.
	StartTimeout time.Duration
	// Addr, when not empty, is the HTTP API's bind address (127.0.0.1:PORT,
	// see FreeAddr) instead of a free port picked at start.
	Addr string
	// ExtraConfig, when not empty, is appended to the generated config as
	// it is (TOML).
	ExtraConfig string
}

// Kapacitord is a running kapacitord.
type Kapacitord struct {
	// process has URL, its HTTP API's base URL, and Dir, which holds
	// kapacitord.conf, data and logs.
	*process
	// LogPath is the file kapacitord logs to.
	LogPath string
}

// DBRP is a database and retention policy a task reads from.
type DBRP struct {
	DB string `json:"db"`
	RP string `json:"rp"`
}

// Task is what Kapacitor reports about a task (GET /kapacitor/v1/tasks/ID).
type Task struct {
	ID string `json:"id"`
	// Status is "enabled" or "disabled".
	Status string `json:"status"`
	// Executing says whether the task is running now.
	Executing bool `json:"executing"`
	// Error is the task's last error ("" if none).
	Error string `json:"error"`
	// NodeStats holds each node's counters by node name (e.g. "alert2",
	// "squadcast2"): "collected", "emitted", "errors", "alerts_triggered", ...
	NodeStats map[string]map[string]json.Number `json:"-"`
}

// Stat returns counter key of the first node whose name starts with
// nodePrefix (node names are the node kind plus a number, e.g. "alert2"),
// and whether there was such a node and counter.
func (t Task) Stat(nodePrefix, key string) (int64, bool) {
	names := make([]string, 0, len(t.NodeStats))
	for name := range t.NodeStats {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !strings.HasPrefix(name, nodePrefix) {
			continue
		}
		v, ok := t.NodeStats[name][key]
		if !ok {
			return 0, false
		}
		n, err := v.Int64()
		if err != nil {
			f, ferr := v.Float64()
			if ferr != nil {
				return 0, false
			}
			n = int64(f)
		}
		return n, true
	}
	return 0, false
}

// StartKapacitord writes a config and starts kapacitord, and waits until its
// API answers GET /kapacitor/v1/ping with 204. On failure the error includes
// the tail of kapacitord's log.
func StartKapacitord(cfg KapacitordConfig) (*Kapacitord, error) {
	if cfg.Binary == "" {
		cfg.Binary = os.Getenv(KapacitordEnv)
	}
	if cfg.Binary == "" {
		return nil, fmt.Errorf("no kapacitord binary: set %s (`make kapacitord` builds one)", KapacitordEnv)
	}
	if _, err := os.Stat(cfg.Binary); err != nil {
		return nil, fmt.Errorf("kapacitord binary: %w", err)
	}
	if cfg.UDFName == "" {
		cfg.UDFName = "squadcast"
	}
	if cfg.UDFTimeout == 0 {
		cfg.UDFTimeout = 10 * time.Second
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 60 * time.Second
	}

	return retryBusyPort(func() (*Kapacitord, error) { return startKapacitord(cfg) })
}

func startKapacitord(cfg KapacitordConfig) (_ *Kapacitord, err error) {
	p, err := newProcess("kapacitord", cfg.Dir)
	if err != nil {
		return nil, err
	}
	k := &Kapacitord{process: p}
	defer func() {
		if err != nil {
			k.removeOwnDir()
		}
	}()

	addr := cfg.Addr
	if addr == "" {
		if addr, err = FreeAddr(); err != nil {
			return nil, err
		}
	}
	k.URL = "http://" + addr
	k.LogPath = filepath.Join(k.Dir, "kapacitord.log")
	conf := kapacitordConfig(cfg, k.Dir, addr, k.LogPath)
	confPath := filepath.Join(k.Dir, "kapacitord.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return nil, fmt.Errorf("writing kapacitord's config: %w", err)
	}
	// Keep kapacitord's own environment overrides (KAPACITOR_*) out of it.
	if err := k.start(cfg.Binary, []string{"-config", confPath}, "kapacitord.out", "KAPACITOR_"); err != nil {
		return nil, err
	}

	if err := k.waitReady(cfg); err != nil {
		k.stop()
		return nil, fmt.Errorf("%w\n--- kapacitord log tail ---\n%s", err, k.LogTail(40))
	}
	return k, nil
}

func (k *Kapacitord) waitReady(cfg KapacitordConfig) error {
	deadline := time.Now().Add(cfg.StartTimeout)
	for {
		select {
		case <-k.done:
			return fmt.Errorf("kapacitord exited during start-up: %v", k.waitErr)
		default:
		}
		resp, err := k.client.Get(k.URL + "/kapacitor/v1/ping")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusNoContent {
				return nil
			}
		}
		if time.Now().After(deadline) {
			hint := ""
			if cfg.UDFSocket != "" {
				hint = fmt.Sprintf(" (it waits for the UDF socket %s to accept connections: is the daemon running?)", cfg.UDFSocket)
			}
			return fmt.Errorf("kapacitord did not answer %s/kapacitor/v1/ping within %s%s", k.URL, cfg.StartTimeout, hint)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func kapacitordConfig(cfg KapacitordConfig, dir, addr, logPath string) string {
	var b strings.Builder
	q := strconv.Quote
	fmt.Fprintf(&b, "hostname = \"localhost\"\ndata_dir = %s\nskip-config-overrides = true\n\n", q(dir))
	fmt.Fprintf(&b, "[http]\n  bind-address = %s\n  log-enabled = false\n\n", q(addr))
	fmt.Fprintf(&b, "[replay]\n  dir = %s\n\n", q(filepath.Join(dir, "replay")))
	fmt.Fprintf(&b, "[storage]\n  boltdb = %s\n\n", q(filepath.Join(dir, "kapacitor.db")))
	fmt.Fprintf(&b, "[task]\n  dir = %s\n\n", q(filepath.Join(dir, "tasks")))
	fmt.Fprintf(&b, "[load]\n  enabled = false\n  dir = %s\n\n", q(filepath.Join(dir, "load")))
	fmt.Fprintf(&b, "[logging]\n  file = %s\n  level = \"INFO\"\n\n", q(logPath))
	b.WriteString("[reporting]\n  enabled = false\n\n")
	b.WriteString("[stats]\n  enabled = false\n\n")
	if cfg.InfluxDBURL != "" {
		fmt.Fprintf(&b, "[[influxdb]]\n  enabled = true\n  default = true\n  name = \"default\"\n  urls = [%s]\n  disable-subscriptions = true\n  startup-timeout = \"1m\"\n\n", q(cfg.InfluxDBURL))
	} else {
		b.WriteString("[[influxdb]]\n  enabled = false\n  name = \"default\"\n  urls = [\"http://127.0.0.1:1\"]\n\n")
	}
	if cfg.UDFSocket != "" {
		fmt.Fprintf(&b, "[udf.functions.%s]\n  socket = %s\n  timeout = %s\n\n", cfg.UDFName, q(cfg.UDFSocket), q(cfg.UDFTimeout.String()))
	}
	if cfg.BatchUDFSocket != "" {
		fmt.Fprintf(&b, "[udf.functions.%s_batch]\n  socket = %s\n  timeout = %s\n\n", cfg.UDFName, q(cfg.BatchUDFSocket), q(cfg.UDFTimeout.String()))
	}
	udfs := make([]string, 0, len(cfg.MoreUDFs))
	for name := range cfg.MoreUDFs {
		udfs = append(udfs, name)
	}
	sort.Strings(udfs)
	for _, name := range udfs {
		fmt.Fprintf(&b, "[udf.functions.%s]\n  socket = %s\n  timeout = %s\n\n", name, q(cfg.MoreUDFs[name]), q(cfg.UDFTimeout.String()))
	}
	names := make([]string, 0, len(cfg.HTTPPost))
	for name := range cfg.HTTPPost {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(&b, "[[httppost]]\n  endpoint = %s\n  url = %s\n\n", q(name), q(cfg.HTTPPost[name]))
	}
	b.WriteString(cfg.ExtraConfig)
	return b.String()
}

// FreeAddr returns 127.0.0.1:PORT with a port that was free a moment ago
// (another process may take it before it is bound).
func FreeAddr() (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// terminate ends a process started by cmd, whose waiter closes done:
// SIGTERM, then SIGKILL after 10s. It returns at once if the process never
// started or has exited.
func terminate(cmd *exec.Cmd, done <-chan struct{}) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// LogTail returns the last n lines of kapacitord's log file and, once the
// process has exited, of what it printed on stdout and stderr.
func (k *Kapacitord) LogTail(n int) string {
	var b strings.Builder
	if data, err := os.ReadFile(k.LogPath); err == nil {
		b.WriteString(tailLines(string(data), n))
	} else {
		fmt.Fprintf(&b, "(no log: %v)\n", err)
	}
	// Its stdout has a banner and little else while it runs: show it once it has exited.
	if data, err := os.ReadFile(filepath.Join(k.Dir, "kapacitord.out")); err == nil && !k.Alive() && len(bytes.TrimSpace(data)) > 0 {
		var kept []string
		for _, line := range strings.Split(string(data), "\n") {
			if strings.Trim(line, "#:'. ") != "" { // not the start-up banner
				kept = append(kept, line)
			}
		}
		b.WriteString("--- kapacitord stdout/stderr ---\n")
		b.WriteString(tailLines(strings.Join(kept, "\n"), n))
	}
	return b.String()
}

func tailLines(s string, n int) string {
	lines := strings.SplitAfter(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "") + "\n"
}

// APIError is a non-2xx answer from Kapacitor's API. Message is Kapacitor's
// own "error" text, verbatim.
type APIError struct {
	Op      string
	Status  int
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s: kapacitor answered %d: %s", e.Op, e.Status, e.Message)
}

// do sends a request to the API and decodes a JSON answer into out (if not nil).
func (k *Kapacitord) do(ctx context.Context, op, method, path string, body io.Reader, contentType string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, k.URL+path, body)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s: reading answer: %w", op, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return &APIError{Op: op, Status: resp.StatusCode, Message: msg}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s: decoding answer %q: %w", op, data, err)
		}
	}
	return nil
}

// DefineTask creates a stream task with the given TICKscript reading from
// dbrps, enabled or not (POST /kapacitor/v1/tasks). A rejected definition
// returns an *APIError whose Message is Kapacitor's error text verbatim.
//
// What Kapacitor 1.5.9 does, seen against the real kapacitord: it checks the
// script (syntax, property names, UDF option names and argument types from
// the UDF's cached Info) before storing the task, and answers 400 "invalid
// TICKscript: line 1 char 46: unexpected arg to crit, got BOOL expected
// STRING" and the like. A UDF's Init runs later, when the task's nodes start
// in their own goroutines, so when Init answers Success:false the POST still
// succeeds (200): the task is stored with status "enabled" (it stays
// "enabled"), executing becomes false within milliseconds, and its error is
// "<node>: failed to initialize processes <the UDF's error text>", e.g.
// "squadcast2: failed to initialize processes option .crit: ...". Disabling
// and enabling it again also answers 200 and fails the same way. So callers
// must not take a nil error as "running": check with Task or WaitTask (or
// WaitTaskError for the failure). Errors while starting the task itself
// (not its nodes) make the POST fail with 500, the task stored anyway; those
// come back as an *APIError too.
func (k *Kapacitord) DefineTask(id, tickscript string, dbrps []DBRP, enable bool) error {
	return k.defineTask(id, "stream", tickscript, dbrps, enable)
}

// DefineBatchTask creates a batch task, like DefineTask.
func (k *Kapacitord) DefineBatchTask(id, tickscript string, dbrps []DBRP, enable bool) error {
	return k.defineTask(id, "batch", tickscript, dbrps, enable)
}

func (k *Kapacitord) defineTask(id, typ, tickscript string, dbrps []DBRP, enable bool) error {
	status := "disabled"
	if enable {
		status = "enabled"
	}
	body, err := json.Marshal(map[string]any{
		"id":     id,
		"type":   typ,
		"dbrps":  dbrps,
		"script": tickscript,
		"status": status,
	})
	if err != nil {
		return fmt.Errorf("define task %s: %w", id, err)
	}
	return k.do(context.Background(), "define task "+id, http.MethodPost, "/kapacitor/v1/tasks", bytes.NewReader(body), "application/json", nil)
}

// EnableTask enables (starts) a task.
func (k *Kapacitord) EnableTask(id string) error { return k.setStatus(id, "enabled") }

// DisableTask disables (stops) a task.
func (k *Kapacitord) DisableTask(id string) error { return k.setStatus(id, "disabled") }

func (k *Kapacitord) setStatus(id, status string) error {
	body := fmt.Sprintf(`{"status":%q}`, status)
	return k.do(context.Background(), "set task "+id+" "+status, http.MethodPatch, "/kapacitor/v1/tasks/"+url.PathEscape(id), strings.NewReader(body), "application/json", nil)
}

// DeleteTask deletes a task.
func (k *Kapacitord) DeleteTask(id string) error {
	return k.do(context.Background(), "delete task "+id, http.MethodDelete, "/kapacitor/v1/tasks/"+url.PathEscape(id), nil, "", nil)
}

// Task returns a task's status, error and node counters.
func (k *Kapacitord) Task(id string) (Task, error) {
	var raw struct {
		Task
		Stats struct {
			NodeStats map[string]map[string]json.Number `json:"node-stats"`
		} `json:"stats"`
	}
	if err := k.do(context.Background(), "get task "+id, http.MethodGet, "/kapacitor/v1/tasks/"+url.PathEscape(id), nil, "", &raw); err != nil {
		return Task{}, err
	}
	t := raw.Task
	t.NodeStats = raw.Stats.NodeStats
	return t, nil
}

// WaitTaskError waits until the task reports a non-empty error and returns
// the task, or fails after timeout.
func (k *Kapacitord) WaitTaskError(id string, timeout time.Duration) (Task, error) {
	return k.WaitTask(id, timeout, "an error", func(t Task) bool { return t.Error != "" })
}

// WaitTask polls a task until cond holds and returns it, or fails after
// timeout with what (a description of cond) and the task's last state.
func (k *Kapacitord) WaitTask(id string, timeout time.Duration, what string, cond func(Task) bool) (Task, error) {
	deadline := time.Now().Add(timeout)
	for {
		t, err := k.Task(id)
		if err == nil && cond(t) {
			return t, nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return t, fmt.Errorf("task %s: waiting %s for %s: %w", id, timeout, what, err)
			}
			return t, fmt.Errorf("task %s: no %s within %s (status %q, executing %v, error %q)", id, what, timeout, t.Status, t.Executing, t.Error)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Write sends line-protocol points (nanosecond timestamps) to kapacitord
// for database db and retention policy rp.
func (k *Kapacitord) Write(db, rp, lineProtocol string) error {
	q := url.Values{"db": {db}, "rp": {rp}, "precision": {"ns"}}
	return k.do(context.Background(), "write points", http.MethodPost, "/kapacitor/v1/write?"+q.Encode(), strings.NewReader(lineProtocol), "text/plain", nil)
}

// Replay is what Kapacitor reports about a replay (GET /kapacitor/v1/replays/ID).
type Replay struct {
	ID string `json:"id"`
	// Status is "running", "finished" or "failed".
	Status string `json:"status"`
	// Error is why it failed ("" if it did not).
	Error string `json:"error"`
	// Progress goes from 0 to 1.
	Progress float64 `json:"progress"`
}

// ReplayBatch starts replaying a batch task over [start, stop] (POST
// /kapacitor/v1/replays/batch): Kapacitor runs the task's queries for every
// period of its schedule in that range against InfluxDB and feeds the
// batches to a copy of the task, with the fast clock and the data's own
// times. The task need not be enabled. It returns the replay's ID.
func (k *Kapacitord) ReplayBatch(task string, start, stop time.Time) (string, error) {
	body, err := json.Marshal(map[string]any{
		"task":           task,
		"start":          start.UTC().Format(time.RFC3339Nano),
		"stop":           stop.UTC().Format(time.RFC3339Nano),
		"clock":          "fast",
		"recording-time": true,
	})
	if err != nil {
		return "", fmt.Errorf("replay batch task %s: %w", task, err)
	}
	var r Replay
	if err := k.do(context.Background(), "replay batch task "+task, http.MethodPost, "/kapacitor/v1/replays/batch", bytes.NewReader(body), "application/json", &r); err != nil {
		return "", err
	}
	return r.ID, nil
}

// WaitReplay polls a replay until it is no longer running and returns it,
// or fails after timeout. A failed replay is returned with an error holding
// Kapacitor's reason.
func (k *Kapacitord) WaitReplay(id string, timeout time.Duration) (Replay, error) {
	deadline := time.Now().Add(timeout)
	for {
		var r Replay
		err := k.do(context.Background(), "get replay "+id, http.MethodGet, "/kapacitor/v1/replays/"+url.PathEscape(id), nil, "", &r)
		if err == nil && r.Status != "running" {
			if r.Status != "finished" {
				return r, fmt.Errorf("replay %s %s: %s", id, r.Status, r.Error)
			}
			return r, nil
		}
		if time.Now().After(deadline) {
			return r, fmt.Errorf("replay %s still %q after %s (progress %.2f, last error %v)", id, r.Status, timeout, r.Progress, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
