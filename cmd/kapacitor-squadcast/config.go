package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/user"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"go.uber.org/zap/zapcore"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast"
	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// serveConfig is the daemon's configuration: the built-in defaults, then
// the config file's values (--config), then the flags given on the
// command line, then $SQUADCAST_WEBHOOK_URL for a default endpoint that
// has no URL yet.
type serveConfig struct {
	configFile      string
	socket          string
	batchSocket     string
	socketMode      socketMode
	socketGroup     string
	dataDir         string
	url             string
	format          string
	workers         int
	queueSize       int
	logLevel        string
	logFormat       string
	shutdownTimeout time.Duration
	kapacitorURL    string
	udfName         string
	rateLimit       squadcast.RateLimit
	retryMaxWait    time.Duration
	maxAge          time.Duration
	listen          string
	maxFrameSize    byteSize
	memoryLimit     byteSize // 0: not set ($GOMEMLIMIT, else none)

	// Only from the config file: the default endpoint's timeout and
	// headers, and the other endpoints.
	defaultTimeout time.Duration
	defaultHeaders map[string]string
	endpoints      []squadcast.Endpoint
	// urlFromEnv says the default endpoint's URL came from $SQUADCAST_WEBHOOK_URL.
	urlFromEnv bool
}

// webhookEnv is the environment variable that gives the default endpoint's URL.
const webhookEnv = "SQUADCAST_WEBHOOK_URL"

// defaultServeConfig returns the built-in defaults.
func defaultServeConfig() serveConfig {
	return serveConfig{
		socketMode:      0o660,
		format:          squadcast.FormatKapacitor,
		workers:         squadcast.DefaultWorkers,
		queueSize:       squadcast.DefaultQueueSize,
		logLevel:        "info",
		logFormat:       "json",
		shutdownTimeout: 10 * time.Second,
		udfName:         "squadcast",
		retryMaxWait:    squadcast.DefaultRetryWaitMax,
		maxAge:          squadcast.DefaultMaxAge,
		maxFrameSize:    udf.DefaultMaxFrame,
	}
}

// defineFlags defines serve's flags on fs, bound to c, each defaulting to
// c's current value (so that flags left out keep the config file's values).
func (c *serveConfig) defineFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.configFile, "config", c.configFile, "TOML config `file` (see examples/kapacitor-squadcast.toml); flags given on the command line override it (default none)")
	fs.StringVar(&c.socket, "socket", c.socket, "unix socket to serve Kapacitor on: the `path` in kapacitor.conf's [udf.functions.squadcast] socket (required)")
	fs.StringVar(&c.batchSocket, "batch-socket", c.batchSocket, "unix socket `path` to serve batch tasks on: kapacitor.conf's [udf.functions.squadcast_batch] socket, for @squadcast_batch() (default none)")
	fs.Var(&c.socketMode, "socket-mode", "permission `bits` of the socket file, in octal")
	fs.StringVar(&c.socketGroup, "socket-group", c.socketGroup, "`group` (name or id) to give the socket file, e.g. kapacitor's; the daemon must be a member (default the daemon's group)")
	fs.StringVar(&c.dataDir, "data-dir", c.dataDir, "`directory` for the daemon's state; created if missing (required)")
	fs.StringVar(&c.url, "url", c.url, "Squadcast webhook `URL` of the default endpoint (default $"+webhookEnv+"); it holds a secret key: prefer the environment or the config file")
	fs.StringVar(&c.format, "format", c.format, "payload `format` of the default endpoint: kapacitor or incident-webhook")
	fs.IntVar(&c.workers, "workers", c.workers, "delivery workers: incidents delivered in parallel")
	fs.IntVar(&c.queueSize, "queue-size", c.queueSize, "events held in memory for delivery; more wait in the outbox on disk, and are read back as these are delivered")
	fs.StringVar(&c.logLevel, "log-level", c.logLevel, "log `level`: debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", c.logFormat, "log `format`: json or console")
	fs.StringVar(&c.kapacitorURL, "kapacitor-url", c.kapacitorURL, "Kapacitor's HTTP API `URL` (e.g. http://localhost:9092); when set, tasks left on a previous daemon process's broken connection are restarted at start-up (default off)")
	fs.StringVar(&c.udfName, "udf-name", c.udfName, "the UDF's `name` in kapacitor.conf ([udf.functions.NAME], and NAME_batch for --batch-socket): which tasks --kapacitor-url restarts")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", c.shutdownTimeout, "on SIGTERM, how long pending deliveries may still take (what is left stays in the outbox)")
	fs.DurationVar(&c.defaultTimeout, "timeout", c.defaultTimeout, "how long one HTTP `attempt` to the default endpoint (and to inline .url()s) may take before it counts as failed and is retried (default 10s)")
	fs.Var(&c.rateLimit, "rate-limit", "request `rate` limit of the default endpoint, like 300/m, 15/m, 5/s or 1000/h (match your Squadcast plan); tasks' inline .url()s get the same limit, each URL its own (default none)")
	fs.DurationVar(&c.retryMaxWait, "retry-max-wait", c.retryMaxWait, "longest `wait` between two attempts of an event (exponential backoff with jitter from 1s)")
	fs.DurationVar(&c.maxAge, "max-age", c.maxAge, "how long an undelivered event is retried before it becomes a dead letter (see 'outbox list')")
	fs.Var(&c.maxFrameSize, "max-frame-size", "largest request `size` Kapacitor may send on a connection, like 16MiB or 512KiB: a longer frame ends that connection (its task fails) before anything is allocated; at least 64KiB")
	fs.Var(&c.memoryLimit, "memory-limit", "soft memory limit of the daemon, a `size` like 256MiB (Go's GOMEMLIMIT, which it overrides): near it the garbage collector works harder, and memory freed after a burst goes back to the system sooner; see docs/operations.md (default none: $GOMEMLIMIT, else no limit)")
	fs.StringVar(&c.listen, "listen", c.listen, "`address` (host:port) to serve /metrics, /healthz, /readyz and /debug/pprof/ on over HTTP, e.g. 127.0.0.1:9187 (default off)")
}

