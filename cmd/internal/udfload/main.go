package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/cmd/internal/stack"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "drop-udf" {
		os.Exit(runDropUDF(os.Args[2:], os.Stderr))
	}
	if len(os.Args) > 1 && os.Args[1] == "relay-nostore" {
		os.Exit(runNoStoreRelay(os.Args[2:], os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// config holds the flags.
type config struct {
	rounds         int
	points         int
	kapPoints      int
	memGroups      int
	memLimit       string
	stormGroups    int
	stormProfile   string
	stormArgs      string
	latencySamples int
	deliveries     int
	relaySamples   int
	relayRequests  int
	workers        int
	goBench        bool
	benchtime      string
	only           map[string]bool // the runs to make; nil: all of them
}

// runNames are the runs -only can name, in the order they run.
var runNames = []string{"gobench", "ingest", "latency", "outbox", "kapacitord", "relay", "ratelimit", "memory", "storm"}

// runs reports whether the run named name is to be made.
func (c config) runs(name string) bool { return c.only == nil || c.only[name] }

// parseOnly parses -only: a comma-separated list of runNames, or "" for all.
func parseOnly(s string) (map[string]bool, error) {
	if s == "" {
		return nil, nil
	}
	only := map[string]bool{}
	for _, n := range strings.Split(s, ",") {
		n = strings.TrimSpace(n)
		if !slices.Contains(runNames, n) {
			return nil, fmt.Errorf("-only: unknown run %q (want a comma-separated list of %s)", n, strings.Join(runNames, ", "))
		}
		only[n] = true
	}
	return only, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	var c config
	fs := flag.NewFlagSet("udfload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.rounds, "rounds", 5, "rounds of each throughput comparison (each side's median is shown; the ratio is the median of the round-by-round ratios)")
	fs.IntVar(&c.points, "points", 200000, "points per round over the socket")
	fs.IntVar(&c.kapPoints, "kapacitord-points", 150000, "points per round through kapacitord")
	fs.IntVar(&c.memGroups, "memory-groups", 1000000, "distinct alerting groups of the memory run (0 skips it)")
	fs.StringVar(&c.memLimit, "memory-gomemlimit", "", "also run the memory run with the daemon under this GOMEMLIMIT (Go's soft memory limit, e.g. 250MiB); empty: only with Go's defaults")
	fs.IntVar(&c.stormGroups, "storm-groups", 1000000, "incidents opened in one burst in the storm run (0 skips it)")
	fs.StringVar(&c.stormProfile, "storm-profile", "", "write the daemon's heap profile taken at the storm's highest anonymous memory to this file (empty: none)")
	fs.StringVar(&c.stormArgs, "storm-args", "", "more arguments for the storm run's daemon, space-separated (e.g. \"--queue-size 100000\", to compare with other settings); empty: its defaults")
	fs.IntVar(&c.latencySamples, "latency-samples", 300, "events timed in the latency run")
	fs.IntVar(&c.deliveries, "deliveries", 200, "incidents opened at once in the delivery run")
	fs.IntVar(&c.relaySamples, "relay-samples", 1000, "alerts posted one at a time to the relay, and as many to its baseline, in the relay's latency run")
	fs.IntVar(&c.relayRequests, "relay-requests", 4000, "alerts per round of the relay's throughput run, from 8 concurrent posters")
	fs.IntVar(&c.workers, "workers", 8, "--workers of the second daemon of the delivery run, for comparison (the first has the default)")
	fs.BoolVar(&c.goBench, "gobench", true, "run the module's Go benchmarks first")
	fs.StringVar(&c.benchtime, "benchtime", "1s", "-benchtime of the Go benchmarks")
	only := fs.String("only", "", "make only these runs, a comma-separated list of "+strings.Join(runNames, ", ")+"; empty: all (-gobench=false still skips gobench)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var err error
	if c.only, err = parseOnly(*only); err != nil {
		fmt.Fprintf(stderr, "udfload: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var t table
	if err := bench(ctx, c, &t, stderr); err != nil {
		fmt.Fprintf(stderr, "udfload: %v\n", err)
		if len(t.rows) > 0 {
			t.print(stdout)
		}
		return 1
	}
	t.print(stdout)
	return 0
}

func logf(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "udfload: "+format+"\n", args...)
}

// bench makes the runs c selects, adding their rows to t: the Go
// benchmarks, then the others, sharing a rig.
func bench(ctx context.Context, c config, t *table, stderr io.Writer) error {
	root, err := stack.ModuleRoot()
	if err != nil {
		return err
	}
	if c.goBench && c.runs("gobench") {
		logf(stderr, "running the Go benchmarks (-benchtime %s)", c.benchtime)
		res, err := runGoBench(root, c.benchtime)
		if err != nil {
			return err
		}
		addGoBench(t, res)
	}

	dir, err := os.MkdirTemp("", "udfload-")
	if err != nil {
		return fmt.Errorf("temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)
	logf(stderr, "building the daemon")
	bin, err := stack.BuildDaemon(ctx, dir)
	if err != nil {
		return err
	}
	e := newEndpoint()
	defer e.close()
	r := &rig{c: c, t: t, e: e, bin: bin, dir: dir, stderr: stderr}
	defer r.close()
	return r.runSelected(ctx)
}
