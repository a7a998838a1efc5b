package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/cmd/internal/stack"
	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast"
)

// Tasks of the runs through a real kapacitord. Each reads its own database,
// so that a write reaches one task only.
const (
	exprOptions = `
        .crit('"usage_idle" < 10')
        .warn('"usage_idle" < 25')
        .info('"usage_idle" < 40')`
	fromCPU = `stream
    |from()
        .measurement('cpu')
        .groupBy('host')
`
)

func squadcastScript(udfName, url string) string {
	return fromCPU + "    @" + udfName + "()" + exprOptions + "\n        .url('" + url + "')\n"
}

func dropScript() string { return fromCPU + "    @drop()\n" }

// postScript is the task whose |alert() posts with kapacitord's own
// handler: post is `.post('URL')`, or `.post()` and its `.endpoint()`.
func postScript(post string) string {
	return fromCPU + `    |alert()
        .crit(lambda: "usage_idle" < 10)
        .warn(lambda: "usage_idle" < 25)
        .info(lambda: "usage_idle" < 40)
        .stateChangesOnly()
        ` + post + "\n"
}

// defineTask defines and enables a task reading database db and waits until it runs.
func defineTask(k *stack.Kapacitord, id, db, script string) error {
	if err := k.DefineTask(id, script, []stack.DBRP{{DB: db, RP: "autogen"}}, true); err != nil {
		return err
	}
	_, err := k.WaitTask(id, 30*time.Second, "executing", func(t stack.Task) bool { return t.Executing || t.Error != "" })
	if err != nil {
		return err
	}
	t, err := k.Task(id)
	if err == nil && t.Error != "" {
		err = fmt.Errorf("task %s failed: %s", id, t.Error)
	}
	return err
}

// collected returns how many points the task's first node whose name
// starts with node has taken.
func collected(k *stack.Kapacitord, task, node string) (int64, error) {
	t, err := k.Task(task)
	if err != nil {
		return 0, err
	}
	n, _ := t.Stat(node, "collected")
	return n, nil
}

