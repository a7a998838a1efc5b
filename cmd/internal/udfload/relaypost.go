package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast"
	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf/relay"
)

// relayHosts is how many hosts the relayed alerts are about: alert i is
// about host i%relayHosts, CRITICAL and OK on its visits in turn. A
// multiple of posters, so that each poster has hosts of its own, as each
// Kapacitor task posts its own alerts.
const relayHosts = 1000

// relayBodies returns n bodies as Kapacitor's .post() sends them for the
// task of the delivery run (postScript), the first at t0, the next a
// millisecond later each.
func relayBodies(n int, t0 time.Time) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = relayBody(hostName(i%relayHosts), (i/relayHosts)%2 == 0, t0.Add(time.Duration(i)*time.Millisecond))
	}
	return out
}

// kapacitorDetails is the data of Kapacitor's details template, whose
// default, {{ json . }}, renders it as JSON (HTML-escaped: the template is
// an html/template).
type kapacitorDetails struct {
	Name, TaskName, Group string
	Tags                  map[string]string
	ServerInfo            struct{ Hostname, ClusterID, ServerID string }
	ID                    string
	Fields                map[string]interface{}
	Level                 string
	Time                  time.Time
	Duration              time.Duration
	Message               string
}

// relayBody is the body .post() sends for a CRITICAL (crit) or recovered
// host at t: Kapacitor's alert JSON with its default id, message and
// details.
func relayBody(host string, crit bool, t time.Time) []byte {
	ev := udf.Event{
		ID: "cpu:host=" + host, Time: t.UTC(), Level: udf.Critical, PreviousLevel: udf.OK, Recoverable: true,
		Name: "cpu", Group: "host=" + host, Tags: map[string]string{"cpu": "cpu-total", "host": host},
		Fields: map[string]interface{}{"usage_idle": critIdle, "usage_user": 93.0, "usage_system": 1.5, "usage_iowait": 0.5},
	}
	if !crit {
		ev.Level, ev.PreviousLevel, ev.Fields["usage_idle"] = udf.OK, udf.Critical, okIdle
	}
	ev.Message = ev.ID + " is " + ev.Level.String()
	d := kapacitorDetails{Name: ev.Name, TaskName: "rl_relay", Group: ev.Group, Tags: ev.Tags, ID: ev.ID,
		Fields: ev.Fields, Level: ev.Level.String(), Time: ev.Time, Message: ev.Message}
	d.ServerInfo.Hostname = "localhost"
	details, err := json.Marshal(d)
	if err != nil {
		panic(err) // strings, numbers and a time: it cannot fail
	}
	ev.Details = template.HTMLEscapeString(string(details))
	body, err := squadcast.RenderKapacitor(ev)
	if err != nil {
		panic(err)
	}
	return body
}

// poster posts alerts one at a time, each on a connection of its own, as
// a Kapacitor task's .post() does (kapacitord 1.5.9 opened 200 connections
// for the 200 requests of the delivery run), and reads each answer whole.
type poster struct {
	url string
	c   *http.Client
}

func newPoster(url string) *poster {
	return &poster{url: url, c: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}}
}

func (p *poster) close() { p.c.CloseIdleConnections() }

// post posts body and reads the answer, which must be 200.
func (p *poster) post(body []byte) error {
	req, err := http.NewRequest(http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.c.Do(req)
	if err != nil {
		return err
	}
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	switch {
	case err != nil:
		return fmt.Errorf("reading the answer of %s: %w", p.url, err)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("%s answered %s: %s", p.url, resp.Status, bytes.TrimSpace(answer))
	}
	return nil
}

// serially posts the bodies one after another and returns the time each
// took, from before the request was written until its answer was read.
func (p *poster) serially(bodies [][]byte) ([]time.Duration, error) {
	out := make([]time.Duration, 0, len(bodies))
	for _, b := range bodies {
		start := time.Now()
		if err := p.post(b); err != nil {
			return nil, err
		}
		out = append(out, time.Since(start))
	}
	return out, nil
}

// postConcurrently posts the bodies from k posters, each with its own
// connection and its share of the bodies (bodies k apart) one at a time,
// and returns requests per second: from the start until the last answer.
func postConcurrently(url string, bodies [][]byte, k int) (float64, error) {
	ps := make([]*poster, k)
	for i := range ps {
		ps[i] = newPoster(url)
		defer ps[i].close()
	}
	errs := make([]error, k)
	var wg sync.WaitGroup
	start := time.Now()
	for i, p := range ps {
		wg.Go(func() {
			for j := i; j < len(bodies) && errs[i] == nil; j += k {
				errs[i] = p.post(bodies[j])
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	for _, err := range errs {
		if err != nil {
			return 0, err
		}
	}
	return float64(len(bodies)) / took.Seconds(), nil
}

// noStore is the Sink of the relay that stores nothing: it knows the
// endpoint default and takes every alert, keeping none.
type noStore struct{}

func (noStore) HasEndpoint(name string) bool             { return name == "default" }
func (noStore) Relay(string, *relay.Alert, []byte) error { return nil }

// newNoStoreServer is the relay that stores nothing: the daemon's relay
// handler, with the daemon's server settings, and the Sink noStore.
func newNoStoreServer() *http.Server {
	return &http.Server{Handler: relay.NewHandler(relay.Config{Sink: noStore{}}), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute}
}

// runNoStoreRelay is the relay-nostore subcommand: the baseline of the
// relay's runs in a process of its own, like the daemon, serving until
// killed.
func runNoStoreRelay(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("relay-nostore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "", "`host:port` to serve on")
	if err := fs.Parse(args); err != nil || *listen == "" {
		fmt.Fprintln(stderr, "usage: udfload relay-nostore -listen HOST:PORT")
		return 2
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "udfload relay-nostore: %v\n", err)
		return 1
	}
	if err := newNoStoreServer().Serve(ln); err != nil {
		fmt.Fprintf(stderr, "udfload relay-nostore: %v\n", err)
		return 1
	}
	return 0
}
