package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/cmd/internal/stack"
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

func postScript(endpoint string) string {
	return fromCPU + `    |alert()
        .crit(lambda: "usage_idle" < 10)
        .warn(lambda: "usage_idle" < 25)
        .info(lambda: "usage_idle" < 40)
        .stateChangesOnly()
        .post()
            .endpoint('` + endpoint + "')\n"
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
