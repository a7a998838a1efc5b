package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/cmd/internal/stack"
	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "drop-udf" {
		os.Exit(runDropUDF(os.Args[2:], os.Stderr))
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
	latencySamples int
	deliveries     int
	workers        int
	goBench        bool
	benchtime      string
	only           map[string]bool // the runs to make; nil: all of them
}

// runNames are the runs -only can name, in the order they run.
var runNames = []string{"gobench", "ingest", "latency", "outbox", "kapacitord", "memory"}

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
	fs.IntVar(&c.latencySamples, "latency-samples", 300, "events timed in the latency run")
	fs.IntVar(&c.deliveries, "deliveries", 200, "incidents opened at once in the delivery run")
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
	startDaemon := func(name string, extra ...string) (*stack.Daemon, error) {
		return stack.StartDaemon(stack.DaemonConfig{
			Binary: bin, Socket: filepath.Join(dir, name+".sock"), DataDir: filepath.Join(dir, name),
			URL: e.URL + "/default/benchkey", LogLevel: "warn", Args: extra,
		})
	}
	var d *stack.Daemon
	var drop *dropProcess
	if c.runs("ingest") || c.runs("latency") || c.runs("kapacitord") {
		if d, err = startDaemon("daemon"); err != nil {
			return err
		}
		defer d.Stop()
	}
	if c.runs("ingest") || c.runs("kapacitord") {
		if drop, err = startDropProcess(filepath.Join(dir, "drop.sock")); err != nil {
			return err
		}
		defer drop.Stop()
	}

	if c.runs("ingest") {
		if err := socketIngest(c, t, e, d, drop, stderr); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.runs("latency") {
		if err := latency(c, t, e, d, stderr); err != nil {
			return err
		}
	}
	if c.runs("outbox") {
		if err := outboxCost(c, t, e, dir, stderr); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	switch {
	case !c.runs("kapacitord"):
	case os.Getenv(stack.KapacitordEnv) == "":
		t.add(row{Measure: "through kapacitord", Result: "not run: set " + stack.KapacitordEnv})
	default:
		dw, err := startDaemon("daemonw", "--workers", fmt.Sprint(c.workers))
		if err != nil {
			return err
		}
		defer dw.Stop()
		if err := throughKapacitord(ctx, c, t, e, d, dw, drop, dir, stderr); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.memGroups > 0 && c.runs("memory") {
		limits := []string{""}
		if c.memLimit != "" {
			limits = append(limits, c.memLimit)
		}
		for i, limit := range limits {
			if err := memory(c, t, e, limit, func() (*stack.Daemon, error) {
				cfg := stack.DaemonConfig{
					Binary: bin, Socket: filepath.Join(dir, fmt.Sprintf("mem%d.sock", i)), DataDir: filepath.Join(dir, fmt.Sprintf("mem%d", i)),
					URL: e.URL + "/default/benchkey", LogLevel: "warn",
				}
				if limit != "" {
					cfg.Env = []string{"GOMEMLIMIT=" + limit}
				}
				return stack.StartDaemon(cfg)
			}, stderr); err != nil {
				return err
			}
		}
	}
	return nil
}

// addGoBench adds the Go benchmarks to the table, with the agent library's
// read path as the baseline of the daemon's frame loop.
func addGoBench(t *table, res []goBench) {
	var agentRead float64
	for _, b := range res {
		if b.Name == "AgentReadPoint" {
			agentRead = b.NsPerOp
		}
	}
	for _, b := range res {
		r := row{Measure: "Go: " + b.Name, Result: fmt.Sprintf("%.0f ns/op", b.NsPerOp)}
		if b.HasMem {
			r.Result += fmt.Sprintf(", %.0f B/op, %.0f allocs/op", b.BPerOp, b.Allocs)
		}
		if b.Name == "ConnPoint" && agentRead > 0 {
			r.Baseline = fmt.Sprintf("AgentReadPoint %.0f ns/op", agentRead)
			r.Ratio = fmt.Sprintf("%.2fx the speed", agentRead/b.NsPerOp)
		}
		if b.Name == "HandlerPoint/no-change/ok" || b.Name == "HandlerPoint/no-change/critical" || b.Name == "ConnPoint" {
			r.Target = "0 allocs/op"
			r.Verdict = check(b.Allocs == 0)
		}
		t.add(r)
	}
}

func socketIngest(c config, t *table, e *endpoint, d *stack.Daemon, drop *dropProcess, stderr io.Writer) error {
	for _, run := range []struct {
		every  int
		target bool
	}{{500, true}, {0, false}} {
		l := load{groups: 1000, changeEvery: run.every, start: time.Now()}
		f, err := l.pointFrames(c.points)
		if err != nil {
			return err
		}
		logf(stderr, "socket ingest: %d rounds of %d points (%d state changes each)", c.rounds, c.points, l.changes(c.points))
		daemonOpts := append(squadcastOptions(), urlOption(e, "ingest"))
		base, ours, err := compare(c.rounds,
			func() (float64, error) { return ingest(drop.Socket, squadcastOptions(), f) },
			func() (float64, error) { return ingest(d.Socket, daemonOpts, f) })
		if err != nil {
			return fmt.Errorf("socket ingest: %w", err)
		}
		logf(stderr, "socket ingest: drop UDF %v; daemon %v", base, ours)
		ratio := ours.ratio(base)
		r := row{
			Measure:  fmt.Sprintf("Ingest over the socket (3 exprs, 1000 groups, 1 change/%d points), %d rounds", run.every, c.rounds),
			Result:   kps(ours.median()),
			Baseline: "drop UDF (agent library) " + kps(base.median()),
			Ratio:    fmt.Sprintf("%.2f", ratio),
			Target:   "≥ 0.90",
			Verdict:  check(ratio >= 0.90),
		}
		if !run.target {
			r.Measure = fmt.Sprintf("Ingest over the socket (3 exprs, 1000 groups, no state change), %d rounds", c.rounds)
			r.Target, r.Verdict = "(for comparison)", ""
		}
		t.add(r)
	}
	return nil
}

func latency(c config, t *table, e *endpoint, d *stack.Daemon, stderr io.Writer) error {
	logf(stderr, "latency: %d events, one at a time", c.latencySamples)
	ls, err := latencies(d.Socket, e, c.latencySamples)
	if err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	p50, p99, pmax := percentile(ls, 50), percentile(ls, 99), percentile(ls, 100)
	t.add(row{
		Measure:  fmt.Sprintf("Latency, point at the socket → request at an idle endpoint (%d events)", len(ls)),
		Result:   fmt.Sprintf("p99 %s", p99.Round(10*time.Microsecond)),
		Baseline: fmt.Sprintf("p50 %s, max %s", p50.Round(10*time.Microsecond), pmax.Round(10*time.Microsecond)),
		Target:   "p99 < 5ms",
		Verdict:  check(p99 < 5*time.Millisecond),
	})
	return nil
}

func outboxCost(c config, t *table, e *endpoint, dir string, stderr io.Writer) error {
	sender, err := newSender(filepath.Join(dir, "outbox-on"), e)
	if err != nil {
		return err
	}
	defer closeSender(sender)
	on, err := startInProcess(dir, "on", sender)
	if err != nil {
		return err
	}
	defer on.stop()
	discard, err := openDiscardSink(filepath.Join(dir, "off"))
	if err != nil {
		return err
	}
	defer discard.db.Close()
	off, err := startInProcess(dir, "off", discard)
	if err != nil {
		return err
	}
	defer off.stop()
	l := load{groups: 1000, changeEvery: 1000, start: time.Now()}
	f, err := l.pointFrames(c.points)
	if err != nil {
		return err
	}
	logf(stderr, "outbox cost: %d rounds of %d points, in process", c.rounds, c.points)
	offR, onR, err := compare(c.rounds,
		func() (float64, error) { return ingest(off.Socket, squadcastOptions(), f) },
		func() (float64, error) { return ingest(on.Socket, squadcastOptions(), f) })
	if err != nil {
		return fmt.Errorf("outbox cost: %w", err)
	}
	logf(stderr, "outbox cost: discarding publisher %v; sender with outbox %v", offR, onR)
	ratio := onR.ratio(offR)
	t.add(row{
		Measure:  "Outbox cost (1 change/1000 points; sender with outbox vs a publisher that discards events: the outbox cannot be turned off)",
		Result:   kps(onR.median()),
		Baseline: "discarding publisher " + kps(offR.median()),
		Ratio:    fmt.Sprintf("%.2f (costs %.1f%%)", ratio, 100*(1-ratio)),
		Target:   "costs < 5%",
		Verdict:  check(ratio > 0.95),
	})
	return nil
}

func throughKapacitord(ctx context.Context, c config, t *table, e *endpoint, d, dw *stack.Daemon, drop *dropProcess, dir string, stderr io.Writer) error {
	logf(stderr, "starting kapacitord")
	k, err := stack.StartKapacitord(stack.KapacitordConfig{
		UDFSocket: d.Socket,
		MoreUDFs:  map[string]string{"squadcastw": dw.Socket, "drop": drop.Socket},
		HTTPPost:  map[string]string{"slow": e.URL + "/post/x"},
	})
	if err != nil {
		return err
	}
	defer k.Stop()
	for _, task := range []struct{ id, script string }{
		{"kin_sq", squadcastScript("squadcast", e.URL+"/kin/benchkey")},
		{"kin_drop", dropScript()},
		{"dl_post", postScript("slow")},
		{"dl_sq", squadcastScript("squadcast", e.URL+"/dsq/benchkey")},
		{"dl_sqw", squadcastScript("squadcastw", e.URL+"/dsqw/benchkey")},
	} {
		if err := defineTask(k, task.id, task.id, task.script); err != nil {
			return err
		}
	}

	for _, every := range []int{500, 0} {
		logf(stderr, "kapacitord ingest: %d rounds of %d points (%d state changes each)", c.rounds, c.kapPoints, load{groups: 1000, changeEvery: every}.changes(c.kapPoints))
		start := time.Now()
		var sqR, dropR rates
		for r := range c.rounds {
			l := load{groups: 1000, changeEvery: every, start: start.Add(time.Duration(2*r*c.kapPoints) * time.Millisecond)}
			bodies := l.lineProtocol(c.kapPoints, 5000)
			v, err := kapIngest(k, "kin_drop", "drop", "kin_drop", bodies, c.kapPoints)
			if err != nil {
				return fmt.Errorf("kapacitord ingest: %w", err)
			}
			dropR = append(dropR, v)
			v, err = kapIngest(k, "kin_sq", "squadcast", "kin_sq", bodies, c.kapPoints)
			if err != nil {
				return fmt.Errorf("kapacitord ingest: %w", err)
			}
			sqR = append(sqR, v)
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		logf(stderr, "kapacitord ingest: drop UDF %v; daemon %v", dropR, sqR)
		ratio := sqR.ratio(dropR)
		r := row{
			Measure:  fmt.Sprintf("Ingest through kapacitord 1.5.9 (HTTP write API, 1 change/%d points), %d rounds", every, c.rounds),
			Result:   kps(sqR.median()),
			Baseline: "task with the drop UDF " + kps(dropR.median()),
			Ratio:    fmt.Sprintf("%.2f", ratio),
			Target:   "≥ 0.95",
			Verdict:  check(ratio >= 0.95),
		}
		if every == 0 {
			r.Measure = fmt.Sprintf("Ingest through kapacitord 1.5.9 (HTTP write API, no state change), %d rounds", c.rounds)
			r.Target, r.Verdict = "(for comparison)", ""
		}
		t.add(r)
	}

	logf(stderr, "delivery: %d incidents at once, endpoint taking 100ms per request", c.deliveries)
	e.setDelay(100 * time.Millisecond)
	defer e.setDelay(0)
	post, err := kapDeliver(k, e, "dl_post", "post", "post", c.deliveries)
	if err != nil {
		return fmt.Errorf("delivery by |alert().post(): %w", err)
	}
	for _, dl := range []struct {
		task, seg, workers string
	}{{"dl_sq", "dsq", fmt.Sprintf("%d (default)", squadcast.DefaultWorkers)}, {"dl_sqw", "dsqw", fmt.Sprint(c.workers)}} {
		took, err := kapDeliver(k, e, dl.task, dl.seg, dl.seg, c.deliveries)
		if err != nil {
			return fmt.Errorf("delivery by the daemon: %w", err)
		}
		x := post.Seconds() / took.Seconds()
		r := row{
			Measure:  fmt.Sprintf("Delivery of %d incidents opened at once, 100 ms per request, --workers %s", c.deliveries, dl.workers),
			Result:   took.Round(time.Millisecond).String(),
			Baseline: "kapacitord \\|alert().post() " + post.Round(time.Millisecond).String(),
			Ratio:    fmt.Sprintf("%.1fx faster", x),
			Target:   "≥ 20x faster",
			Verdict:  check(x >= 20),
		}
		if dl.task != "dl_sq" {
			r.Target, r.Verdict = "(for comparison)", ""
		}
		t.add(r)
	}
	return nil
}

// memorySeq numbers the memory runs.
var memorySeq atomic.Int64

func memory(c config, t *table, e *endpoint, limit string, start func() (*stack.Daemon, error), stderr io.Writer) error {
	d, err := start()
	if err != nil {
		return err
	}
	defer d.Stop()
	idle, err := readProcMemory(d.Pid())
	if err != nil {
		return err
	}
	logf(stderr, "memory: %d alerting groups (GOMEMLIMIT %q)", c.memGroups, limit)
	began := time.Now()
	// Each run has a path segment of its own: the endpoint's counts of a
	// segment add up over runs, and a second run on the first's would not
	// be paced, nor wait for its own deliveries.
	cl, err := memoryRun(d.Socket, e, fmt.Sprintf("memory%d", memorySeq.Add(1)), c.memGroups)
	if err != nil {
		return err
	}
	defer cl.close()
	took := time.Since(began)
	time.Sleep(2 * time.Second)
	m, err := readProcMemory(d.Pid())
	if err != nil {
		return err
	}
	if err := cl.sync(time.Minute); err != nil { // the task node is still connected
		return err
	}
	logf(stderr, "memory: %d groups in %s; RSS %s (anon %s, peak %s)", c.memGroups, took.Round(time.Second), mib(m.RSS), mib(m.Anon), mib(m.Peak))
	measure := fmt.Sprintf("Memory: daemon RSS holding %d alerting groups (all their events delivered)", c.memGroups)
	if limit != "" {
		measure += ", GOMEMLIMIT=" + limit
	}
	t.add(row{
		Measure:  measure,
		Result:   fmt.Sprintf("%s (anonymous %s, peak %s)", mib(m.RSS), mib(m.Anon), mib(m.Peak)),
		Baseline: "idle daemon " + mib(idle.RSS),
		Target:   "< 300 MiB",
		Verdict:  check(m.RSS < 300<<20),
	})
	return nil
}
