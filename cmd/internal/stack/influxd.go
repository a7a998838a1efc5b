package stack

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// InfluxdEnv is the environment variable that may hold the path of the
// influxd binary (InfluxDB 1.x); without it, influxd is looked up in PATH.
// `make test` installs Debian's influxdb package when it is missing.
const InfluxdEnv = "INFLUXD"

// InfluxdBinary returns $INFLUXD, or influxd from PATH, or an error saying
// how to get one.
func InfluxdBinary() (string, error) {
	if bin := os.Getenv(InfluxdEnv); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("influxd binary ($%s): %w", InfluxdEnv, err)
		}
		return bin, nil
	}
	bin, err := exec.LookPath("influxd")
	if err != nil {
		return "", fmt.Errorf("no influxd (InfluxDB 1.x) in PATH and $%s is not set: `make influxd` installs Debian's influxdb package", InfluxdEnv)
	}
	return bin, nil
}

// Influxd is a running InfluxDB 1.x server on loopback, with its data in a
// temporary directory, for batch tasks to query.
type Influxd struct {
	// process has URL, its HTTP API's base URL, and Dir, which holds
	// influxd.conf, the data and the log.
	*process
}

// StartInfluxd starts binary (see InfluxdBinary) with a config that keeps
// everything in dir (a new temporary directory, removed by Stop, when dir
// is empty) and listens on loopback only, and waits until GET /ping answers
// 204. The port is picked free; a clash is retried.
func StartInfluxd(binary, dir string) (*Influxd, error) {
	return retryBusyPort(func() (*Influxd, error) { return startInfluxd(binary, dir) })
}

func startInfluxd(binary, dir string) (_ *Influxd, err error) {
	p, err := newProcess("influxd", dir)
	if err != nil {
		return nil, err
	}
	d := &Influxd{p}
	defer func() {
		if err != nil {
			d.removeOwnDir()
		}
	}()
	httpPort, err := freePort()
	if err != nil {
		return nil, err
	}
	rpcPort, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort))
	d.URL = "http://" + addr
	conf := influxdConfig(d.Dir, addr, net.JoinHostPort("127.0.0.1", strconv.Itoa(rpcPort)))
	confPath := filepath.Join(d.Dir, "influxd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return nil, fmt.Errorf("writing influxd's config: %w", err)
	}
	// Keep InfluxDB's own environment overrides (INFLUXDB_*) out of it.
	if err := d.start(binary, []string{"run", "-config", confPath}, "influxd.log", "INFLUXDB_"); err != nil {
		return nil, err
	}
	if err := d.waitReady(); err != nil {
		return nil, err
	}
	return d, nil
}

// influxdConfig is the config of an influxd keeping everything in dir, its
// HTTP API on addr and its RPC service on rpcAddr (both on loopback).
func influxdConfig(dir, addr, rpcAddr string) string {
	q := strconv.Quote
	return fmt.Sprintf(`reporting-disabled = true
bind-address = %s

[meta]
  dir = %s
  logging-enabled = false

[data]
  dir = %s
  wal-dir = %s
  query-log-enabled = false

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false

[http]
  bind-address = %s
  log-enabled = false
  pprof-enabled = false

[logging]
  level = "warn"
`, q(rpcAddr), q(filepath.Join(dir, "meta")), q(filepath.Join(dir, "data")), q(filepath.Join(dir, "wal")), q(addr))
}

// waitReady waits up to 60s until influxd answers GET /ping with 204,
// stopping it if it does not; the error holds the tail of its log.
func (d *Influxd) waitReady() error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-d.done:
			return fmt.Errorf("influxd exited during start-up: %v\n--- influxd log tail ---\n%s", d.waitErr, d.LogTail(30))
		default:
		}
		resp, err := d.client.Get(d.URL + "/ping")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusNoContent {
				return nil
			}
		}
		if time.Now().After(deadline) {
			d.stop()
			return fmt.Errorf("influxd did not answer %s/ping within 60s\n--- influxd log tail ---\n%s", d.URL, d.LogTail(30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// LogTail returns the last n lines of what influxd printed.
func (d *Influxd) LogTail(n int) string {
	data, err := os.ReadFile(filepath.Join(d.Dir, "influxd.log"))
	if err != nil {
		return fmt.Sprintf("(no log: %v)\n", err)
	}
	return tailLines(string(data), n)
}

// Query runs an InfluxQL statement (POST /query) and fails on an HTTP error
// or an error in the result.
func (d *Influxd) Query(db, stmt string) error {
	form := url.Values{"q": {stmt}}
	if db != "" {
		form.Set("db", db)
	}
	resp, err := d.client.PostForm(d.URL+"/query", form)
	if err != nil {
		return fmt.Errorf("influxdb query %q: %w", stmt, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK || strings.Contains(string(body), `"error"`) {
		return fmt.Errorf("influxdb query %q: %s: %s", stmt, resp.Status, body)
	}
	return nil
}

// Write writes line-protocol points (nanosecond timestamps) to database db
// and retention policy rp.
func (d *Influxd) Write(db, rp, lineProtocol string) error {
	q := url.Values{"db": {db}, "rp": {rp}, "precision": {"ns"}}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, d.URL+"/write?"+q.Encode(), strings.NewReader(lineProtocol))
	if err != nil {
		return fmt.Errorf("influxdb write: %w", err)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return fmt.Errorf("influxdb write: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("influxdb write: %s: %s", resp.Status, body)
	}
	return nil
}
