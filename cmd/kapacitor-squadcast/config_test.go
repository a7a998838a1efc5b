package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast"
)

const cfgSecret = "CFGSECRETKEY42"

// TestConfigFileErrors: every bad key of a config file gets its own
// message, naming the key (and the endpoint), and none shows the secret.
func TestConfigFileErrors(t *testing.T) {
	dir := t.TempDir()
	emptyFile := filepath.Join(dir, "empty.url")
	require.NoError(t, os.WriteFile(emptyFile, []byte("\n"), 0o600))
	badURLFile := filepath.Join(dir, "bad.url")
	require.NoError(t, os.WriteFile(badURLFile, []byte("ftp://h/"+cfgSecret+"\n"), 0o600))
	good := `url = "https://api.squadcast.com/v1/incidents/kapacitor/` + cfgSecret + `"`
	ep := func(body string) string { return "[[endpoint]]\nname = \"prod\"\n" + body + "\n" }
	for _, tc := range []struct {
		name, text, want string
	}{
		{"unknown top-level key", "sockett = \"/x\"", `unknown key "sockett"`},
		{"default endpoint flag as a top-level key", "rate-limit = \"15/m\"", `unknown key "rate-limit": --rate-limit sets the default endpoint; in a file, give rate-limit in an [[endpoint]] table with name = "default"`},
		{"config as a key", "config = \"/x.toml\"", `unknown key "config" (the keys are the long names of serve's flags but config, url, format`},
		{"unknown endpoint key", "[[endpoint]]\nname = \"a\"\n" + good + "\n[[endpoint]]\nname = \"b\"\n" + good + "\nformt = \"kapacitor\"", `endpoint #2: unknown key "formt"`},
		{"syntax", "workers = ", `line 1`},
		{"duplicate key", "workers = 2\nworkers = 3", `'workers' has already been defined`},
		{"workers type", `workers = "8"`, `workers: incompatible types`},
		{"workers zero", `workers = 0`, `workers: must be at least 1, got 0`},
		{"queue-size zero", `queue-size = 0`, `queue-size: must be at least 1, got 0`},
		{"empty socket", `socket = ""`, `socket: is empty`},
		{"empty data-dir", `data-dir = ""`, `data-dir: is empty`},
		{"socket-mode integer", `socket-mode = 660`, `socket-mode: write the mode as a string in octal`},
		{"socket-mode not octal", `socket-mode = "0980"`, `socket-mode: "0980" is not a permission mode in octal`},
		{"socket-mode too big", `socket-mode = "1777"`, `socket-mode: "1777" is not a permission mode`},
		{"socket-group unknown", `socket-group = "no-such-group-xyz"`, `socket-group: unknown group "no-such-group-xyz"`},
		{"log-level", `log-level = "loud"`, `log-level: unknown level "loud"`},
		{"log-format", `log-format = "xml"`, `log-format: unknown format "xml"`},
		{"shutdown-timeout number", `shutdown-timeout = 10`, `shutdown-timeout: write a duration as a string`},
		{"shutdown-timeout negative", `shutdown-timeout = "-1s"`, `shutdown-timeout: must not be negative`},
		{"retry-max-wait", `retry-max-wait = "10ms"`, `retry-max-wait: must be at least 1s, got 10ms`},
		{"max-age", `max-age = "0s"`, `max-age: must be positive, got 0s`},
		{"max-age syntax", `max-age = "a day"`, `max-age: "a day" is not a duration`},
		{"kapacitor-url", `kapacitor-url = "localhost:9092"`, `kapacitor-url: want http(s)://host:port`},
		{"kapacitor-check-interval", `kapacitor-check-interval = "10ms"`, `kapacitor-check-interval: must be at least 100ms, got 10ms`},
		{"resolve-deleted-tasks type", `resolve-deleted-tasks = "yes"`, `resolve-deleted-tasks: incompatible types`},
		{"udf-name", `udf-name = ""`, `udf-name: is empty`},
		{"listen", `listen = "9187"`, `listen: "9187" is not host:port`},
		{"memory-limit too small", `memory-limit = "1MiB"`, `memory-limit: must be at least 32MiB, got 1MiB`},
		{"memory-limit number", `memory-limit = 300`, `memory-limit: want a string like "16MiB"`},
		{"endpoint as a table", "[endpoint]\nname = \"x\"", `endpoint: incompatible types`},
		{"endpoint without name", "[[endpoint]]\n" + good, `endpoint #1: name is missing`},
		{"endpoint bad name", "[[endpoint]]\nname = \"a b\"\n" + good, `endpoint "a b": name: use letters, digits`},
		{"endpoint inline name", "[[endpoint]]\nname = \"inline\"\n" + good, `endpoint "inline": name: "inline" is reserved`},
		{"endpoint twice", ep(good) + ep(good), `endpoint "prod": name is used by an earlier endpoint`},
		{"endpoint no url", ep(""), `endpoint "prod": url or url-file is required`},
		{"endpoint url and url-file", ep(good + "\nurl-file = \"/x\""), `endpoint "prod": url and url-file exclude each other`},
		{"endpoint url scheme", ep(`url = "ftp://api.squadcast.com/` + cfgSecret + `"`), `endpoint "prod": url: has scheme "ftp"`},
		{"endpoint url no host", ep(`url = "https:///v2/incidents/api/` + cfgSecret + `"`), `endpoint "prod": url: has no host`},
		{"endpoint url no scheme", ep(`url = "api.squadcast.com/` + cfgSecret + `"`), `endpoint "prod": url: has no scheme`},
		{"endpoint url empty", ep(`url = ""`), `endpoint "prod": url: is empty`},
		{"endpoint url type", ep(`url = 5`), `endpoint.url: incompatible types`},
		{"endpoint url-file missing", ep(`url-file = "` + filepath.Join(dir, "missing") + `"`), `endpoint "prod": url-file: open ` + filepath.Join(dir, "missing")},
		{"endpoint url-file empty", ep(`url-file = "` + emptyFile + `"`), `endpoint "prod": url-file: the URL in ` + emptyFile + ` is empty`},
		{"endpoint url-file bad url", ep(`url-file = "` + badURLFile + `"`), `endpoint "prod": url-file: the URL in ` + badURLFile + ` has scheme "ftp"`},
		{"endpoint format", ep(good + "\nformat = \"xml\""), `endpoint "prod": format: "xml" is unknown`},
		{"endpoint timeout zero", ep(good + "\ntimeout = \"0s\""), `endpoint "prod": timeout: must be positive`},
		{"endpoint timeout number", ep(good + "\ntimeout = 5"), `endpoint.timeout: write a duration as a string`},
		{"endpoint header name", ep(good + "\nheaders = { \"X Team\" = \"a\" }"), `endpoint "prod": headers: header "X Team": not a valid header name`},
		{"endpoint header reserved", ep(good + "\nheaders = { Content-Type = \"a\" }"), `endpoint "prod": headers: header "Content-Type": set by the daemon`},
		{"endpoint header value type", ep(good + "\nheaders = { X-Team = 1 }"), `endpoint.headers.X-Team: incompatible types`},
		{"endpoint rate-limit", ep(good + "\nrate-limit = \"300/d\""), `endpoint "prod": rate-limit: rate limit "300/d": unknown unit "d"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			err := c.decode(tc.text)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), cfgSecret)
		})
	}
}

// TestConfigFileApplies: a file sets every setting.
func TestConfigFileApplies(t *testing.T) {
	dir := t.TempDir()
	urlFile := filepath.Join(dir, "team.url")
	require.NoError(t, os.WriteFile(urlFile, []byte("  https://api.squadcast.com/v2/incidents/api/"+cfgSecret+"\n"), 0o600))
	text := fmt.Sprintf(`
socket = "/run/s.sock"
batch-socket = "/run/b.sock"
socket-mode = "0600"
socket-group = "%d"
data-dir = "/var/lib/x"
workers = 3
queue-size = 5000
log-level = "debug"
log-format = "console"
shutdown-timeout = "3s"
retry-max-wait = "2m"
max-age = "1h"
kapacitor-url = "http://localhost:9092"
resolve-deleted-tasks = true
kapacitor-check-interval = "30s"
udf-name = "sq"
listen = "127.0.0.1:9187"
max-frame-size = "1MiB"
memory-limit = "256MiB"

[[endpoint]]
  name = "default"
  url = "https://api.squadcast.com/v1/incidents/kapacitor/%s"
  format = "incident-webhook"
  timeout = "4s"
  headers = { X-Team = "infra" }
  rate-limit = "15/m"

[[endpoint]]
  name = "team"
  url-file = %q
`, os.Getgid(), cfgSecret, urlFile)
	c := DefaultConfig()
	require.NoError(t, c.decode(text))
	assert.Equal(t, "/run/s.sock", c.Socket)
	assert.Equal(t, "/run/b.sock", c.BatchSocket)
	assert.Equal(t, byteSize(1<<20), c.MaxFrameSize)
	assert.Equal(t, byteSize(256<<20), c.MemoryLimit)
	assert.Equal(t, socketMode(0o600), c.SocketMode)
	assert.Equal(t, fmt.Sprint(os.Getgid()), c.SocketGroup)
	assert.Equal(t, "/var/lib/x", c.DataDir)
	assert.Equal(t, 3, c.Workers)
	assert.Equal(t, 5000, c.QueueSize)
	assert.Equal(t, "debug", c.LogLevel)
	assert.Equal(t, "console", c.LogFormat)
	assert.Equal(t, 3*time.Second, time.Duration(c.ShutdownTimeout))
	assert.Equal(t, 2*time.Minute, time.Duration(c.RetryMaxWait))
	assert.Equal(t, time.Hour, time.Duration(c.MaxAge))
	assert.Equal(t, "http://localhost:9092", c.KapacitorURL.Reveal())
	assert.True(t, c.ResolveDeletedTasks)
	assert.Equal(t, 30*time.Second, time.Duration(c.KapacitorCheckInterval))
	assert.Equal(t, "sq", c.UDFName)
	assert.Equal(t, "127.0.0.1:9187", c.Listen)
	assert.Equal(t, []squadcast.Endpoint{
		{Name: "default", URL: "https://api.squadcast.com/v1/incidents/kapacitor/" + cfgSecret, Format: "incident-webhook",
			Timeout: 4 * time.Second, RateLimit: squadcast.RateLimit{Events: 15, Per: time.Minute}, Headers: map[string]string{"X-Team": "infra"}},
		{Name: "team", URL: "https://api.squadcast.com/v2/incidents/api/" + cfgSecret, Format: "kapacitor"},
	}, c.senderEndpoints())
	require.NoError(t, c.Validate())
}

// TestConfigPrecedence: flags given override the file; flags left out keep
// the file's values; $SQUADCAST_WEBHOOK_URL fills the default endpoint only
// when neither gives it a URL.
func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	withDefault := filepath.Join(dir, "with-default.toml")
	require.NoError(t, os.WriteFile(withDefault, []byte(`
socket = "/file.sock"
data-dir = "/file-data"
workers = 3
log-level = "warn"
max-age = "1h"
[[endpoint]]
  name = "default"
  url = "https://file.example.com/v1/`+cfgSecret+`"
  format = "incident-webhook"
  rate-limit = "15/m"
[[endpoint]]
  name = "team"
  url = "https://team.example.com/v1/`+cfgSecret+`"
`), 0o600))
	noDefault := filepath.Join(dir, "no-default.toml")
	require.NoError(t, os.WriteFile(noDefault, []byte("socket = \"/file.sock\"\ndata-dir = \"/d\"\n"), 0o600))
	const envURL = "https://env.example.com/v1/ENVKEY"

	for _, tc := range []struct {
		name  string
		args  []string
		env   string
		check func(t *testing.T, c Config)
	}{
		{"file only", []string{"--config", withDefault}, envURL, func(t *testing.T, c Config) {
			def := c.endpoint("default")
			assert.Equal(t, "/file.sock", c.Socket)
			assert.Equal(t, 3, c.Workers)
			assert.Equal(t, "warn", c.LogLevel)
			assert.Equal(t, time.Hour, time.Duration(c.MaxAge))
			assert.Equal(t, "https://file.example.com/v1/"+cfgSecret, def.URL.Reveal(), "the file's default endpoint, not the environment's")
			assert.Equal(t, "incident-webhook", def.Format)
			assert.Equal(t, "15/m", def.sender().RateLimit.String())
			assert.Equal(t, 10*time.Second, time.Duration(c.ShutdownTimeout), "built-in default")
			assert.Equal(t, []string{"default", "team"}, c.endpointNames())
		}},
		{"flags override", []string{"--workers", "5", "--config", withDefault, "--socket", "/flag.sock", "--url", "https://flag.example.com/v1/K", "--format", "kapacitor", "--rate-limit", "none", "--max-age", "2h", "--socket-mode", "0600", "--timeout", "3s"}, "", func(t *testing.T, c Config) {
			def := c.endpoint("default")
			assert.Equal(t, 3*time.Second, time.Duration(def.Timeout))
			assert.Equal(t, 3*time.Second, c.senderEndpoints()[0].Timeout, "the default endpoint's attempts")
			assert.Equal(t, "/flag.sock", c.Socket)
			assert.Equal(t, "/file-data", c.DataDir)
			assert.Equal(t, 5, c.Workers, "a flag before --config overrides too")
			assert.Equal(t, "warn", c.LogLevel)
			assert.Equal(t, 2*time.Hour, time.Duration(c.MaxAge))
			assert.Equal(t, "https://flag.example.com/v1/K", def.URL.Reveal())
			assert.Equal(t, "kapacitor", def.Format)
			assert.True(t, def.sender().RateLimit.IsZero())
			assert.Equal(t, socketMode(0o600), c.SocketMode)
			assert.Equal(t, []string{"default", "team"}, c.endpointNames())
		}},
		{"environment fills the default endpoint", []string{"--config", noDefault}, envURL, func(t *testing.T, c Config) {
			assert.Equal(t, envURL, c.endpoint("default").URL.Reveal())
			assert.True(t, c.URLFromEnv)
			assert.Equal(t, []string{"default"}, c.endpointNames())
		}},
		{"no config, no environment", []string{"--socket", "/s"}, "", func(t *testing.T, c Config) {
			assert.Equal(t, "", c.endpoint("default").URL.Reveal())
			assert.Empty(t, c.endpointNames())
			assert.Equal(t, socketMode(0o660), c.SocketMode)
			assert.Equal(t, 32, c.Workers)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(webhookEnv, tc.env)
			var errb bytes.Buffer
			c, err := Load(tc.args, &errb)
			require.NoError(t, err, errb.String())
			tc.check(t, c)
		})
	}
}

// TestCheckConfig: check-config accepts the example file and a valid file
// with url-file; it refuses a bad one with the key in the message.
func TestCheckConfig(t *testing.T) {
	t.Setenv(webhookEnv, "")
	example := filepath.Join("..", "..", "examples", "kapacitor-squadcast.toml")
	var out, errb bytes.Buffer
	require.Equal(t, 0, run([]string{"check-config", "--config", example}, &out, &errb), errb.String())
	assert.Contains(t, out.String(), "valid")
	assert.Contains(t, out.String(), `endpoint "default": https://api.squadcast.com/[redacted]`)
	assert.Contains(t, out.String(), `endpoint "database-team"`)
	assert.NotContains(t, out.String(), "REPLACE-WITH")

	// The example with url-file instead of url: as the comment suggests.
	dir := t.TempDir()
	urlFile := filepath.Join(dir, "default.url")
	require.NoError(t, os.WriteFile(urlFile, []byte("https://api.squadcast.com/v1/incidents/kapacitor/"+cfgSecret+"\n"), 0o600))
	b, err := os.ReadFile(example)
	require.NoError(t, err)
	text := strings.Replace(string(b), `  url = "https://api.squadcast.com/v1/incidents/kapacitor/REPLACE-WITH-THE-SERVICE-KEY"`, "", 1)
	text = strings.Replace(text, `  # url-file = "/etc/kapacitor-squadcast/default.url"`, `  url-file = "`+urlFile+`"`, 1)
	require.NotEqual(t, string(b), text)
	withFile := filepath.Join(dir, "with-url-file.toml")
	require.NoError(t, os.WriteFile(withFile, []byte(text), 0o600))
	out.Reset()
	require.Equal(t, 0, run([]string{"check-config", "--config", withFile}, &out, &errb), errb.String())
	assert.NotContains(t, out.String(), cfgSecret)

	bad := filepath.Join(dir, "bad.toml")
	require.NoError(t, os.WriteFile(bad, []byte("[[endpoint]]\nname = \"x\"\nurl = \"ftp://h/"+cfgSecret+"\"\n"), 0o600))
	out.Reset()
	errb.Reset()
	assert.Equal(t, 1, run([]string{"check-config", "--config", bad}, &out, &errb))
	assert.Contains(t, errb.String(), `config file `+bad+`: endpoint "x": url: has scheme "ftp"`)
	assert.NotContains(t, errb.String(), cfgSecret)

	// The environment's URL is checked as serve would.
	t.Setenv(webhookEnv, "gopher://h/"+cfgSecret)
	noDefault := filepath.Join(dir, "nodefault.toml")
	require.NoError(t, os.WriteFile(noDefault, []byte("workers = 2\n"), 0o600))
	errb.Reset()
	assert.Equal(t, 1, run([]string{"check-config", "--config", noDefault}, &out, &errb))
	assert.Contains(t, errb.String(), "$SQUADCAST_WEBHOOK_URL: the URL has scheme")
	assert.NotContains(t, errb.String(), cfgSecret)

	errb.Reset()
	assert.Equal(t, 2, run([]string{"check-config"}, &out, &errb))
	assert.Contains(t, errb.String(), "--config is required")
	errb.Reset()
	assert.Equal(t, 1, run([]string{"check-config", "--config", filepath.Join(dir, "missing.toml")}, &out, &errb))
	assert.Contains(t, errb.String(), "no such file")
}

// TestHelpListsEveryFlagWithDefault: each command's --help shows every
// flag and its default.
func TestHelpListsEveryFlagWithDefault(t *testing.T) {
	for _, cmd := range [][]string{{"serve"}, {"check-config"}, {"send-test"}, {"outbox", "list"}, {"outbox", "retry"}, {"outbox", "drop"},
		{"state", "list"}, {"state", "drop"}, {"doctor"}} {
		t.Run(strings.Join(cmd, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(append(cmd, "--help"), &out, &errb)
			assert.Equal(t, 0, code)
			help := out.String() + errb.String()
			require.Contains(t, help, "Usage:")
			// PrintDefaults: "  -name type\n    \tusage (default ...)"
			blocks := strings.Split(help, "\n  -")[1:]
			require.NotEmpty(t, blocks, help)
			for _, b := range blocks {
				name := strings.Fields(b)[0]
				assert.True(t, strings.Contains(b, "default") || strings.Contains(b, "required"),
					"flag -%s shows no default:\n%s", name, b)
			}
		})
	}
	var out, errb bytes.Buffer
	run([]string{"serve", "--help"}, &out, &errb)
	for _, f := range []string{"config", "socket", "socket-mode", "socket-group", "data-dir", "url", "format", "workers", "log-level", "log-format",
		"shutdown-timeout", "kapacitor-url", "kapacitor-check-interval", "udf-name", "timeout", "rate-limit", "retry-max-wait", "max-age", "listen", "memory-limit",
		"relay-listen", "relay-max-body", "relay-token-file"} {
		assert.Contains(t, errb.String(), "\n  -"+f+" ", "serve --help lists -%s", f)
	}
	assert.Contains(t, errb.String(), "\n  -resolve-deleted-tasks\n", "a bool flag has no argument")
}

// TestServeConfigErrors: serve refuses bad socket, listen and config
// settings before it creates anything.
func TestServeConfigErrors(t *testing.T) {
	t.Setenv(webhookEnv, "")
	dir := t.TempDir()
	sock := filepath.Join(dir, "s.sock")
	badCfg := filepath.Join(dir, "bad.toml")
	require.NoError(t, os.WriteFile(badCfg, []byte("[[endpoint]]\nname = \"p\"\nurl = \"https://h/"+cfgSecret+"\"\nurl-file = \"/x\"\n"), 0o600))
	for _, tc := range []struct {
		args []string
		env  string
		code int
		want string
	}{
		{[]string{"--socket", sock, "--data-dir", dir, "--socket-mode", "999"}, "", 2, `invalid value "999" for flag -socket-mode`},
		{[]string{"--socket", sock, "--data-dir", dir, "--socket-group", "no-such-group-xyz"}, "", 1, `--socket-group: unknown group "no-such-group-xyz"`},
		{[]string{"--socket", sock, "--data-dir", dir, "--listen", "nope"}, "", 1, `--listen: "nope" is not host:port`},
		{[]string{"--socket", sock, "--data-dir", dir, "--max-age", "0s"}, "", 1, `--max-age must be positive`},
		{[]string{"--socket", sock, "--data-dir", dir, "--resolve-deleted-tasks"}, "", 1, `--resolve-deleted-tasks asks Kapacitor which tasks exist: it needs --kapacitor-url`},
		{[]string{"--socket", sock, "--data-dir", dir, "--kapacitor-check-interval", "0s"}, "", 1, `--kapacitor-check-interval must be at least 100ms, got 0s`},
		{[]string{"--socket", sock, "--data-dir", dir, "--timeout", "-1s"}, "", 1, `--timeout -1s is negative`},
		{[]string{"--socket", sock, "--data-dir", dir, "--memory-limit", "8MiB"}, "", 1, `--memory-limit must be at least 32MiB, got 8MiB`},
		{[]string{"--socket", sock, "--data-dir", dir}, "gopher://h/" + cfgSecret, 1, `$SQUADCAST_WEBHOOK_URL: the URL has scheme "gopher"`},
		{[]string{"--config", filepath.Join(dir, "missing.toml")}, "", 1, "read config file"},
		{[]string{"--config", badCfg, "--socket", sock, "--data-dir", dir}, "", 1, `config file ` + badCfg + `: endpoint "p": url and url-file exclude each other`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Setenv(webhookEnv, tc.env)
			var errb bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			assert.Equal(t, tc.code, runServe(ctx, tc.args, &errb))
			// Errors found before the logger exists are plain text; later
			// ones are in a JSON log line.
			out := errb.String()
			assert.True(t, strings.Contains(out, tc.want) || strings.Contains(out, strings.ReplaceAll(tc.want, `"`, `\"`)),
				"%q does not contain %q", out, tc.want)
			assert.NotContains(t, out, cfgSecret)
			_, err := os.Lstat(sock)
			assert.True(t, os.IsNotExist(err), "no socket is created")
		})
	}
}

// TestApplyMemoryLimit: --memory-limit sets the runtime's soft memory
// limit; without it the limit in force (from $GOMEMLIMIT, or none) stays.
func TestApplyMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	debug.SetMemoryLimit(math.MaxInt64)
	assert.Equal(t, "none", applyMemoryLimit(0))
	assert.Equal(t, "300MiB", applyMemoryLimit(300<<20))
	assert.Equal(t, int64(300<<20), debug.SetMemoryLimit(-1))
	assert.Equal(t, "300MiB", applyMemoryLimit(0), "no --memory-limit keeps the limit in force")
}

// TestServeMemoryLimit: serve applies --memory-limit and logs the limit
// in force.
func TestServeMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	d := startTestDaemon(t, "--url", "http://127.0.0.1:1/v1/incidents/kapacitor/KEY", "--memory-limit", "512MiB")
	assert.Equal(t, int64(512<<20), debug.SetMemoryLimit(-1))
	require.Eventually(t, func() bool { return strings.Contains(d.logs.String(), `"memory_limit":"512MiB"`) }, 10*time.Second, 10*time.Millisecond, d.logs.String())
	assert.Equal(t, 0, d.stop())
}