// socketMode is the permission bits of the socket file, written in octal.
type socketMode os.FileMode

// String returns the mode in octal, like "0660".
func (m *socketMode) String() string { return fmt.Sprintf("%04o", uint32(*m)) }

// Set parses an octal mode such as "0660" or "660".
func (m *socketMode) Set(s string) error {
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0o"), 8, 32)
	if err != nil || v > 0o777 {
		return fmt.Errorf("%q is not a permission mode in octal from 0000 to 0777 (like 0660)", s)
	}
	*m = socketMode(v)
	return nil
}

// UnmarshalTOML takes the mode as a string: a TOML integer would be read
// in decimal (660 is not 0660), so it is refused.
func (m *socketMode) UnmarshalTOML(v any) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("write the mode as a string in octal, like \"0660\" (got %T)", v)
	}
	return m.Set(s)
}

// duration is a TOML duration: a string such as "10s" or "5m". A bare
// number is refused (it would be nanoseconds).
type duration time.Duration

// UnmarshalTOML parses a duration string.
func (d *duration) UnmarshalTOML(v any) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("write a duration as a string, like \"10s\" or \"5m\" (got %T)", v)
	}
	x, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration (like \"10s\", \"5m\" or \"24h\")", s)
	}
	*d = duration(x)
	return nil
}

// fileConfig is the config file, decoded. A nil field was not given.
type fileConfig struct {
	Socket          *string        `toml:"socket"`
	BatchSocket     *string        `toml:"batch-socket"`
	SocketMode      *socketMode    `toml:"socket-mode"`
	SocketGroup     *string        `toml:"socket-group"`
	DataDir         *string        `toml:"data-dir"`
	Workers         *int           `toml:"workers"`
	QueueSize       *int           `toml:"queue-size"`
	LogLevel        *string        `toml:"log-level"`
	LogFormat       *string        `toml:"log-format"`
	ShutdownTimeout *duration      `toml:"shutdown-timeout"`
	RetryMaxWait    *duration      `toml:"retry-max-wait"`
	MaxAge          *duration      `toml:"max-age"`
	KapacitorURL    *string        `toml:"kapacitor-url"`
	UDFName         *string        `toml:"udf-name"`
	Listen          *string        `toml:"listen"`
	MaxFrameSize    *byteSize      `toml:"max-frame-size"`
	MemoryLimit     *byteSize      `toml:"memory-limit"`
	Endpoints       []fileEndpoint `toml:"endpoint"`
}

