package main

import (
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/influxdata/kapacitor/udf/agent"
)

// taskSeq numbers the task IDs of socket runs, so that each run starts
// with no saved alert state.
var taskSeq atomic.Int64

func nextTask(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), taskSeq.Add(1))
}

// urlOption is the .url() option of a node: its events go to the load
// endpoint under path segment seg.
func urlOption(e *endpoint, seg string) *agent.Option {
	return &agent.Option{Name: "url", Values: []*agent.OptionValue{
		{Type: agent.ValueType_STRING, Value: &agent.OptionValue_StringValue{StringValue: e.URL + "/" + seg + "/benchkey"}},
	}}
}

// socketIngest compares the daemon's ingest over the socket against the
// drop UDF's, with a state change every 500 points (the row with a target)
// and with none (for comparison).
func (r *rig) socketIngest() error {
	for _, run := range []struct {
		every  int
		target bool
	}{{500, true}, {0, false}} {
		l := load{groups: 1000, changeEvery: run.every, start: time.Now()}
		f, err := l.pointFrames(r.c.points)
		if err != nil {
			return err
		}
		logf(r.stderr, "socket ingest: %d rounds of %d points (%d state changes each)", r.c.rounds, r.c.points, l.changes(r.c.points))
		daemonOpts := append(squadcastOptions(), urlOption(r.e, "ingest"))
		base, ours, err := compare(r.c.rounds,
			func() (float64, error) { return ingest(r.drop.Addr, squadcastOptions(), f) },
			func() (float64, error) { return ingest(r.daemon.Socket, daemonOpts, f) })
		if err != nil {
			return fmt.Errorf("socket ingest: %w", err)
		}
		logf(r.stderr, "socket ingest: drop UDF %v; daemon %v", base, ours)
		ratio := ours.ratio(base)
		out := row{
			Measure:  fmt.Sprintf("Ingest over the socket (3 exprs, 1000 groups, 1 change/%d points), %d rounds", run.every, r.c.rounds),
			Result:   kps(ours.median()),
			Baseline: "drop UDF (agent library) " + kps(base.median()),
			Ratio:    fmt.Sprintf("%.2f", ratio),
			Target:   "≥ 0.90",
			Verdict:  check(ratio >= 0.90),
		}
		if !run.target {
			out.Measure = fmt.Sprintf("Ingest over the socket (3 exprs, 1000 groups, no state change), %d rounds", r.c.rounds)
			out.Target, out.Verdict = "(for comparison)", ""
		}
		r.t.add(out)
	}
	return nil
}

// ingest drives one task node on socket with the frames, as Kapacitor
// does, and returns points per second: from the first write until the UDF
// has answered a keepalive sent after the last point (it answers in order,
// so every point was handled). Kapacitor also sends a keepalive every
// timeout/2; so does this, every 5s.
func ingest(socket string, opts []*agent.Option, f *frames) (float64, error) {
	c, err := dial(socket)
	if err != nil {
		return 0, err
	}
	defer c.close()
	if err := c.init(nextTask("ingest"), opts); err != nil {
		return 0, err
	}
	const chunk = 4096
	start := time.Now()
	lastKeepalive := start
	for from := 0; from < f.len(); from += chunk {
		if err := c.writeFrames(f, from, min(from+chunk, f.len())); err != nil {
			return 0, fmt.Errorf("%w (%v)", err, c.Err())
		}
		if time.Since(lastKeepalive) > 5*time.Second {
			if _, err := c.keepalive(time.Now().UnixNano()); err != nil {
				return 0, err
			}
			lastKeepalive = time.Now()
		}
	}
	if err := c.sync(5 * time.Minute); err != nil {
		return 0, err
	}
	return float64(f.len()) / time.Since(start).Seconds(), nil
}

// latency times events one at a time from the socket to the endpoint.
func (r *rig) latency() error {
	logf(r.stderr, "latency: %d events, one at a time", r.c.latencySamples)
	ls, err := latencies(r.daemon.Socket, r.e, r.c.latencySamples)
	if err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	p50, p99, pmax := percentile(ls, 50), percentile(ls, 99), percentile(ls, 100)
	r.t.add(row{
		Measure:  fmt.Sprintf("Latency, point at the socket → request at an idle endpoint (%d events)", len(ls)),
		Result:   fmt.Sprintf("p99 %s", p99.Round(10*time.Microsecond)),
		Baseline: fmt.Sprintf("p50 %s, max %s", p50.Round(10*time.Microsecond), pmax.Round(10*time.Microsecond)),
		Target:   "p99 < 5ms",
		Verdict:  check(p99 < 5*time.Millisecond),
	})
	return nil
}

// latencies measures, n times, the time from writing a point that changes
// its group's level to the socket until the request of its event reaches
// the endpoint, one point at a time with pauses between them: an idle
// daemon and endpoint.
func latencies(socket string, e *endpoint, n int) ([]time.Duration, error) {
	arrivals := make(chan time.Time, 16)
	e.setOnArrive(func(path string, t time.Time) {
		if segment(path) == "latency" {
			arrivals <- t
		}
	})
	defer e.setOnArrive(nil)
	c, err := dial(socket)
	if err != nil {
		return nil, err
	}
	defer c.close()
	if err := c.init(nextTask("latency"), append(squadcastOptions(), urlOption(e, "latency"))); err != nil {
		return nil, err
	}
	const hosts = 10
	crit := make([]bool, hosts)
	t0 := time.Now().UnixNano()
	out := make([]time.Duration, 0, n)
	for i := range n {
		h := i % hosts
		crit[h] = !crit[h]
		idle := okIdle
		if crit[h] {
			idle = critIdle
		}
		req := &agent.Request{Message: &agent.Request_Point{Point: point(hostName(h), idle, t0+int64(i)*int64(time.Millisecond))}}
		sent := time.Now()
		if err := c.send(req); err != nil {
			return nil, err
		}
		select {
		case at := <-arrivals:
			out = append(out, at.Sub(sent))
		case <-time.After(30 * time.Second):
			return nil, fmt.Errorf("event %d did not reach the endpoint within 30s (%v)", i, c.Err())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return out, c.sync(time.Minute)
}
