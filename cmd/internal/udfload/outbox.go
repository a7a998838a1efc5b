package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast"
	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast/outbox"
	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// discardSink is a udf.Sink whose publisher drops every event: the daemon
// with nothing behind Publish. The sender always writes its outbox (it has
// no switch to turn it off), so "outbox off" is measured with this. Like
// the daemon, it keeps the alert state on disk: each flush's change in a
// transaction of its own, in a file of its own.
type discardSink struct{ db *outbox.DB }

func (d discardSink) Open(udf.Destination) (udf.Publisher, error) { return d, nil }
func (discardSink) Publish(udf.Event) error                       { return nil }
func (discardSink) LoadState(string, string) (udf.NodeState, bool, error) {
	return udf.NodeState{}, false, nil
}

func (d discardSink) Flush(c *udf.StateChange) error {
	if c == nil {
		return nil
	}
	oc := &outbox.StateChange{Task: c.TaskID, Node: c.NodeID, AsOf: c.AsOf, Delete: c.Delete}
	for _, g := range c.Put {
		oc.Put = append(oc.Put, outbox.GroupState{Group: g.Group, Level: int8(g.Level),
			FirstTriggered: g.FirstTriggered, LastTriggered: g.LastTriggered, ID: g.ID})
	}
	return d.db.Commit(&outbox.Batch{State: []*outbox.StateChange{oc}})
}

// openDiscardSink opens a discardSink's state file in dir.
func openDiscardSink(dir string) (discardSink, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return discardSink{}, fmt.Errorf("state dir: %w", err)
	}
	db, err := outbox.Open(filepath.Join(dir, "state.db"), outbox.Options{})
	return discardSink{db: db}, err
}

// inProcess is the daemon's socket server, in this process, with a given
// sink (which keeps the alert state).
type inProcess struct {
	Socket string
	srv    *udf.Server
	done   chan error
}

func startInProcess(dir, name string, sink udf.Sink) (*inProcess, error) {
	p := &inProcess{Socket: filepath.Join(dir, name+".sock"), done: make(chan error, 1)}
	ln, err := net.Listen("unix", p.Socket)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	p.srv = udf.NewServer(udf.HandlerConfig{Sink: sink, Hostname: "udfload"})
	go func() { p.done <- p.srv.Serve(ln) }()
	return p, nil
}

func (p *inProcess) stop() {
	_ = p.srv.Close()
	<-p.done
}

// newSender returns the daemon's sender with its outbox in dir, delivering
// to the endpoint.
func newSender(dir string, e *endpoint) (*squadcast.Sender, error) {
	return squadcast.New(squadcast.Config{
		Endpoints: []squadcast.Endpoint{{Name: squadcast.DefaultEndpoint, URL: e.URL + "/outbox/benchkey"}},
		DataDir:   dir,
	})
}

func closeSender(s *squadcast.Sender) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = s.Close(ctx)
}

// outboxCost compares the daemon's socket server with its sender (and
// outbox) against the same server with a discarding publisher, both in
// this process.
func (r *rig) outboxCost() error {
	sender, err := newSender(filepath.Join(r.dir, "outbox-on"), r.e)
	if err != nil {
		return err
	}
	defer closeSender(sender)
	on, err := startInProcess(r.dir, "on", sender)
	if err != nil {
		return err
	}
	defer on.stop()
	discard, err := openDiscardSink(filepath.Join(r.dir, "off"))
	if err != nil {
		return err
	}
	defer discard.db.Close()
	off, err := startInProcess(r.dir, "off", discard)
	if err != nil {
		return err
	}
	defer off.stop()
	l := load{groups: 1000, changeEvery: 1000, start: time.Now()}
	f, err := l.pointFrames(r.c.points)
	if err != nil {
		return err
	}
	logf(r.stderr, "outbox cost: %d rounds of %d points, in process", r.c.rounds, r.c.points)
	offR, onR, err := compare(r.c.rounds,
		func() (float64, error) { return ingest(off.Socket, squadcastOptions(), f) },
		func() (float64, error) { return ingest(on.Socket, squadcastOptions(), f) })
	if err != nil {
		return fmt.Errorf("outbox cost: %w", err)
	}
	logf(r.stderr, "outbox cost: discarding publisher %v; sender with outbox %v", offR, onR)
	ratio := onR.ratio(offR)
	r.t.add(row{
		Measure:  "Outbox cost (1 change/1000 points; sender with outbox vs a publisher that discards events: the outbox cannot be turned off)",
		Result:   kps(onR.median()),
		Baseline: "discarding publisher " + kps(offR.median()),
		Ratio:    fmt.Sprintf("%.2f (costs %.1f%%)", ratio, 100*(1-ratio)),
		Target:   "costs < 5%",
		Verdict:  check(ratio > 0.95),
	})
	return nil
}
