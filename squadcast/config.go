package squadcast

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Payload formats, as given in an Endpoint or in a task's .format option.
const (
	// FormatKapacitor is Kapacitor's own alert JSON, as its .post() handler
	// sends it; Squadcast's "Kapacitor" alert source takes it.
	FormatKapacitor = "kapacitor"
	// FormatIncidentWebhook is Squadcast's Incident Webhook (API v2) JSON.
	FormatIncidentWebhook = "incident-webhook"
)

// Defaults applied by New (and Validate) to zero-valued settings.
const (
	// DefaultTimeout is the time one HTTP attempt may take.
	DefaultTimeout = 10 * time.Second
	// DefaultWorkers is the number of concurrent deliveries. A worker that
	// waits on a slow endpoint costs a goroutine and a connection, nothing
	// more; 32 delivers 200 incidents to an endpoint taking 100 ms per
	// request over 20 times faster than Kapacitor's .post() (make bench),
	// and Squadcast's per-minute limits are enforced by the rate limiter,
	// not by the number of workers.
	DefaultWorkers = 32
	// DefaultQueueSize is the number of events that may wait in memory
	// (more wait in the outbox only).
	DefaultQueueSize = 10000
	// DefaultRetryWaitMin is the shortest wait between two attempts.
	DefaultRetryWaitMin = time.Second
	// DefaultRetryWaitMax is the longest wait between two attempts.
	DefaultRetryWaitMax = 5 * time.Minute
	// DefaultMaxAge is how long an event is retried before it becomes a dead letter.
	DefaultMaxAge = 24 * time.Hour
	// DefaultUserAgent is sent when Config.UserAgent is empty.
	DefaultUserAgent = "kapacitor-squadcast"
)

// Endpoint is a named Squadcast webhook.
type Endpoint struct {
	// Name is how tasks refer to the endpoint (option .endpoint).
	Name string
	// URL is the webhook URL. Its last path segment is a secret key: it is
	// never logged, and String hides it.
	URL string
	// Format is FormatKapacitor (the default when empty) or FormatIncidentWebhook.
	Format string
	// Timeout bounds one HTTP attempt; zero means DefaultTimeout.
	Timeout time.Duration
	// RateLimit bounds the requests sent to the endpoint's URL; the zero
	// value means none. Inline URLs (option .url) that take this endpoint's
	// settings get the same limit, each URL its own bucket.
	RateLimit RateLimit
	// Headers are sent with each request to the endpoint (and to inline
	// URLs that take its settings). Content-Type, Content-Length, Host and
	// Transfer-Encoding cannot be set.
	Headers map[string]string
	// Coalesce lets events that wait unsent be saved: a later trigger
	// replaces an earlier unsent one of the same incident, and a trigger
	// never sent that its resolve follows is dropped with it (see
	// coalesce.go). Off, every event is delivered.
	Coalesce bool
}

// String describes the endpoint without its URL's path and query, so that
// printing an Endpoint (or a Config) never shows the secret key.
func (e Endpoint) String() string {
	return fmt.Sprintf("{Name:%s URL:%s Format:%s Timeout:%s RateLimit:%s Headers:%d Coalesce:%t}", e.Name, RedactURL(e.URL), e.Format, e.Timeout, e.RateLimit, len(e.Headers), e.Coalesce)
}

// GoString is like String, for %#v.
func (e Endpoint) GoString() string { return "squadcast.Endpoint" + e.String() }

// Config configures a Sender. Zero values mean the defaults; DataDir is required.
type Config struct {
	// Endpoints are the named webhooks tasks may use.
	Endpoints []Endpoint
	// DataDir is the directory of the outbox file (OutboxFile), created
	// (0700) if missing. Only one Sender may use it at a time.
	DataDir string
	// Workers is the number of concurrent deliveries (default DefaultWorkers).
	Workers int
	// QueueSize is the maximum number of events held in memory across all
	// incidents (waiting, in backoff or in flight; default DefaultQueueSize),
	// those loaded from the outbox at start included. Beyond it, events are
	// kept in the outbox only (see Sender), never refused.
	QueueSize int
	// RetryWaitMin and RetryWaitMax bound the wait between two attempts of
	// an event (defaults DefaultRetryWaitMin and DefaultRetryWaitMax).
	// There is no limit on the number of attempts: see MaxAge.
	RetryWaitMin time.Duration
	RetryWaitMax time.Duration
	// MaxAge is how long after it was published an event is retried: an
	// attempt that fails after that makes it a dead letter (default DefaultMaxAge).
	MaxAge time.Duration
	// Logger receives delivery logs; nil means no logging.
	Logger *zap.Logger
	// UserAgent is the User-Agent header (default DefaultUserAgent).
	UserAgent string
	// Observer, when set, hears the result of every delivery attempt (for metrics).
	Observer Observer
	// FirstInFirstOut gives the slots of a rate-limited or paused endpoint
	// to its waiting incidents in the order their events came, as before
	// priority (see rank in throttle.go), instead of most important first.
	// It exists to measure what priority gains (make bench); no flag or
	// option of the daemon sets it.
	FirstInFirstOut bool
}

