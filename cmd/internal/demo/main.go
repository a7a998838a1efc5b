package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/cmd/internal/stack"
)

const timeout = 2 * time.Minute

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("the demo did not finish within %s", timeout))
	defer cancel()
	if err := run(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo failed: %v\n", err)
		os.Exit(1)
	}
}

// run is the demo, step by step. On failure, the deferred clean-ups print
// the tails of kapacitord's log and of the daemon's output.
func run(ctx context.Context) (err error) {
	kapacitord, script, err := prerequisites()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "ksq-demo-")
	if err != nil {
		return fmt.Errorf("creating a temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)

	// 1. The stand-in for Squadcast.
	standIn, incidents := startStandIn()
	defer standIn.Close()

	// 2. The daemon (before kapacitord, which dials its socket at start-up).
	daemon, err := startDaemon(ctx, dir, standIn.URL)
	if err != nil {
		return err
	}
	defer daemon.cleanUp(&err)

	// 3. kapacitord.
	kap, err := startKapacitord(kapacitord, daemon.Socket)
	if err != nil {
		return err
	}
	defer kap.cleanUp(&err)

	// 4. The task.
	if err := defineTask(kap.Kapacitord, script); err != nil {
		return err
	}

	// 5. The story.
	if err := tell(ctx, kap.Kapacitord); err != nil {
		return err
	}

	// 6. Wait for every incident, then for stragglers.
	if err := waitForIncidents(ctx, kap.Kapacitord, standIn); err != nil {
		return err
	}

	// 7. Shut down: kapacitord first, then the daemon (it must exit 0).
	kap.stop()
	if err := daemon.stop(); err != nil {
		return err
	}
	standIn.Close()

	if err := incidents.report(); err != nil {
		return err
	}
	fmt.Println("\ndemo finished: everything shut down cleanly")
	return nil
}

// prerequisites returns the kapacitord binary ($KAPACITORD) and the
// TICKscript of the demo's task, tickscripts/cpu_squadcast.tick.
func prerequisites() (kapacitord string, script []byte, err error) {
	kapacitord = os.Getenv(stack.KapacitordEnv)
	if kapacitord == "" {
		return "", nil, errors.New("KAPACITORD is not set: run `make demo`, which builds kapacitord 1.5.9 and sets it")
	}
	if _, err := os.Stat(kapacitord); err != nil {
		return "", nil, fmt.Errorf("KAPACITORD: %w (run `make demo`)", err)
	}
	root, err := stack.ModuleRoot()
	if err != nil {
		return "", nil, err
	}
	script, err = os.ReadFile(filepath.Join(root, "tickscripts", "cpu_squadcast.tick"))
	if err != nil {
		return "", nil, fmt.Errorf("reading the tickscript: %w", err)
	}
	return kapacitord, script, nil
}
