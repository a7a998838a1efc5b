package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast"
	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf/relay"
)

// Config is the daemon's configuration, as serve runs with it and as
// check-config, send-test and the outbox commands read it. Load builds it:
// the built-in defaults (DefaultConfig), then the config file (--config),
// then the flags given on the command line, then $SQUADCAST_WEBHOOK_URL
// for a default endpoint that has no URL yet; Validate checks it.
//
// Its TOML keys are the long names of serve's flags (but config, and
// the default endpoint's url, format, timeout, rate-limit and coalesce,
// which are keys of [[endpoint]] tables), and [[endpoint]] tables. Printing a Config (fmt, JSON) never shows a secret: its URLs are
// squadcast.SecretURLs, and header values are left out.
type Config struct {
	// File is the config file it was read from (--config), "" for none.
	File string `toml:"-"`
	// DaemonConfig holds the sockets, data directory, listener, logs and limits.
	DaemonConfig
	// DeliveryConfig holds the sender's settings.
	DeliveryConfig
	// RelayConfig holds the relay's settings.
	RelayConfig
	// Endpoints are the named webhooks, the default endpoint (the one named
	// "default") first. The default endpoint alone may have no URL: when
	// --format, --timeout or --rate-limit are given without --url or
	// $SQUADCAST_WEBHOOK_URL; it is then not configured (see senderEndpoints).
	Endpoints []EndpointConfig `toml:"endpoint"`
	// URLFromEnv says the default endpoint's URL came from $SQUADCAST_WEBHOOK_URL.
	URLFromEnv bool `toml:"-"`
}

