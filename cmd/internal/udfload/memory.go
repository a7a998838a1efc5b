package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/influxdata/kapacitor/udf/agent"
)

// memorySeq numbers the memory runs.
var memorySeq atomic.Int64

// memoryRuns makes the memory run with Go's defaults and, if
// -memory-gomemlimit is set, again under that GOMEMLIMIT, each with a
// daemon of its own.
func (r *rig) memoryRuns() error {
	if r.c.memGroups <= 0 || !r.c.runs("memory") {
		return nil
	}
	limits := []string{""}
	if r.c.memLimit != "" {
		limits = append(limits, r.c.memLimit)
	}
	for i, limit := range limits {
		if err := r.memory(i, limit); err != nil {
			return err
		}
	}
	return nil
}

// memory starts daemon i (under GOMEMLIMIT limit unless it is empty),
// makes it hold c.memGroups alerting groups, and adds a row with its RSS
// against its RSS when idle.
func (r *rig) memory(i int, limit string) error {
	var env []string
	if limit != "" {
		env = []string{"GOMEMLIMIT=" + limit}
	}
	d, err := r.startDaemon(fmt.Sprintf("mem%d", i), env)
	if err != nil {
		return err
	}
	defer d.Stop()
	idle, err := readProcMemory(d.Pid())
	if err != nil {
		return err
	}
	logf(r.stderr, "memory: %d alerting groups (GOMEMLIMIT %q)", r.c.memGroups, limit)
	began := time.Now()
	// Each run has a path segment of its own: the endpoint's counts of a
	// segment add up over runs, and a second run on the first's would not
	// be paced, nor wait for its own deliveries.
	cl, err := memoryRun(d.Socket, r.e, fmt.Sprintf("memory%d", memorySeq.Add(1)), r.c.memGroups)
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
	logf(r.stderr, "memory: %d groups in %s; RSS %s (anon %s, peak %s)", r.c.memGroups, took.Round(time.Second), mib(m.RSS), mib(m.Anon), mib(m.Peak))
	measure := fmt.Sprintf("Memory: daemon RSS holding %d alerting groups (all their events delivered)", r.c.memGroups)
	if limit != "" {
		measure += ", GOMEMLIMIT=" + limit
	}
	r.t.add(row{
		Measure:  measure,
		Result:   fmt.Sprintf("%s (anonymous %s, peak %s)", mib(m.RSS), mib(m.Anon), mib(m.Peak)),
		Baseline: "idle daemon " + mib(idle.RSS),
		Target:   "< 300 MiB",
		Verdict:  check(m.RSS < 300<<20),
	})
	return nil
}

// memoryRun sends one point for each of groups distinct hosts, all
// CRITICAL, so that the daemon holds every group's alert state, pacing the
// writes so that undelivered events stay well below the daemon's memory
// queue (100,000; more would wait in the outbox only); it returns once
// every event was delivered, with the connection still open: the task
// node, and its groups, are still there until the caller closes it. Its events go to the endpoint under path
// segment seg, which must be new to the endpoint: the pacing counts the
// requests answered under it.
func memoryRun(socket string, e *endpoint, seg string, groups int) (_ *client, err error) {
	c, err := dial(socket)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	if err := c.init(nextTask("memory"), append(squadcastOptions(), urlOption(e, seg))); err != nil {
		return nil, err
	}
	const chunk = 10000
	const ahead = 40000
	t0 := time.Now().UnixNano()
	for from := 0; from < groups; from += chunk {
		f := &frames{}
		for i := from; i < min(from+chunk, groups); i++ {
			if err := f.add(&agent.Request{Message: &agent.Request_Point{Point: point(hostName(i), critIdle, t0+int64(i))}}); err != nil {
				return nil, err
			}
		}
		if err := c.writeFrames(f, 0, f.len()); err != nil {
			return nil, fmt.Errorf("%w (%v)", err, c.Err())
		}
		if err := c.sync(5 * time.Minute); err != nil {
			return nil, err
		}
		if _, ok := e.waitDone(seg, from+f.len()-ahead, 5*time.Minute); !ok {
			_, done := e.counts(seg)
			return nil, fmt.Errorf("memory run: only %d of %d events delivered after 5 minutes", done, from+f.len())
		}
	}
	if _, ok := e.waitDone(seg, groups, 10*time.Minute); !ok {
		_, done := e.counts(seg)
		return nil, fmt.Errorf("memory run: only %d of %d events delivered", done, groups)
	}
	return c, c.sync(time.Minute)
}

// procMemory is a process's memory as /proc/PID/status reports it, in bytes.
type procMemory struct {
	RSS, Peak, Anon int64
}

// readProcMemory reads the memory of process pid from /proc/PID/status.
func readProcMemory(pid int) (procMemory, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procMemory{}, fmt.Errorf("reading the process's memory: %w", err)
	}
	var m procMemory
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			m.RSS = n << 10
		case "VmHWM":
			m.Peak = n << 10
		case "RssAnon":
			m.Anon = n << 10
		}
	}
	return m, nil
}
