package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os/user"
	"strconv"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast"
)

// setting is the check of one setting. The config file's errors read
// "name: error" (see checkFile), the merged configuration's "--name error"
// or "--name: error", as sep says (see validateSettings).
type setting struct {
	name  string
	sep   string
	check func(c *Config) error
}

// settings are the checks of the settings, in the order Validate reports
// them. The endpoints are checked apart: the config file's as it is read,
// the default one's flags by validateDefaultEndpoint.
var settings = []setting{
	{"workers", " ", func(c *Config) error { return atLeastOne(c.Workers) }},
	{"queue-size", " ", func(c *Config) error { return atLeastOne(c.QueueSize) }},
	{"kapacitor-url", ": ", func(c *Config) error { return ifSet(c.KapacitorURL.Reveal(), checkKapacitorURL) }},
	{"kapacitor-check-interval", " ", func(c *Config) error {
		return checkAtLeast(time.Duration(c.KapacitorCheckInterval), 100*time.Millisecond)
	}},
	{"retry-max-wait", " ", func(c *Config) error { return checkRetryMaxWait(time.Duration(c.RetryMaxWait)) }},
	{"max-age", " ", func(c *Config) error { return checkPositive(time.Duration(c.MaxAge)) }},
	{"shutdown-timeout", " ", func(c *Config) error { return checkNotNegative(time.Duration(c.ShutdownTimeout)) }},
	{"max-frame-size", " ", func(c *Config) error { return checkFrameSize(c.MaxFrameSize) }},
	{"memory-limit", " ", func(c *Config) error { return checkMemoryLimit(c.MemoryLimit) }},
	{"listen", ": ", func(c *Config) error { return ifSet(c.Listen, checkListen) }},
	{"relay-listen", ": ", checkRelay},
	{"relay-max-body", " ", func(c *Config) error { return checkRelayMaxBody(c.RelayMaxBody) }},
	{"relay-token-file", ": ", func(c *Config) error { return ifSet(c.RelayTokenFile, checkRelayTokenFile) }},
	{"socket-group", ": ", func(c *Config) error { return ifSet(c.SocketGroup, checkGroup) }},
	{"udf-name", " ", func(c *Config) error { return checkNotEmpty(c.UDFName) }},
	// serve checks the log settings first, as it builds its logger (newLogger).
	{"log-level", ": ", func(c *Config) error { return checkLogLevel(c.LogLevel) }},
	{"log-format", ": ", func(c *Config) error { return checkLogFormat(c.LogFormat) }},
}

// ifSet checks s when it is set: "" means off.
func ifSet(s string, check func(string) error) error {
	if s == "" {
		return nil
	}
	return check(s)
}

func atLeastOne(n int) error {
	if n < 1 {
		return fmt.Errorf("must be at least 1, got %d", n)
	}
	return nil
}

func checkNotEmpty(s string) error {
	if s == "" {
		return errors.New("is empty")
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

func checkNotNegative(d time.Duration) error {
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

func checkAtLeast(d, least time.Duration) error {
	if d < least {
		return fmt.Errorf("must be at least %s, got %s", least, d)
	}
	return nil
}

func checkPositive(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("must be positive, got %s", d)
	}
	return nil
}

// checkFormat checks a payload format.
func checkFormat(f string) error {
	if f != squadcast.FormatKapacitor && f != squadcast.FormatIncidentWebhook {
		return fmt.Errorf("%q is unknown (want %q or %q)", f, squadcast.FormatKapacitor, squadcast.FormatIncidentWebhook)
	}
	return nil
}

func checkGroup(g string) error {
	_, err := lookupGroup(g)
	return err
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