// fileEndpoint is one [[endpoint]] table.
type fileEndpoint struct {
	Name      *string           `toml:"name"`
	URL       *string           `toml:"url"`
	URLFile   *string           `toml:"url-file"`
	Format    *string           `toml:"format"`
	Timeout   *duration         `toml:"timeout"`
	Headers   map[string]string `toml:"headers"`
	RateLimit *string           `toml:"rate-limit"`
}

// endpointName is what an endpoint may be called: it is a metric label
// and a TICKscript string.
var endpointName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// loadConfigFile reads and validates a config file and applies it to
// c. Errors name the file and the key (and the endpoint) that is wrong, and
// never show a webhook URL's path or query.
func loadConfigFile(path string, c *serveConfig) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config file: %w", err)
	}
	if err := applyConfig(string(b), c); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// applyConfig decodes and validates config file text and applies it to c.
func applyConfig(text string, c *serveConfig) error {
	var fc fileConfig
	md, err := toml.Decode(text, &fc)
	if err != nil {
		// The library's errors name the line and key; they may quote a
		// value, which a URL could be: redact those.
		msg := strings.TrimPrefix(err.Error(), "toml: ")
		if m := tomlErr.FindStringSubmatch(msg); m != nil {
			msg = "line " + m[1] + ": " + m[2] + ": " + m[3]
		}
		return errors.New(redactURLs(msg))
	}
	if err := unknownKeys(md); err != nil {
		return errors.New(redactURLs(err.Error()))
	}
	if err := fc.apply(c); err != nil {
		// Values are quoted in some messages: never a URL's path.
		return errors.New(redactURLs(err.Error()))
	}
	return nil
}

// unknownKeys reports the first key of the file that is not a setting,
// naming the endpoint table it is in.
func unknownKeys(md toml.MetaData) error {
	undecoded := map[string]bool{}
	for _, k := range md.Undecoded() {
		undecoded[k.String()] = true
	}
	if len(undecoded) == 0 {
		return nil
	}
	endpoint := -1
	for _, k := range md.Keys() {
		if len(k) == 1 && k[0] == "endpoint" {
			endpoint++
		}
		if !undecoded[k.String()] {
			continue
		}
		if len(k) == 2 && k[0] == "endpoint" && endpoint >= 0 {
			return fmt.Errorf("endpoint #%d: unknown key %q (want name, url, url-file, format, timeout, headers or rate-limit)", endpoint+1, k[1])
		}
		return fmt.Errorf("unknown key %q (the keys are the long names of serve's flags, and [[endpoint]] tables)", k.String())
	}
	return fmt.Errorf("unknown keys %v", md.Undecoded())
}

// redactURLs replaces http(s) URLs in s by their redacted form.
func redactURLs(s string) string {
	return urlInText.ReplaceAllStringFunc(s, squadcast.RedactURL)
}

// tomlErr is the shape of the TOML library's decoding errors.
var tomlErr = regexp.MustCompile(`(?s)^line (\d+) \(last key "([^"]*)"\): (.*)$`)

var urlInText = regexp.MustCompile(`(?i)\bhttps?://[^\s"'<>\x60]+`)

