package main

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
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

// rates are the throughputs of a UDF over rounds of the same run.
type rates []float64

// median is the middle rate (the mean of the two middle ones for an even
// count): one lucky or unlucky round on a busy machine does not move it.
func (r rates) median() float64 {
	if len(r) == 0 {
		return 0
	}
	s := append(rates(nil), r...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (r rates) String() string {
	s := make([]string, len(r))
	for i, v := range r {
		s[i] = strconv.FormatFloat(v/1000, 'f', 0, 64) + "k"
	}
	return strings.Join(s, " ")
}

// ratio is the median of the ratios of r to base round by round (r[i] /
// base[i]): each round of one side ran right next to the same round of
// the other, so that the machine's slower and faster spells, which move
// both, cancel out in each ratio.
func (r rates) ratio(base rates) float64 {
	var q rates
	for i := range min(len(r), len(base)) {
		if base[i] > 0 {
			q = append(q, r[i]/base[i])
		}
	}
	return q.median()
}

// compare runs a and b alternately, rounds times each, and returns their
// rates: alternating spreads the machine's other load over both; compare
// them with ratio.
func compare(rounds int, a, b func() (float64, error)) (ra, rb rates, err error) {
	for range rounds {
		va, err := a()
		if err != nil {
			return nil, nil, err
		}
		vb, err := b()
		if err != nil {
			return nil, nil, err
		}
		ra, rb = append(ra, va), append(rb, vb)
	}
	return ra, rb, nil
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

// percentile returns the p-th percentile (0..100) of ds, nearest rank.
func percentile(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) == 0 {
		return 0
	}
	k := int(float64(len(s))*p/100+0.999999) - 1
	return s[min(max(k, 0), len(s)-1)]
}

// memoryRun sends one point for each of groups distinct hosts, all
// CRITICAL, so that the daemon holds every group's alert state, pacing the
// writes so that undelivered events stay well below the daemon's memory
// queue (100,000; more would wait in the outbox only); it returns once every event was delivered, with the
// connection still open: the task node, and its groups, are still there
// until the caller closes it. Its events go to the endpoint under path
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