// withDefaults returns c with zero values replaced by the defaults.
func (c Config) withDefaults() Config {
	c.Endpoints = append([]Endpoint(nil), c.Endpoints...)
	for i := range c.Endpoints {
		if c.Endpoints[i].Format == "" {
			c.Endpoints[i].Format = FormatKapacitor
		}
		if c.Endpoints[i].Timeout == 0 {
			c.Endpoints[i].Timeout = DefaultTimeout
		}
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.QueueSize == 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.RetryWaitMin == 0 {
		c.RetryWaitMin = DefaultRetryWaitMin
	}
	if c.RetryWaitMax == 0 {
		c.RetryWaitMax = DefaultRetryWaitMax
	}
	if c.MaxAge == 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.UserAgent == "" {
		c.UserAgent = DefaultUserAgent
	}
	return c
}

// Validate reports the first bad setting, naming its field. Zero values are
// valid (they mean the defaults). Errors never contain a URL's path or query.
func (c Config) Validate() error {
	return c.withDefaults().validate()
}

func (c Config) validate() error {
	seen := make(map[string]bool, len(c.Endpoints))
	for i, e := range c.Endpoints {
		if e.Name == "" {
			return fmt.Errorf("endpoints[%d]: name is empty", i)
		}
		if seen[e.Name] {
			return fmt.Errorf("endpoints[%d]: name %q is used twice", i, e.Name)
		}
		seen[e.Name] = true
		if err := e.validate(); err != nil {
			return err
		}
	}
	if c.DataDir == "" {
		return errors.New("data dir: is empty (the outbox needs a directory)")
	}
	if c.Workers < 0 {
		return fmt.Errorf("workers: %d is negative", c.Workers)
	}
	if c.QueueSize < 0 {
		return fmt.Errorf("queue size: %d is negative", c.QueueSize)
	}
	if c.RetryWaitMin < 0 {
		return fmt.Errorf("retry wait min: %s is negative", c.RetryWaitMin)
	}
	if c.RetryWaitMax < 0 {
		return fmt.Errorf("retry wait max: %s is negative", c.RetryWaitMax)
	}
	if c.MaxAge < 0 {
		return fmt.Errorf("max age: %s is negative", c.MaxAge)
	}
	if strings.ContainsFunc(c.UserAgent, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }) {
		return fmt.Errorf("user agent %q has control characters", c.UserAgent)
	}
	if c.RetryWaitMin > c.RetryWaitMax {
		return fmt.Errorf("retry wait min %s is greater than retry wait max %s", c.RetryWaitMin, c.RetryWaitMax)
	}
	return nil
}

// Validate reports the first bad setting of an endpoint (with the
// defaults New applies: an empty format is FormatKapacitor), naming the
// endpoint and the setting. Errors never contain the URL.
func (e Endpoint) Validate() error {
	if e.Format == "" {
		e.Format = FormatKapacitor
	}
	return e.validate()
}

func (e Endpoint) validate() error {
	if _, err := parseWebhookURL(e.URL); err != nil {
		return fmt.Errorf("endpoint %q: url %w", e.Name, err)
	}
	if !validFormat(e.Format) {
		return fmt.Errorf("endpoint %q: format %q is unknown (want %q or %q)", e.Name, e.Format, FormatKapacitor, FormatIncidentWebhook)
	}
	if e.Timeout < 0 {
		return fmt.Errorf("endpoint %q: timeout %s is negative", e.Name, e.Timeout)
	}
	if err := e.RateLimit.validate(); err != nil {
		return fmt.Errorf("endpoint %q: %w", e.Name, err)
	}
	if err := ValidateHeaders(e.Headers); err != nil {
		return fmt.Errorf("endpoint %q: %w", e.Name, err)
	}
	return nil
}

// reservedHeaders are set by the Sender (or net/http) and cannot be configured.
var reservedHeaders = []string{"Content-Type", "Content-Length", "Host", "Transfer-Encoding"}

// ValidateHeaders reports the first header (in name order) whose name is
// not a valid HTTP field name or is one the Sender sets itself, or whose
// value holds control characters. Errors name the header, never its value
// (it may be a token).
func ValidateHeaders(h map[string]string) error {
	names := make([]string, 0, len(h))
	for n := range h {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if !validHeaderName(n) {
			return fmt.Errorf("header %q: not a valid header name (letters, digits and !#$%%&'*+-.^_`|~ only)", n)
		}
		for _, r := range reservedHeaders {
			if strings.EqualFold(n, r) {
				return fmt.Errorf("header %q: set by the daemon, cannot be configured", n)
			}
		}
		if strings.ContainsFunc(h[n], func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }) {
			return fmt.Errorf("header %q: its value has control characters", n)
		}
	}
	return nil
}

// validHeaderName reports whether n is an RFC 9110 token.
func validHeaderName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// CheckURL reports whether raw is an absolute http(s) webhook URL with a
// host. Its errors say what is wrong ("has no host") and never contain
// the URL.
func CheckURL(raw string) error {
	_, err := parseWebhookURL(raw)
	return err
}

func validFormat(f string) bool { return f == FormatKapacitor || f == FormatIncidentWebhook }

// Errors of parseWebhookURL. None contains the URL.
var (
	errURLEmpty    = errors.New("is empty")
	errURLSyntax   = errors.New("cannot be parsed (not shown: it holds the secret key)")
	errURLNoHost   = errors.New("has no host")
	errURLNoScheme = errors.New("has no scheme (want http:// or https://)")
)

// parseWebhookURL checks that raw is an absolute http(s) URL with a host.
// Its errors never contain raw: url.Parse's do, so they are not wrapped.
func parseWebhookURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errURLEmpty
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errURLSyntax
	}
	switch u.Scheme {
	case "http", "https":
	case "":
		return nil, errURLNoScheme
	default:
		return nil, fmt.Errorf("has scheme %q (want http or https)", u.Scheme)
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, errURLNoHost
	}
	return u, nil
}
