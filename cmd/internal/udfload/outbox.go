package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast"
	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// discardSink is a udf.Sink whose publisher drops every event: the daemon
// with nothing behind Publish. The sender always writes its outbox (it has
// no switch to turn it off), so "outbox off" is measured with this.
type discardSink struct{}

func (discardSink) Open(udf.Destination) (udf.Publisher, error) { return discardSink{}, nil }
func (discardSink) Publish(udf.Event) error                     { return nil }

// inProcess is the daemon's socket server, in this process, with a given
// sink and the daemon's alert state store: in the sender's outbox file, as
// in the daemon, or in a file of its own for other sinks.
type inProcess struct {
	Socket string
	srv    *udf.Server
	state  *udf.StateStore
	done   chan error
}

func startInProcess(dir, name string, sink udf.Sink) (*inProcess, error) {
	if err := os.MkdirAll(filepath.Join(dir, name), 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	var state *udf.StateStore
	var err error
	if s, ok := sink.(*squadcast.Sender); ok {
		state, err = s.StateStore()
	} else {
		state, err = udf.OpenDataDirState(filepath.Join(dir, name))
	}
	if err != nil {
		return nil, err
	}
	p := &inProcess{Socket: filepath.Join(dir, name+".sock"), state: state, done: make(chan error, 1)}
	ln, err := net.Listen("unix", p.Socket)
	if err != nil {
		state.Close()
		return nil, fmt.Errorf("listen: %w", err)
	}
	p.srv = udf.NewServer(udf.HandlerConfig{Sink: sink, Hostname: "udfload", State: state})
	go func() { p.done <- p.srv.Serve(ln) }()
	return p, nil
}

func (p *inProcess) stop() {
	_ = p.srv.Close()
	<-p.done
	p.state.Close()
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
