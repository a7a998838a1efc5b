package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"time"

	"github.com/influxdata/kapacitor/udf/agent"
)

// dropHandler is the baseline: a UDF on Kapacitor's agent library that
// takes a stream and drops every point, the least a socket UDF can do. It
// accepts the options of @squadcast()'s level expressions (and ignores
// them), so that the same Init drives both.
type dropHandler struct {
	agent *agent.Agent
}

func (h *dropHandler) Info() (*agent.InfoResponse, error) {
	opts := make(map[string]*agent.OptionInfo, len(levelExprs))
	for _, l := range levelExprs {
		opts[l.name] = &agent.OptionInfo{ValueTypes: []agent.ValueType{agent.ValueType_STRING}}
	}
	return &agent.InfoResponse{Wants: agent.EdgeType_STREAM, Provides: agent.EdgeType_STREAM, Options: opts}, nil
}

func (h *dropHandler) Init(*agent.InitRequest) (*agent.InitResponse, error) {
	return &agent.InitResponse{Success: true}, nil
}

func (h *dropHandler) Snapshot() (*agent.SnapshotResponse, error) {
	return &agent.SnapshotResponse{}, nil
}

func (h *dropHandler) Restore(*agent.RestoreRequest) (*agent.RestoreResponse, error) {
	return &agent.RestoreResponse{Success: true}, nil
}

func (h *dropHandler) BeginBatch(*agent.BeginBatch) error { return errors.New("batch not supported") }
func (h *dropHandler) Point(*agent.Point) error           { return nil }
func (h *dropHandler) EndBatch(*agent.EndBatch) error     { return errors.New("batch not supported") }
func (h *dropHandler) Stop()                              { close(h.agent.Responses) }

// serveDrop serves the drop UDF on ln until ln is closed: one agent per
// connection, as the agent library's examples do, with an accept loop of
// its own (the library's can hang on an accept error).
func serveDrop(ln net.Listener) error {
	for {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("accept: %w", err)
		}
		a := agent.New(conn, conn)
		a.Handler = &dropHandler{agent: a}
		if err := a.Start(); err != nil {
			conn.Close()
			continue
		}
		go func() { _ = a.Wait() }()
	}
}

// runDropUDF is the drop-udf subcommand: the baseline in a process of its
// own, like the daemon, serving until killed.
func runDropUDF(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("drop-udf", flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("socket", "", "unix socket `path` to serve on")
	if err := fs.Parse(args); err != nil || *socket == "" {
		fmt.Fprintln(stderr, "usage: udfload drop-udf -socket PATH")
		return 2
	}
	ln, err := net.Listen("unix", *socket)
	if err != nil {
		fmt.Fprintf(stderr, "udfload drop-udf: %v\n", err)
		return 1
	}
	if err := serveDrop(ln); err != nil {
		fmt.Fprintf(stderr, "udfload drop-udf: %v\n", err)
		return 1
	}
	return 0
}

// selfProcess is a baseline running in a process of its own, as the
// daemon does: this program started again with a subcommand (drop-udf,
// relay-nostore), listening on Addr (a unix socket's path or a TCP
// host:port).
type selfProcess struct {
	Addr    string
	network string
	cmd     *exec.Cmd
	done    chan struct{}
}

// startDropProcess starts the baseline UDF on socket and waits for the socket.
func startDropProcess(socket string) (*selfProcess, error) {
	return startSelf("the baseline UDF", "unix", socket, "drop-udf", "-socket", socket)
}

// startSelf starts this program with args, which make it listen on addr,
// and waits until it accepts connections there; what names it in errors.
func startSelf(what, network, addr string, args ...string) (*selfProcess, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("locating this program to start %s: %w", what, err)
	}
	p := &selfProcess{Addr: addr, network: network, cmd: exec.Command(self, args...), done: make(chan struct{})}
	p.cmd.Stderr = os.Stderr
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", what, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	if err := waitListening(network, addr, p.done, 30*time.Second); err != nil {
		p.Stop()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return p, nil
}

// waitListening waits until addr accepts a connection, or done is closed
// (the process that is to listen exited), or timeout has passed.
func waitListening(network, addr string, done <-chan struct{}, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		if c, err := net.Dial(network, addr); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("exited before listening on %s", addr)
		case <-ctx.Done():
			return fmt.Errorf("not listening on %s within %s", addr, timeout)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop kills the baseline and removes its socket, if it has one.
func (p *selfProcess) Stop() {
	_ = p.cmd.Process.Kill()
	<-p.done
	if p.network == "unix" {
		os.Remove(p.Addr)
	}
}
