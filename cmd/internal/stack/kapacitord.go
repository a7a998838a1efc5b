package stack

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
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
