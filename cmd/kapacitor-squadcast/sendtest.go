package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast"
	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

const sendTestUsage = `Usage: kapacitor-squadcast send-test [--config FILE] [--endpoint NAME | --url URL] [--format F]

Sends a test alert to Squadcast: a CRITICAL trigger, then, after
--resolve-after, its recovery (OK), in the endpoint's format, so that an
incident opens and closes. The endpoint is one of the config file's (with
$SQUADCAST_WEBHOOK_URL as the default endpoint when the file has none), or
--url. Exit status 0 when Squadcast accepted both, 1 (with the HTTP status)
when it did not. The URL's secret key is never printed.
`

// sendTestConfig holds the flags of send-test.
type sendTestConfig struct {
	config       string
	endpoint     string
	url          string
	format       string
	resolveAfter time.Duration
}

// runSendTest is the send-test command.
func runSendTest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := sendTestConfig{endpoint: udf.DefaultEndpoint, resolveAfter: 5 * time.Second}
	fs := flag.NewFlagSet("send-test", flag.ContinueOnError)
	fs.StringVar(&c.config, "config", "", "TOML config `file` whose endpoints to use (default none: only $"+webhookEnv+" as the default endpoint)")
	fs.StringVar(&c.endpoint, "endpoint", c.endpoint, "`name` of the endpoint to test")
	fs.StringVar(&c.url, "url", "", "webhook `URL` to test instead of a configured endpoint (default none)")
	fs.StringVar(&c.format, "format", "", "payload `format`: kapacitor or incident-webhook (default the endpoint's, kapacitor for --url)")
	fs.DurationVar(&c.resolveAfter, "resolve-after", c.resolveAfter, "`wait` between the trigger and the resolve")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "%s\nFlags:\n", sendTestUsage)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "kapacitor-squadcast send-test: "+format+"\n", a...)
		return code
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if given["url"] && given["endpoint"] {
		return fail(2, "give --endpoint or --url, not both")
	}
	if c.resolveAfter < 0 {
		return fail(2, "--resolve-after must not be negative")
	}
	ep, err := c.resolveEndpoint()
	if err != nil {
		return fail(1, "%v", err)
	}

	hostname, _ := os.Hostname()
	ev := testEvent(hostname, time.Now())
	fmt.Fprintf(stdout, "endpoint %q: %s, format %s\n", ep.Name, squadcast.RedactURL(ep.URL), ep.Format)
	fmt.Fprintf(stdout, "sending a test trigger (CRITICAL), alert id %q ... ", ev.ID)
	status, err := squadcast.PostOnce(ctx, ep, ev)
	if err != nil {
		fmt.Fprintln(stdout, "failed")
		return fail(1, "the trigger failed: %v", describeFailure(status, err))
	}
	fmt.Fprintf(stdout, "accepted (http status %d)\n", status)
	if c.resolveAfter > 0 {
		fmt.Fprintf(stdout, "waiting %s: the incident should be open in Squadcast now\n", c.resolveAfter)
		select {
		case <-time.After(c.resolveAfter):
		case <-ctx.Done():
			return fail(1, "interrupted before the resolve: the test incident %q stays open", ev.ID)
		}
	}
	resolved := ev
	resolved.Level, resolved.PreviousLevel = udf.OK, udf.Critical
	resolved.Duration = time.Since(ev.Time)
	resolved.Time = ev.Time.Add(resolved.Duration)
	resolved.Message = strings.Replace(ev.Message, "is CRITICAL", "is OK", 1)
	fmt.Fprint(stdout, "sending its resolve (OK) ... ")
	status, err = squadcast.PostOnce(ctx, ep, resolved)
	if err != nil {
		fmt.Fprintln(stdout, "failed")
		return fail(1, "the resolve failed, the test incident %q stays open: %v", ev.ID, describeFailure(status, err))
	}
	fmt.Fprintf(stdout, "accepted (http status %d)\nthe test incident should now be resolved in Squadcast\n", status)
	return 0
}

// resolveEndpoint returns the endpoint to test, with --format applied.
func (c sendTestConfig) resolveEndpoint() (squadcast.Endpoint, error) {
	var ep squadcast.Endpoint
	if c.url != "" {
		if err := squadcast.CheckURL(c.url); err != nil {
			return ep, fmt.Errorf("--url: the URL %w", err)
		}
		ep = squadcast.Endpoint{Name: "url", URL: c.url, Format: squadcast.FormatKapacitor}
	} else {
		sc, err := LoadFile(c.config)
		if err != nil {
			return ep, err
		}
		eps := sc.senderEndpoints()
		var names []string
		found := false
		for _, e := range eps {
			names = append(names, e.Name)
			if e.Name == c.endpoint {
				ep, found = e, true
			}
		}
		switch {
		case found:
		case len(eps) == 0:
			return ep, fmt.Errorf("no endpoint is configured: give --config, --url or $%s", webhookEnv)
		default:
			return ep, fmt.Errorf("--endpoint: unknown endpoint %q (configured: %s)", c.endpoint, strings.Join(names, ", "))
		}
	}
	if c.format != "" {
		if err := checkFormat(c.format); err != nil {
			return ep, fmt.Errorf("--format: %w", err)
		}
		ep.Format = c.format
	}
	return ep, nil
}

// describeFailure says what went wrong, starting with the HTTP status when
// there was one.
func describeFailure(status int, err error) string {
	var de *squadcast.DeliveryError
	if status != 0 && errors.As(err, &de) {
		msg := de.Err.Error()
		if de.Body != "" {
			msg += ": " + strings.Join(strings.Fields(de.Body), " ")
		}
		return msg
	}
	return err.Error()
}

// testEvent is the test alert: what a task named "send-test" would send for
// a CRITICAL point of measurement "kapacitor_squadcast_test".
func testEvent(hostname string, now time.Time) udf.Event {
	if hostname == "" {
		hostname = "unknown"
	}
	id := fmt.Sprintf("kapacitor-squadcast-test:host=%s,time=%d", hostname, now.Unix())
	msg := fmt.Sprintf("%s is CRITICAL (a test from kapacitor-squadcast send-test)", id)
	tags := map[string]string{"host": hostname, "source": "kapacitor-squadcast"}
	fields := map[string]interface{}{"value": 1.0}
	return udf.Event{
		TaskID:      "send-test",
		NodeID:      "send-test",
		ID:          id,
		Message:     msg,
		Details:     "A test alert sent by 'kapacitor-squadcast send-test' on " + hostname + " to check the webhook; its recovery follows.",
		Time:        now.UTC(),
		Level:       udf.Critical,
		Recoverable: true,
		Name:        "kapacitor_squadcast_test",
		Group:       "host=" + hostname,
		Tags:        tags,
		Fields:      fields,
	}
}