// apply validates the file's settings, key by key, and sets them in c.
func (fc *fileConfig) apply(c *serveConfig) error {
	str := func(key string, v *string, dst *string, check func(string) error) error {
		if v == nil {
			return nil
		}
		if *v == "" {
			return fmt.Errorf("%s: is empty (leave the key out for the default)", key)
		}
		if check != nil {
			if err := check(*v); err != nil {
				return fmt.Errorf("%s: %w", key, err)
			}
		}
		*dst = *v
		return nil
	}
	dur := func(key string, v *duration, dst *time.Duration, check func(time.Duration) error) error {
		if v == nil {
			return nil
		}
		if err := check(time.Duration(*v)); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		*dst = time.Duration(*v)
		return nil
	}
	if err := errors.Join(
		str("socket", fc.Socket, &c.socket, nil),
		str("batch-socket", fc.BatchSocket, &c.batchSocket, nil),
		str("socket-group", fc.SocketGroup, &c.socketGroup, func(g string) error { _, err := lookupGroup(g); return err }),
		str("data-dir", fc.DataDir, &c.dataDir, nil),
		str("log-level", fc.LogLevel, &c.logLevel, checkLogLevel),
		str("log-format", fc.LogFormat, &c.logFormat, checkLogFormat),
		str("kapacitor-url", fc.KapacitorURL, &c.kapacitorURL, checkKapacitorURL),
		str("udf-name", fc.UDFName, &c.udfName, nil),
		str("listen", fc.Listen, &c.listen, checkListen),
		dur("shutdown-timeout", fc.ShutdownTimeout, &c.shutdownTimeout, checkShutdownTimeout),
		dur("retry-max-wait", fc.RetryMaxWait, &c.retryMaxWait, checkRetryMaxWait),
		dur("max-age", fc.MaxAge, &c.maxAge, checkMaxAge),
	); err != nil {
		return err
	}
	if fc.SocketMode != nil {
		c.socketMode = *fc.SocketMode
	}
	if fc.MaxFrameSize != nil {
		if err := checkFrameSize(*fc.MaxFrameSize); err != nil {
			return fmt.Errorf("max-frame-size: %w", err)
		}
		c.maxFrameSize = *fc.MaxFrameSize
	}
	if fc.MemoryLimit != nil {
		if err := checkMemoryLimit(*fc.MemoryLimit); err != nil {
			return fmt.Errorf("memory-limit: %w", err)
		}
		c.memoryLimit = *fc.MemoryLimit
	}
	if fc.Workers != nil {
		if err := checkWorkers(*fc.Workers); err != nil {
			return fmt.Errorf("workers: %w", err)
		}
		c.workers = *fc.Workers
	}
	if fc.QueueSize != nil {
		if err := checkQueueSize(*fc.QueueSize); err != nil {
			return fmt.Errorf("queue-size: %w", err)
		}
		c.queueSize = *fc.QueueSize
	}
	seen := map[string]bool{}
	for i, fe := range fc.Endpoints {
		e, err := fe.endpoint(i)
		if err != nil {
			return err
		}
		if seen[e.Name] {
			return fmt.Errorf("endpoint %q: name is used by an earlier endpoint", e.Name)
		}
		seen[e.Name] = true
		if e.Name == udf.DefaultEndpoint {
			c.url, c.format, c.rateLimit = e.URL, e.Format, e.RateLimit
			c.defaultTimeout, c.defaultHeaders = e.Timeout, e.Headers
			continue
		}
		c.endpoints = append(c.endpoints, e)
	}
	return nil
}

// endpoint validates the i-th [[endpoint]] table and returns it.
func (fe fileEndpoint) endpoint(i int) (squadcast.Endpoint, error) {
	if fe.Name == nil || *fe.Name == "" {
		return squadcast.Endpoint{}, fmt.Errorf("endpoint #%d: name is missing", i+1)
	}
	e := squadcast.Endpoint{Name: *fe.Name, Format: squadcast.FormatKapacitor, Headers: fe.Headers}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("endpoint %q: %s", e.Name, fmt.Sprintf(format, args...))
	}
	if !endpointName.MatchString(e.Name) {
		return e, fail("name: use letters, digits, '_', '-' and '.' only, starting with a letter or digit")
	}
	if e.Name == squadcast.InlineLabel {
		return e, fail("name: %q is reserved for tasks' own .url()s", squadcast.InlineLabel)
	}
	switch {
	case fe.URL != nil && fe.URLFile != nil:
		return e, fail("url and url-file exclude each other: give one")
	case fe.URL != nil:
		if err := squadcast.CheckURL(*fe.URL); err != nil {
			return e, fail("url: %v", err)
		}
		e.URL = *fe.URL
	case fe.URLFile != nil:
		u, err := readURLFile(*fe.URLFile)
		if err != nil {
			return e, fail("url-file: %v", err)
		}
		e.URL = u
	default:
		return e, fail("url or url-file is required")
	}
	if fe.Format != nil {
		switch *fe.Format {
		case squadcast.FormatKapacitor, squadcast.FormatIncidentWebhook:
			e.Format = *fe.Format
		default:
			return e, fail("format: %q is unknown (want %q or %q)", *fe.Format, squadcast.FormatKapacitor, squadcast.FormatIncidentWebhook)
		}
	}
	if fe.Timeout != nil {
		if *fe.Timeout <= 0 {
			return e, fail("timeout: must be positive, got %s", time.Duration(*fe.Timeout))
		}
		e.Timeout = time.Duration(*fe.Timeout)
	}
	if err := squadcast.ValidateHeaders(fe.Headers); err != nil {
		return e, fail("headers: %v", err)
	}
	if fe.RateLimit != nil {
		r, err := squadcast.ParseRateLimit(*fe.RateLimit)
		if err != nil {
			return e, fail("rate-limit: %v", err)
		}
		e.RateLimit = r
	}
	return e, nil
}

