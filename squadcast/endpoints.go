package squadcast

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast/outbox"
	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// endpoints are the configured endpoints, by name: the Sender resolves a
// task's destination options against them, and the events it loads from
// the outbox by the name they were published with.
type endpoints map[string]*target

func newEndpoints(list []Endpoint) endpoints {
	es := make(endpoints, len(list))
	for _, e := range list {
		es[e.Name] = &target{name: e.Name, settings: e.Name, url: e.URL, format: e.Format,
			timeout: e.Timeout, rate: e.RateLimit, headers: e.Headers, coalesce: e.Coalesce, label: observerLabel(e.Name), secrets: urlSecrets(e.URL)}
	}
	return es
}

// target is a resolved destination.
type target struct {
	name     string // endpoint name, or "inline:<host>"
	settings string // the configured endpoint whose timeout and rate apply, "" for none
	url      string
	format   string
	timeout  time.Duration
	rate     RateLimit
	headers  map[string]string
	coalesce bool     // events waiting unsent may be saved (Endpoint.Coalesce)
	label    string   // the name an Observer hears
	secrets  []string // parts of url never to show
}

// resolve resolves a task's destination and its Incident Webhook options:
// see Sender.Open.
func (es endpoints) resolve(d udf.Destination) (*target, incidentOptions, error) {
	inc, err := parseIncidentOptions(d)
	if err != nil {
		return nil, incidentOptions{}, err
	}
	t, err := es.target(d)
	if err != nil {
		return nil, incidentOptions{}, err
	}
	if err := checkIncidentOnly(d, t); err != nil {
		return nil, incidentOptions{}, err
	}
	return t, inc, nil
}

// target resolves a task's endpoint, URL and format to a target.
func (es endpoints) target(d udf.Destination) (*target, error) {
	name := d.Endpoint
	if name == "" {
		name = DefaultEndpoint
	}
	ep, known := es[name]
	var t target
	switch {
	case d.URL != "":
		if !known && name != DefaultEndpoint {
			return nil, es.unknown(name)
		}
		u, err := parseWebhookURL(d.URL)
		if err != nil {
			return nil, &udf.OptionError{Option: "url", Reason: "url " + err.Error()}
		}
		t = target{name: "inline:" + u.Host, url: d.URL, format: FormatKapacitor, timeout: DefaultTimeout,
			label: InlineLabel, secrets: urlSecrets(d.URL)}
		if known {
			t.settings, t.format, t.timeout, t.rate, t.headers, t.coalesce = ep.settings, ep.format, ep.timeout, ep.rate, ep.headers, ep.coalesce
		}
	case known:
		t = *ep
	default:
		return nil, es.unknown(name)
	}
	if d.Format != "" {
		if !validFormat(d.Format) {
			return nil, &udf.OptionError{Option: "format", Value: "'" + d.Format + "'",
				Reason: fmt.Sprintf("unknown format (want '%s' or '%s')", FormatKapacitor, FormatIncidentWebhook)}
		}
		t.format = d.Format
	}
	return &t, nil
}

// unknown is the error of a task that names an endpoint that is not configured.
func (es endpoints) unknown(name string) error {
	e := &udf.OptionError{Option: "endpoint", Value: "'" + name + "'"}
	switch {
	case len(es) == 0 && name == DefaultEndpoint:
		e.Reason = "no endpoint is configured: start the daemon with --url, SQUADCAST_WEBHOOK_URL or a config file's [[endpoint]] name = \"default\", or give .url(...)"
	case len(es) == 0:
		e.Reason = "unknown endpoint (none is configured)"
	default:
		names := make([]string, 0, len(es))
		for n := range es {
			names = append(names, n)
		}
		sort.Strings(names)
		e.Reason = "unknown endpoint (configured: " + strings.Join(names, ", ") + ")"
	}
	return e
}

// restore turns loaded records into jobs, re-resolving their settings by
// endpoint name: the stored URL and format stay (they are what the event
// was published for); timeout and rate limit are the configured ones.
func (es endpoints) restore(stored []outbox.Stored) []*job {
	type targetKey struct{ name, settings, url, format string }
	targets := make(map[targetKey]*target)
	jobs := make([]*job, 0, len(stored))
	for _, ev := range stored {
		r := ev.Record
		key := targetKey{r.Endpoint, r.Settings, r.URL, r.Format}
		t := targets[key]
		if t == nil {
			t = &target{name: r.Endpoint, settings: r.Settings, url: r.URL, format: r.Format,
				timeout: DefaultTimeout, label: observerLabel(r.Endpoint), secrets: urlSecrets(r.URL)}
			if ep, ok := es[r.Settings]; ok {
				t.timeout, t.rate, t.headers, t.coalesce = ep.timeout, ep.rate, ep.headers, ep.coalesce
			} else {
				t.settings = ""
			}
			targets[key] = t
		}
		level, _ := udf.ParseLevel(r.Level) // outbox.Decode checked it
		jobs = append(jobs, &job{
			target: t, id: r.Incident, level: level, task: r.Task, created: r.Created, body: r.Body,
			attempts: r.Attempts, lastErr: r.LastError, next: r.NextAttempt,
			seq: ev.Seq, released: true, source: recordSource(r.Source),
		})
	}
	return jobs
}

// recordSource is the source of a stored event: SourceUDF for the records
// written before the relay, which have none.
func recordSource(s string) Source {
	if s == "" {
		return SourceUDF
	}
	return Source(s)
}
