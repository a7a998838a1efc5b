package main

import (
	"context"
	"io"
	"path/filepath"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/cmd/internal/stack"
)

// rig is what the runs share: the flags, the table they add their rows
// to, the endpoint every daemon delivers to, the daemon's binary and the
// scratch directory, and the processes that serve more than one run. close
// stops those in the reverse order of their start.
type rig struct {
	c      config
	t      *table
	e      *endpoint
	bin    string // the daemon, built into dir
	dir    string
	stderr io.Writer

	daemon *stack.Daemon // for the ingest, latency and kapacitord runs
	drop   *selfProcess  // for the ingest and kapacitord runs
	stops  []func()
}

// startDaemon starts the daemon with its socket and data directory named
// name in r.dir, delivering to the endpoint, with more environment
// variables and arguments. The caller stops it.
func (r *rig) startDaemon(name string, env []string, args ...string) (*stack.Daemon, error) {
	return r.startDaemonTo(name, "default", env, args...)
}

// startDaemonTo is startDaemon delivering to the endpoint under path
// segment seg.
func (r *rig) startDaemonTo(name, seg string, env []string, args ...string) (*stack.Daemon, error) {
	return stack.StartDaemon(stack.DaemonConfig{
		Binary: r.bin, Socket: filepath.Join(r.dir, name+".sock"), DataDir: filepath.Join(r.dir, name),
		URL: r.e.URL + "/" + seg + "/benchkey", LogLevel: "warn", Env: env, Args: args,
	})
}

// stopOnClose makes close call stop.
func (r *rig) stopOnClose(stop func()) { r.stops = append(r.stops, stop) }

// close stops what stopOnClose was given, last first.
func (r *rig) close() {
	for i := len(r.stops) - 1; i >= 0; i-- {
		r.stops[i]()
	}
}

// startShared starts the daemon and the drop UDF if a selected run needs
// them.
func (r *rig) startShared() error {
	var err error
	if r.c.runs("ingest") || r.c.runs("latency") || r.c.runs("kapacitord") {
		if r.daemon, err = r.startDaemon("daemon", nil); err != nil {
			return err
		}
		d := r.daemon
		r.stopOnClose(func() { d.Stop() })
	}
	if r.c.runs("ingest") || r.c.runs("kapacitord") {
		if r.drop, err = startDropProcess(filepath.Join(r.dir, "drop.sock")); err != nil {
			return err
		}
		r.stopOnClose(r.drop.Stop)
	}
	return nil
}

// runSelected makes the selected runs but gobench, in the order of
// runNames, each adding its rows to the table. It stops early, with ctx's
// error, when ctx is done after the ingest, outbox, kapacitord and relay
// runs.
func (r *rig) runSelected(ctx context.Context) error {
	if err := r.startShared(); err != nil {
		return err
	}
	if r.c.runs("ingest") {
		if err := r.socketIngest(); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.c.runs("latency") {
		if err := r.latency(); err != nil {
			return err
		}
	}
	if r.c.runs("outbox") {
		if err := r.outboxCost(); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := r.kapacitordRuns(ctx); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := r.relayRuns(ctx); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := r.rateLimited(); err != nil {
		return err
	}
	if err := r.memoryRuns(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return r.storm()
}
