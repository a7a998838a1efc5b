package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast"
)

const checkConfigUsage = `Usage: kapacitor-squadcast check-config --config FILE

Validates a config file as 'serve --config FILE' would read it (with
$SQUADCAST_WEBHOOK_URL filling the default endpoint when the file has none),
without serving: exit status 0 and a summary when it is valid, 1 and the
first error (naming the key, and the endpoint) when it is not. URLs are
shown without their secret path.
`

// runCheckConfig is the check-config command.
func runCheckConfig(args []string, stdout, stderr io.Writer) int {
	var path string
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.StringVar(&path, "config", "", "TOML config `file` to check (required)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "%s\nFlags:\n", checkConfigUsage)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	if path == "" {
		fmt.Fprintln(stderr, "kapacitor-squadcast check-config: --config is required")
		return 2
	}
	c, err := checkConfig(path)
	if err != nil {
		fmt.Fprintf(stderr, "kapacitor-squadcast check-config: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: valid\n", path)
	for _, line := range c.summary() {
		fmt.Fprintf(stdout, "  %s\n", line)
	}
	return 0
}

// checkConfig loads and validates a config file as serve would.
func checkConfig(path string) (Config, error) {
	c, err := LoadFile(path)
	if err != nil {
		return c, err
	}
	if err := c.validateSettings(); err != nil {
		return c, err
	}
	// What the sender itself checks (formats, headers, URLs, rate limits).
	for _, e := range c.senderEndpoints() {
		if err := e.Validate(); err != nil {
			return c, err
		}
	}
	return c, nil
}

// summary describes the configuration in a few lines, without secrets.
func (c *Config) summary() []string {
	or := func(v, def string) string {
		if v == "" {
			return def
		}
		return v
	}
	group := or(c.SocketGroup, "the daemon's")
	lines := []string{
		fmt.Sprintf("socket: %s (mode %s, group %s)", or(c.Socket, "not set: give --socket"), c.SocketMode.String(), group),
		fmt.Sprintf("data-dir: %s", or(c.DataDir, "not set: give --data-dir")),
		fmt.Sprintf("listen: %s", or(c.Listen, "off")),
	}
	eps := c.senderEndpoints()
	if len(eps) == 0 {
		lines = append(lines, "endpoints: none (tasks must give .url())")
	}
	for _, e := range eps {
		src := ""
		if e.Name == squadcast.DefaultEndpoint && c.URLFromEnv {
			src = ", URL from $" + webhookEnv
		}
		if e.Coalesce {
			src = ", coalescing" + src
		}
		lines = append(lines, fmt.Sprintf("endpoint %q: %s, format %s, rate limit %s, %d header(s)%s",
			e.Name, squadcast.RedactURL(e.URL), e.Format, e.RateLimit, len(e.Headers), src))
	}
	return lines
}