// DaemonConfig is how the daemon meets Kapacitor and its operator: the
// sockets and their servers, the data directory, the HTTP listener, the
// logs and the process's limits. Each field is the flag (and config file
// key) of its tag.
type DaemonConfig struct {
	// Socket is the unix socket stream tasks connect to (required).
	Socket string `toml:"socket"`
	// BatchSocket is the unix socket batch tasks connect to ("" for none).
	BatchSocket string `toml:"batch-socket"`
	// SocketMode is the permission bits of the socket files.
	SocketMode socketMode `toml:"socket-mode"`
	// SocketGroup is the group (name or id) of the socket files ("" for the daemon's).
	SocketGroup string `toml:"socket-group"`
	// DataDir is the directory of the outbox file (required).
	DataDir string `toml:"data-dir"`
	// Listen is the host:port of /metrics, /healthz and /readyz ("" for off).
	Listen string `toml:"listen"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `toml:"log-level"`
	// LogFormat is json or console.
	LogFormat string `toml:"log-format"`
	// ShutdownTimeout bounds the wait for pending deliveries at shutdown.
	ShutdownTimeout duration `toml:"shutdown-timeout"`
	// KapacitorURL is Kapacitor's HTTP API, to restart the tasks left on a
	// previous daemon process ("" for off). It may hold a user and password.
	KapacitorURL squadcast.SecretURL `toml:"kapacitor-url"`
	// ResolveDeletedTasks resolves the open incidents of the tasks deleted
	// from Kapacitor, then drops their saved state (needs KapacitorURL).
	ResolveDeletedTasks bool `toml:"resolve-deleted-tasks"`
	// KapacitorCheckInterval is how often ResolveDeletedTasks lists
	// Kapacitor's tasks: a task is deleted once two lists this far apart
	// lack it.
	KapacitorCheckInterval duration `toml:"kapacitor-check-interval"`
	// UDFName is the UDF's name in kapacitor.conf.
	UDFName string `toml:"udf-name"`
	// MaxFrameSize is the largest request a Kapacitor connection may send.
	MaxFrameSize byteSize `toml:"max-frame-size"`
	// MemoryLimit is the soft memory limit; 0: not set ($GOMEMLIMIT, else none).
	MemoryLimit byteSize `toml:"memory-limit"`
}

// DeliveryConfig is how events are delivered: the sender's settings. Each
// field is the flag (and config file key) of its tag.
type DeliveryConfig struct {
	// Workers is the number of incidents delivered in parallel.
	Workers int `toml:"workers"`
	// QueueSize is the number of events held in memory.
	QueueSize int `toml:"queue-size"`
	// RetryMaxWait is the longest wait between two attempts of an event.
	RetryMaxWait duration `toml:"retry-max-wait"`
	// MaxAge is how long an event is retried before it becomes a dead letter.
	MaxAge duration `toml:"max-age"`
}

// EndpointConfig is one [[endpoint]] table: a named Squadcast webhook. The
// one named "default" is also set by --url, --format, --timeout,
// --rate-limit and --coalesce, and by $SQUADCAST_WEBHOOK_URL.
type EndpointConfig struct {
	// Name is how tasks refer to the endpoint (.endpoint()).
	Name string `toml:"name"`
	// URL is the webhook URL; read from URLFile when that is given.
	URL squadcast.SecretURL `toml:"url"`
	// URLFile is a file holding the URL, instead of URL.
	URLFile string `toml:"url-file"`
	// Format is the payload format: kapacitor or incident-webhook.
	Format string `toml:"format"`
	// Timeout bounds one HTTP attempt; 0 means squadcast.DefaultTimeout.
	Timeout duration `toml:"timeout"`
	// Headers are sent with each request; their values may be tokens.
	Headers map[string]string `toml:"headers"`
	// RateLimit bounds the requests sent to the URL ("" or "none": no limit).
	RateLimit rateLimit `toml:"rate-limit"`
	// Coalesce saves the requests of events that wait unsent and that
	// Squadcast would not miss (squadcast.Endpoint.Coalesce).
	Coalesce bool `toml:"coalesce"`
}

// webhookEnv is the environment variable that gives the default endpoint's URL.
const webhookEnv = "SQUADCAST_WEBHOOK_URL"

// DefaultConfig returns the built-in defaults.
func DefaultConfig() Config {
	return Config{
		DaemonConfig: DaemonConfig{
			SocketMode:      0o660,
			LogLevel:        "info",
			LogFormat:       "json",
			ShutdownTimeout: duration(10 * time.Second),
			UDFName:         "squadcast",
			MaxFrameSize:    udf.DefaultMaxFrame,
			// Kapacitor's API is cheap to list, and a deleted task's
			// incidents are then resolved within about two minutes.
			KapacitorCheckInterval: duration(time.Minute),
		},
		RelayConfig: RelayConfig{RelayMaxBody: relay.DefaultMaxBody},
		DeliveryConfig: DeliveryConfig{
			Workers:      squadcast.DefaultWorkers,
			QueueSize:    squadcast.DefaultQueueSize,
			RetryMaxWait: duration(squadcast.DefaultRetryWaitMax),
			MaxAge:       duration(squadcast.DefaultMaxAge),
		},
	}
}

// Load builds serve's configuration from its command line, parsed once:
// the defaults, then the config file --config names, then the flags given
// (fs.Visit tells which), then $SQUADCAST_WEBHOOK_URL. It returns
// flag.ErrHelp for -h, a usageError (already printed to stderr, with the
// usage) for a bad flag or argument, and an error naming the file and the
// key for a bad config file. It does not validate the result: see Validate.
func Load(args []string, stderr io.Writer) (Config, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	given := DefaultConfig()
	defineFlags(fs, &given)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "%s\nFlags:\n", serveUsage)
		fs.PrintDefaults()
	}
	if err := parseArgs(fs, args, stderr); err != nil {
		return Config{}, err
	}
	c := DefaultConfig()
	if given.File != "" {
		if err := c.readFile(given.File); err != nil {
			return Config{}, err
		}
	}
	fs.Visit(func(f *flag.Flag) { overlay(&c, &given, f.Name) })
	c.applyEnv()
	return c, nil
}

// LoadFile reads a config file as serve would, without flags: the
// defaults, then the file (none when path is ""), then
// $SQUADCAST_WEBHOOK_URL. check-config, send-test and the outbox commands
// read the configuration this way.
func LoadFile(path string) (Config, error) {
	c := DefaultConfig()
	if path != "" {
		if err := c.readFile(path); err != nil {
			return Config{}, err
		}
	}
	c.applyEnv()
	return c, nil
}

// applyEnv gives the default endpoint the URL in $SQUADCAST_WEBHOOK_URL when
// neither the flags nor the config file gave one.
func (c *Config) applyEnv() {
	if c.endpoint(squadcast.DefaultEndpoint).URL != "" {
		return
	}
	if u := os.Getenv(webhookEnv); u != "" {
		c.defaultEndpoint().URL = squadcast.SecretURL(u)
		c.URLFromEnv = true
	}
}

// endpoint returns the endpoint of that name; the zero EndpointConfig when
// there is none.
func (c *Config) endpoint(name string) EndpointConfig {
	if i := c.endpointIndex(name); i >= 0 {
		return c.Endpoints[i]
	}
	return EndpointConfig{}
}

// endpointIndex returns the index of the endpoint of that name, -1 for none.
func (c *Config) endpointIndex(name string) int {
	return slices.IndexFunc(c.Endpoints, func(e EndpointConfig) bool { return e.Name == name })
}

// defaultEndpoint returns the default endpoint, adding it (first, in the
// default format, without a URL) when there is none.
func (c *Config) defaultEndpoint() *EndpointConfig {
	if i := c.endpointIndex(squadcast.DefaultEndpoint); i >= 0 {
		return &c.Endpoints[i]
	}
	c.Endpoints = slices.Insert(c.Endpoints, 0, EndpointConfig{Name: squadcast.DefaultEndpoint, Format: squadcast.FormatKapacitor})
	return &c.Endpoints[0]
}

// senderEndpoints returns the configured endpoints as the sender takes
// them: the default one (when it has a URL), then the config file's
// others, in file order.
func (c *Config) senderEndpoints() []squadcast.Endpoint {
	var eps []squadcast.Endpoint
	for _, e := range c.Endpoints {
		if e.URL != "" {
			eps = append(eps, e.sender())
		}
	}
	return eps
}

// endpointNames returns the names of the configured endpoints.
func (c *Config) endpointNames() []string {
	var names []string
	for _, e := range c.senderEndpoints() {
		names = append(names, e.Name)
	}
	return names
}

// sender returns the endpoint as the sender takes it. Its rate limit was
// checked when it was set (by the config file's checks or --rate-limit).
func (e EndpointConfig) sender() squadcast.Endpoint {
	r, _ := e.RateLimit.parse()
	return squadcast.Endpoint{Name: e.Name, URL: e.URL.Reveal(), Format: e.Format, Timeout: time.Duration(e.Timeout),
		RateLimit: r, Headers: e.Headers, Coalesce: e.Coalesce}
}

// String describes the endpoint without its URL's path and query and
// without its header values, as squadcast.Endpoint's String does.
func (e EndpointConfig) String() string {
	return e.sender().String()
}

// GoString is like String, for %#v.
func (e EndpointConfig) GoString() string { return "main.EndpointConfig" + e.String() }

// MarshalJSON writes the endpoint with its URL redacted and its header
// values left out.
func (e EndpointConfig) MarshalJSON() ([]byte, error) {
	type plain EndpointConfig // without this method
	p := plain(e)
	if e.Headers != nil {
		p.Headers = make(map[string]string, len(e.Headers))
		for k := range e.Headers {
			p.Headers[k] = "[redacted]"
		}
	}
	return json.Marshal(p)
}

// Validate reports the first bad setting of c, naming its flag: serve
// refuses to start with it. check-config, which the flags may complete,
// checks all but the required --socket and --data-dir (validateSettings).
func (c Config) Validate() error {
	inFile := ""
	if c.File != "" {
		inFile = " (or its key in " + c.File + ")"
	}
	if c.Socket == "" {
		return errors.New("--socket is required" + inFile)
	}
	if c.DataDir == "" {
		return errors.New("--data-dir is required" + inFile)
	}
	if c.BatchSocket != "" && c.BatchSocket == c.Socket {
		return errors.New("--batch-socket must differ from --socket")
	}
	return c.validateSettings()
}

// validateSettings checks every setting but the required --socket and
// --data-dir, in the order of settings, then the default endpoint.
func (c Config) validateSettings() error {
	for _, s := range settings {
		if err := s.check(&c); err != nil {
			return fmt.Errorf("--%s%s%w", s.name, s.sep, err)
		}
	}
	if c.ResolveDeletedTasks && c.KapacitorURL == "" {
		return errors.New("--resolve-deleted-tasks asks Kapacitor which tasks exist: it needs --kapacitor-url")
	}
	return c.validateDefaultEndpoint()
}

// validateDefaultEndpoint checks what the flags and $SQUADCAST_WEBHOOK_URL
// give the default endpoint (the config file's endpoints are checked as
// the file is read).
func (c Config) validateDefaultEndpoint() error {
	i := c.endpointIndex(squadcast.DefaultEndpoint)
	if i < 0 {
		return nil
	}
	e := c.Endpoints[i]
	if e.Timeout < 0 {
		return fmt.Errorf("--timeout %s is negative", time.Duration(e.Timeout))
	}
	r, err := e.RateLimit.parse()
	if err != nil {
		return fmt.Errorf("--rate-limit: %w", err)
	}
	if !r.IsZero() && e.URL == "" {
		return errors.New("--rate-limit limits the default endpoint: it needs --url or " + webhookEnv)
	}
	if e.Coalesce && e.URL == "" {
		return errors.New("--coalesce coalesces the default endpoint's events: it needs --url or " + webhookEnv)
	}
	if e.URL != "" {
		if err := squadcast.CheckURL(e.URL.Reveal()); err != nil {
			src := "--url"
			if c.URLFromEnv {
				src = "$" + webhookEnv
			}
			return fmt.Errorf("%s: the URL %w", src, err)
		}
	}
	if err := checkFormat(e.Format); err != nil {
		return fmt.Errorf("--format: %w", err)
	}
	return nil
}