// kapIngest writes the bodies to database db and returns points per second:
// from the first write until the task's UDF node has taken all n points
// (Kapacitor writes them to the UDF's socket as it takes them; at most a
// socket buffer's worth is still unread then).
func kapIngest(k *stack.Kapacitord, task, node, db string, bodies []string, n int) (float64, error) {
	before, err := collected(k, task, node)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	for _, b := range bodies {
		if err := k.Write(db, "autogen", b); err != nil {
			return 0, err
		}
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		got, err := collected(k, task, node)
		if err != nil {
			return 0, err
		}
		if got-before >= int64(n) {
			return float64(n) / time.Since(start).Seconds(), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("task %s took %d of %d points within 5 minutes", task, got-before, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// kapDeliver writes one CRITICAL point for each of n hosts named
// prefix-N to db in one request and returns the time until the endpoint has
// answered n requests under seg.
func kapDeliver(k *stack.Kapacitord, e *endpoint, db, seg, prefix string, n int) (time.Duration, error) {
	_, before := e.counts(seg)
	var b strings.Builder
	ts := time.Now().UnixNano()
	for h := range n {
		fmt.Fprintf(&b, "cpu,cpu=cpu-total,host=%s-%04d usage_idle=%g,usage_user=93,usage_system=1.5,usage_iowait=0.5 %d\n", prefix, h, critIdle, ts)
	}
	start := time.Now()
	if err := k.Write(db, "autogen", b.String()); err != nil {
		return 0, err
	}
	last, ok := e.waitDone(seg, before+n, 5*time.Minute)
	if !ok {
		_, done := e.counts(seg)
		return 0, fmt.Errorf("%s: %d of %d requests answered within 5 minutes", seg, done-before, n)
	}
	return last.Sub(start), nil
}

// kapacitordRuns makes the runs through kapacitord, with a second daemon
// (--workers c.workers) for the delivery run, or says in the table that
// they were not made when $KAPACITORD is not set.
func (r *rig) kapacitordRuns(ctx context.Context) error {
	switch {
	case !r.c.runs("kapacitord"):
		return nil
	case os.Getenv(stack.KapacitordEnv) == "":
		r.t.add(row{Measure: "through kapacitord", Result: "not run: set " + stack.KapacitordEnv})
		return nil
	}
	dw, err := r.startDaemon("daemonw", nil, "--workers", fmt.Sprint(r.c.workers))
	if err != nil {
		return err
	}
	r.stopOnClose(func() { dw.Stop() })
	k, err := r.startKapacitord(dw)
	if err != nil {
		return err
	}
	defer k.Stop()
	if err := r.kapacitordIngest(ctx, k); err != nil {
		return err
	}
	return r.kapacitordDelivery(k)
}

// startKapacitord starts kapacitord with the UDFs squadcast (the shared
// daemon), squadcastw (dw) and drop, and the [[httppost]] endpoint slow,
// and defines the tasks of the runs.
func (r *rig) startKapacitord(dw *stack.Daemon) (*stack.Kapacitord, error) {
	return r.startKapacitordWith(stack.KapacitordConfig{
		UDFSocket: r.daemon.Socket,
		MoreUDFs:  map[string]string{"squadcastw": dw.Socket, "drop": r.drop.Addr},
		HTTPPost:  map[string]string{"slow": r.e.URL + "/post/x"},
	}, []taskDef{
		{"kin_sq", squadcastScript("squadcast", r.e.URL+"/kin/benchkey")},
		{"kin_drop", dropScript()},
		{"dl_post", postScript(".post()\n            .endpoint('slow')")},
		{"dl_sq", squadcastScript("squadcast", r.e.URL+"/dsq/benchkey")},
		{"dl_sqw", squadcastScript("squadcastw", r.e.URL+"/dsqw/benchkey")},
	})
}

// taskDef is a task of a run: its id, which is also the database it reads,
// and its TICKscript.
type taskDef struct{ id, script string }

// startKapacitordWith starts kapacitord with cfg and defines and enables
// the tasks. The caller stops it.
func (r *rig) startKapacitordWith(cfg stack.KapacitordConfig, tasks []taskDef) (*stack.Kapacitord, error) {
	logf(r.stderr, "starting kapacitord")
	k, err := stack.StartKapacitord(cfg)
	if err != nil {
		return nil, err
	}
	for _, task := range tasks {
		if err := defineTask(k, task.id, task.id, task.script); err != nil {
			k.Stop()
			return nil, err
		}
	}
	return k, nil
}

// kapacitordIngest compares the ingest of the task using the daemon against
// the task using the drop UDF, the rounds of both alternating, with a state
// change every 500 points (the row with a target) and with none.
func (r *rig) kapacitordIngest(ctx context.Context, k *stack.Kapacitord) error {
	for _, every := range []int{500, 0} {
		logf(r.stderr, "kapacitord ingest: %d rounds of %d points (%d state changes each)", r.c.rounds, r.c.kapPoints, load{groups: 1000, changeEvery: every}.changes(r.c.kapPoints))
		start := time.Now()
		var sqR, dropR rates
		for round := range r.c.rounds {
			l := load{groups: 1000, changeEvery: every, start: start.Add(time.Duration(2*round*r.c.kapPoints) * time.Millisecond)}
			bodies := l.lineProtocol(r.c.kapPoints, 5000)
			v, err := kapIngest(k, "kin_drop", "drop", "kin_drop", bodies, r.c.kapPoints)
			if err != nil {
				return fmt.Errorf("kapacitord ingest: %w", err)
			}
			dropR = append(dropR, v)
			v, err = kapIngest(k, "kin_sq", "squadcast", "kin_sq", bodies, r.c.kapPoints)
			if err != nil {
				return fmt.Errorf("kapacitord ingest: %w", err)
			}
			sqR = append(sqR, v)
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		logf(r.stderr, "kapacitord ingest: drop UDF %v; daemon %v", dropR, sqR)
		ratio := sqR.ratio(dropR)
		out := row{
			Measure:  fmt.Sprintf("Ingest through kapacitord 1.5.9 (HTTP write API, 1 change/%d points), %d rounds", every, r.c.rounds),
			Result:   kps(sqR.median()),
			Baseline: "task with the drop UDF " + kps(dropR.median()),
			Ratio:    fmt.Sprintf("%.2f", ratio),
			Target:   "≥ 0.95",
			Verdict:  check(ratio >= 0.95),
		}
		if every == 0 {
			out.Measure = fmt.Sprintf("Ingest through kapacitord 1.5.9 (HTTP write API, no state change), %d rounds", r.c.rounds)
			out.Target, out.Verdict = "(for comparison)", ""
		}
		r.t.add(out)
	}
	return nil
}

// kapacitordDelivery times the delivery of c.deliveries incidents opened
// at once, to an endpoint taking 100ms per request, by kapacitord's own
// |alert().post() and by each daemon.
func (r *rig) kapacitordDelivery(k *stack.Kapacitord) error {
	logf(r.stderr, "delivery: %d incidents at once, endpoint taking 100ms per request", r.c.deliveries)
	r.e.setDelay(100 * time.Millisecond)
	defer r.e.setDelay(0)
	post, err := kapDeliver(k, r.e, "dl_post", "post", "post", r.c.deliveries)
	if err != nil {
		return fmt.Errorf("delivery by |alert().post(): %w", err)
	}
	for _, dl := range []struct {
		task, seg, workers string
	}{{"dl_sq", "dsq", fmt.Sprintf("%d (default)", squadcast.DefaultWorkers)}, {"dl_sqw", "dsqw", fmt.Sprint(r.c.workers)}} {
		took, err := kapDeliver(k, r.e, dl.task, dl.seg, dl.seg, r.c.deliveries)
		if err != nil {
			return fmt.Errorf("delivery by the daemon: %w", err)
		}
		x := post.Seconds() / took.Seconds()
		out := row{
			Measure:  fmt.Sprintf("Delivery of %d incidents opened at once, 100 ms per request, --workers %s", r.c.deliveries, dl.workers),
			Result:   took.Round(time.Millisecond).String(),
			Baseline: "kapacitord \\|alert().post() " + post.Round(time.Millisecond).String(),
			Ratio:    fmt.Sprintf("%.1fx faster", x),
			Target:   "≥ 20x faster",
			Verdict:  check(x >= 20),
		}
		if dl.task != "dl_sq" {
			out.Target, out.Verdict = "(for comparison)", ""
		}
		r.t.add(out)
	}
	return nil
}