// readURLFile reads a webhook URL from a file (surrounding white space
// trimmed). Its errors never show the file's content.
func readURLFile(path string) (string, error) {
	if path == "" {
		return "", errors.New("is empty")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	u := strings.TrimSpace(string(b))
	if err := squadcast.CheckURL(u); err != nil {
		return "", fmt.Errorf("the URL in %s %v", path, err)
	}
	return u, nil
}

// Checks shared by the config file (errors prefixed with the key) and the
// flags (prefixed with the flag).

func checkWorkers(n int) error {
	if n < 1 {
		return fmt.Errorf("must be at least 1, got %d", n)
	}
	return nil
}

func checkQueueSize(n int) error {
	if n < 1 {
		return fmt.Errorf("must be at least 1, got %d", n)
	}
	return nil
}

func checkLogLevel(s string) error {
	if _, err := zapcore.ParseLevel(s); err != nil {
		return fmt.Errorf("unknown level %q (want debug, info, warn or error)", s)
	}
	return nil
}

func checkLogFormat(s string) error {
	if s != "json" && s != "console" {
		return fmt.Errorf("unknown format %q (want json or console)", s)
	}
	return nil
}

func checkKapacitorURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("want http(s)://host:port, got scheme %q", u.Scheme)
	}
	return nil
}

func checkListen(s string) error {
	if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
		return fmt.Errorf("%q is not host:port (like 127.0.0.1:9187 or :9187)", s)
	}
	return nil
}

func checkShutdownTimeout(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("must not be negative, got %s", d)
	}
	return nil
}

func checkRetryMaxWait(d time.Duration) error {
	if d < squadcast.DefaultRetryWaitMin {
		return fmt.Errorf("must be at least %s, got %s", squadcast.DefaultRetryWaitMin, d)
	}
	return nil
}

func checkMaxAge(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("must be positive, got %s", d)
	}
	return nil
}

// lookupGroup returns the id of a group given by name or number.
func lookupGroup(g string) (int, error) {
	if id, err := strconv.Atoi(g); err == nil {
		if id < 0 {
			return 0, fmt.Errorf("group id %d is negative", id)
		}
		return id, nil
	}
	grp, err := user.LookupGroup(g)
	if err != nil {
		return 0, fmt.Errorf("unknown group %q", g)
	}
	id, err := strconv.Atoi(grp.Gid)
	if err != nil {
		return 0, fmt.Errorf("group %q has a non-numeric id %q", g, grp.Gid)
	}
	return id, nil
}

// loadServeConfig builds serve's configuration from args: the flags are
// parsed once to find --config, then, with the file applied, again so that
// the flags given override it. It prints the usage on -h and flag errors;
// ok is false (with the exit code) when the command must not run.
func loadServeConfig(name string, args []string, stderr io.Writer, usage string) (c serveConfig, code int, ok bool, err error) {
	c = defaultServeConfig()
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	c.defineFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "%s\nFlags:\n", usage)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return c, code, false, nil
	}
	if c.configFile != "" {
		fc := defaultServeConfig()
		fc.configFile = c.configFile
		if err := loadConfigFile(c.configFile, &fc); err != nil {
			return c, 1, false, err
		}
		fs2 := flag.NewFlagSet(name, flag.ContinueOnError)
		fc.defineFlags(fs2)
		fs2.SetOutput(stderr)
		if err := fs2.Parse(args); err != nil {
			return c, 2, false, err
		}
		c = fc
	}
	c.applyEnv()
	return c, 0, true, nil
}

