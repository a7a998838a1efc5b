package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/cmd/internal/stack"
)

// webhookPath is where the daemon posts: the shape of a Squadcast
// "Kapacitor" alert source URL, with a made-up key.
const webhookPath = "/v1/incidents/kapacitor/DEMO-KEY"

// startStandIn starts the stand-in for Squadcast, recording (and printing)
// each incident it receives in the returned log.
func startStandIn() (*stack.StandIn, *incidentLog) {
	standIn := stack.NewStandIn()
	incidents := &incidentLog{}
	standIn.OnRequest(incidents.record)
	fmt.Printf("stand-in for Squadcast listening on %s\n", standIn.URL)
	return standIn, incidents
}

// demoDaemon is the daemon the demo runs, with its log file in the demo's
// directory.
type demoDaemon struct {
	*stack.Daemon
	logFile *os.File
	stopped bool // by stop: cleanUp leaves it alone
}

// startDaemon builds the daemon into dir and starts it there, posting to
// the stand-in at standInURL.
func startDaemon(ctx context.Context, dir, standInURL string) (*demoDaemon, error) {
	fmt.Println("building kapacitor-squadcast ...")
	bin, err := stack.BuildDaemon(ctx, dir)
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, "daemon.log"))
	if err != nil {
		return nil, fmt.Errorf("creating the daemon's log file: %w", err)
	}
	d, err := stack.StartDaemon(stack.DaemonConfig{
		Binary:    bin,
		Socket:    filepath.Join(dir, "squadcast.sock"),
		DataDir:   filepath.Join(dir, "data"),
		URL:       standInURL + webhookPath,
		LogLevel:  "info",
		LogFormat: "console",
		Output:    logFile,
	})
	if err != nil {
		logFile.Close()
		return nil, err
	}
	fmt.Printf("kapacitor-squadcast serving on %s (pid %d)\n", d.Socket, d.Pid())
	return &demoDaemon{Daemon: d, logFile: logFile}, nil
}

// stop stops the daemon, the last step of a good run: it must exit 0.
func (d *demoDaemon) stop() error {
	d.stopped = true
	return d.Stop()
}

// cleanUp stops the daemon unless stop did, making a failure to stop run's
// error *err, and prints the tail of its output if run failed.
func (d *demoDaemon) cleanUp(err *error) {
	defer d.logFile.Close()
	if d.stopped {
		return
	}
	if stopErr := d.Stop(); stopErr != nil && *err == nil {
		*err = stopErr
	}
	if *err != nil {
		fmt.Fprintf(os.Stderr, "--- daemon output (tail) ---\n%s\n", tail(d.Output(), 30))
	}
}

// demoKapacitord is the kapacitord the demo runs.
type demoKapacitord struct {
	*stack.Kapacitord
	stopped bool // by stop: cleanUp leaves it alone
}

// startKapacitord starts binary with the daemon's UDF on socket.
func startKapacitord(binary, socket string) (*demoKapacitord, error) {
	k, err := stack.StartKapacitord(stack.KapacitordConfig{Binary: binary, UDFSocket: socket, StartTimeout: 30 * time.Second})
	if err != nil {
		return nil, err
	}
	fmt.Printf("kapacitord listening on %s\n", k.URL)
	return &demoKapacitord{Kapacitord: k}, nil
}

// stop stops kapacitord, the first step of shutting down.
func (k *demoKapacitord) stop() {
	k.Stop()
	k.stopped = true
}

// cleanUp prints the tail of kapacitord's log if run failed (*err), and
// stops it unless stop did.
func (k *demoKapacitord) cleanUp(err *error) {
	if *err != nil {
		fmt.Fprintf(os.Stderr, "--- kapacitord log (tail) ---\n%s\n", k.LogTail(30))
	}
	if !k.stopped {
		k.Stop()
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
