package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

const doctorUsage = `Usage: kapacitor-squadcast doctor --kapacitor-url URL [--relay-url URL] [--squadcast-hosts h1,h2]

Lists what in a running Kapacitor still posts to Squadcast without the
daemon, and what to change so that it goes through the daemon's relay
('serve --relay-listen'):
  * tasks whose TICKscript has .post('URL') to a Squadcast host;
  * [[httppost]] endpoints whose url is a Squadcast host, and what uses them
    (.post().endpoint('NAME'), topic handlers with options.endpoint);
  * topic handlers of kind post whose options.url is a Squadcast host;
and the @squadcast() (and @squadcast_batch()) tasks that are enabled but not
executing, with their error. One finding per line. Webhook keys and the
password in --kapacitor-url are never printed. Exit status 0 when nothing
needs attention, 1 when something does or Kapacitor cannot be read, 2 for
a bad command line.
`

// defaultRelayURL is the relay doctor's advice points at unless told: serve's
// relay on loopback, on the port the docs use for it.
const defaultRelayURL = "http://127.0.0.1:9095"

// doctorConfig holds the flags of doctor.
type doctorConfig struct {
	kapacitorURL string
	relayURL     string
	endpoint     string
	hosts        string
	udfName      string
	timeout      time.Duration
}

// runDoctor is the doctor command.
func runDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := doctorConfig{relayURL: defaultRelayURL, endpoint: udf.DefaultEndpoint, udfName: "squadcast", timeout: 30 * time.Second}
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fs.StringVar(&c.kapacitorURL, "kapacitor-url", "", "Kapacitor's HTTP API `URL`, e.g. http://localhost:9092 (required; may hold user:password)")
	fs.StringVar(&c.relayURL, "relay-url", c.relayURL, "the relay's base `URL` (http://ADDR of serve's --relay-listen) used in the advice; a URL with a /relay/NAME path is used as it is")
	fs.StringVar(&c.endpoint, "relay-endpoint", c.endpoint, "the daemon's endpoint `name` the advice routes to (/relay/NAME)")
	fs.StringVar(&c.hosts, "squadcast-hosts", "", "more Squadcast `hosts`, comma-separated, besides api.squadcast.com, api.eu.squadcast.com and *.squadcast.com (a name starting with '.' matches a domain) (default none)")
	fs.StringVar(&c.udfName, "udf-name", c.udfName, "the UDF's `name` in kapacitor.conf: tasks using @NAME() or @NAME_batch() are checked")
	fs.DurationVar(&c.timeout, "timeout", c.timeout, "how long reading Kapacitor's API may take in all")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "%s\nFlags:\n", doctorUsage)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "kapacitor-squadcast doctor: "+format+"\n", a...)
		return code
	}
	if c.kapacitorURL == "" {
		return fail(2, "--kapacitor-url is required")
	}
	base, err := parseKapacitorURL(c.kapacitorURL)
	if err != nil {
		return fail(2, "%v", err)
	}
	relay, err := relayURL(c.relayURL, c.endpoint)
	if err != nil {
		return fail(2, "%v", err)
	}
	if c.timeout <= 0 {
		return fail(2, "--timeout must be positive")
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	// The reenabler's API client: only its list and do are used.
	api := &reenabler{base: base, client: &http.Client{}}
	st, err := readKapacitor(ctx, api)
	if err != nil {
		return fail(1, "cannot read Kapacitor's API at %s: %v", base.Scheme+"://"+base.Host, err)
	}
	rules := doctorRules{relayURL: relay, extra: splitList(c.hosts), udfName: c.udfName}
	return printDoctorReport(stdout, base.Scheme+"://"+base.Host, st, rules.findings(st))
}

// printDoctorReport prints the findings, one a line, then notes on them;
// it returns the exit status: 0 when there are none, else 1.
func printDoctorReport(w io.Writer, kapacitor string, st kapacitorState, fs []doctorFinding) int {
	fmt.Fprintf(w, "Kapacitor %s: %d task(s), %d [[httppost]] endpoint(s), %d topic handler(s)\n",
		kapacitor, len(st.Tasks), len(st.HTTPPost), len(st.Handlers))
	code := 0
	if st.HTTPPostErr != nil {
		code = 1
		fmt.Fprintf(w, "cannot read the [[httppost]] endpoints (%v): check their url in kapacitor.conf by hand\n", st.HTTPPostErr)
	}
	if len(fs) == 0 {
		fmt.Fprintln(w, "nothing posts to Squadcast without the daemon, and every enabled @squadcast() task is executing")
		return code
	}
	relayed := false
	for _, f := range fs {
		fmt.Fprintf(w, "%s: %s\n", f.What, f.Fix)
		relayed = relayed || !strings.HasPrefix(f.What, "@")
	}
	fmt.Fprintf(w, "%d finding(s)\n", len(fs))
	if relayed {
		fmt.Fprintln(w, "<token> is the content of serve's --relay-token-file; with no token (a loopback relay only), leave the header out.")
		fmt.Fprintln(w, "Each Squadcast webhook URL needs its own endpoint in the daemon's config: route it to /relay/<that endpoint's name>.")
	}
	return 1
}

// relayURL returns the URL events should be posted to: base + /relay/endpoint,
// or base itself when its path already names a relay endpoint.
func relayURL(base, endpoint string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errors.New("--relay-url: want http(s)://host:port")
	}
	if u.User != nil {
		return "", errors.New("--relay-url: must not hold user:password (the relay takes a bearer token)")
	}
	if strings.Contains(u.Path, "/relay/") {
		return u.String(), nil
	}
	if endpoint == "" || strings.ContainsAny(endpoint, "/?#") {
		return "", fmt.Errorf("--relay-endpoint: %q is not an endpoint name", endpoint)
	}
	return strings.TrimRight(u.String(), "/") + "/relay/" + endpoint, nil
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