// applyEnv gives the default endpoint the URL in $SQUADCAST_WEBHOOK_URL when
// neither the flags nor the config file gave one.
func (c *serveConfig) applyEnv() {
	if c.url == "" {
		if u := os.Getenv(webhookEnv); u != "" {
			c.url, c.urlFromEnv = u, true
		}
	}
}

// endpointList returns the configured endpoints: the default one (when it
// has a URL), then the config file's others, in file order.
func (c *serveConfig) endpointList() []squadcast.Endpoint {
	var eps []squadcast.Endpoint
	if c.url != "" {
		eps = append(eps, squadcast.Endpoint{Name: udf.DefaultEndpoint, URL: c.url, Format: c.format,
			Timeout: c.defaultTimeout, RateLimit: c.rateLimit, Headers: c.defaultHeaders})
	}
	return append(eps, c.endpoints...)
}

// endpointNames returns the names of the configured endpoints.
func (c *serveConfig) endpointNames() []string {
	var names []string
	for _, e := range c.endpointList() {
		names = append(names, e.Name)
	}
	return names
}

// validate checks the merged configuration; errors name the flag.
func (c *serveConfig) validate() error {
	inFile := ""
	if c.configFile != "" {
		inFile = " (or its key in " + c.configFile + ")"
	}
	if c.socket == "" {
		return errors.New("--socket is required" + inFile)
	}
	if c.dataDir == "" {
		return errors.New("--data-dir is required" + inFile)
	}
	if c.batchSocket != "" && c.batchSocket == c.socket {
		return errors.New("--batch-socket must differ from --socket")
	}
	return c.validateSettings()
}

// validateSettings checks everything but the required --socket and --data-dir.
func (c *serveConfig) validateSettings() error {
	if err := checkWorkers(c.workers); err != nil {
		return fmt.Errorf("--workers %w", err)
	}
	if err := checkQueueSize(c.queueSize); err != nil {
		return fmt.Errorf("--queue-size %w", err)
	}
	if c.kapacitorURL != "" {
		if err := checkKapacitorURL(c.kapacitorURL); err != nil {
			return fmt.Errorf("--kapacitor-url: %w", err)
		}
	}
	if err := checkRetryMaxWait(c.retryMaxWait); err != nil {
		return fmt.Errorf("--retry-max-wait %w", err)
	}
	if err := checkMaxAge(c.maxAge); err != nil {
		return fmt.Errorf("--max-age %w", err)
	}
	if err := checkShutdownTimeout(c.shutdownTimeout); err != nil {
		return fmt.Errorf("--shutdown-timeout %w", err)
	}
	if err := checkFrameSize(c.maxFrameSize); err != nil {
		return fmt.Errorf("--max-frame-size %w", err)
	}
	if err := checkMemoryLimit(c.memoryLimit); err != nil {
		return fmt.Errorf("--memory-limit %w", err)
	}
	if c.listen != "" {
		if err := checkListen(c.listen); err != nil {
			return fmt.Errorf("--listen: %w", err)
		}
	}
	if c.socketGroup != "" {
		if _, err := lookupGroup(c.socketGroup); err != nil {
			return fmt.Errorf("--socket-group: %w", err)
		}
	}
	if c.udfName == "" {
		return errors.New("--udf-name is empty")
	}
	if c.defaultTimeout < 0 {
		return fmt.Errorf("--timeout %s is negative", c.defaultTimeout)
	}
	if !c.rateLimit.IsZero() && c.url == "" {
		return errors.New("--rate-limit limits the default endpoint: it needs --url or " + webhookEnv)
	}
	if c.url != "" {
		if err := squadcast.CheckURL(c.url); err != nil {
			src := "--url"
			if c.urlFromEnv {
				src = "$" + webhookEnv
			}
			return fmt.Errorf("%s: the URL %w", src, err)
		}
	}
	if !slices.Contains([]string{squadcast.FormatKapacitor, squadcast.FormatIncidentWebhook}, c.format) {
		return fmt.Errorf("--format: %q is unknown (want %q or %q)", c.format, squadcast.FormatKapacitor, squadcast.FormatIncidentWebhook)
	}
	return nil
}
