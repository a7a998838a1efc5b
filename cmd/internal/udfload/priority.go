package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/influxdata/kapacitor/udf/agent"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast"
)

// The storms on a rate-limited endpoint run the daemon's socket server and
// sender in this process: first in, first out (the baseline of priority)
// is a switch of the sender's (Config.FirstInFirstOut) that no flag sets.
// Variables for tests, which make them smaller.
var (
	prioWarnings = 300
	prioCrits    = 5
	prioLimit    = 1200 // requests a minute: the warnings take 15 s
	coalesceN    = 300
	coalesceRate = 3000 // requests a minute: the 600 events take 12 s
)

// warnIdle is a usage_idle that makes a point WARNING.
const warnIdle = 20.0

// rateLimited makes the storm runs on a rate-limited endpoint: priority
// against first in, first out, and coalescing against none.
func (r *rig) rateLimited() error {
	if !r.c.runs("ratelimit") {
		return nil
	}
	if err := r.priority(); err != nil {
		return fmt.Errorf("priority: %w", err)
	}
	if err := r.coalescing(); err != nil {
		return fmt.Errorf("coalescing: %w", err)
	}
	return nil
}

// limitedSender is the sender and socket server of one run, delivering to
// the endpoint under path segment seg (new to it) at limit requests a minute.
type limitedSender struct {
	sender *squadcast.Sender
	srv    *inProcess
}

func (r *rig) startLimited(seg string, limit int, fifo, coalesce bool) (*limitedSender, error) {
	dir := filepath.Join(r.dir, seg)
	s, err := squadcast.New(squadcast.Config{
		Endpoints: []squadcast.Endpoint{{Name: squadcast.DefaultEndpoint, URL: r.e.URL + "/" + seg + "/benchkey",
			RateLimit: squadcast.RateLimit{Events: limit, Per: time.Minute}, Coalesce: coalesce}},
		DataDir: dir, FirstInFirstOut: fifo,
	})
	if err != nil {
		return nil, err
	}
	srv, err := startInProcess(r.dir, seg, s)
	if err != nil {
		closeSender(s)
		return nil, err
	}
	return &limitedSender{sender: s, srv: srv}, nil
}

// stop stops the run without waiting for what still waits for a slot.
func (l *limitedSender) stop() {
	l.srv.stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = l.sender.Close(ctx)
}

// writePoints writes one point per host at the level idle gives, and
// waits until the daemon handled them.
func writePoints(c *client, prefix string, n int, idle float64) error {
	f := &frames{}
	t0 := time.Now().UnixNano()
	for i := range n {
		if err := f.add(&agent.Request{Message: &agent.Request_Point{Point: point(fmt.Sprintf("%s-%04d", prefix, i), idle, t0+int64(i))}}); err != nil {
			return err
		}
	}
	if err := c.writeFrames(f, 0, f.len()); err != nil {
		return fmt.Errorf("%w (%v)", err, c.Err())
	}
	return c.sync(time.Minute)
}

// priority times, with priority and first in, first out, how long 5 new
// CRITICAL triggers take to reach a rate-limited endpoint behind 300
// WARNING triggers opened at once.
func (r *rig) priority() error {
	logf(r.stderr, "priority: %d WARNING incidents at once, then %d CRITICAL, at %d/m", prioWarnings, prioCrits, prioLimit)
	var took [2]time.Duration
	for i, fifo := range []bool{true, false} {
		var err error
		if took[i], err = r.critsBehindWarnings(fmt.Sprintf("prio%d", memorySeq.Add(1)), fifo); err != nil {
			return err
		}
	}
	logf(r.stderr, "priority: CRITICAL delivered %s after, first in first out %s", took[1].Round(time.Millisecond), took[0].Round(time.Millisecond))
	ratio := took[0].Seconds() / took[1].Seconds()
	r.t.add(row{
		Measure: fmt.Sprintf("Storm on a rate-limited endpoint (%d/m): %d WARNING incidents opened at once, then %d CRITICAL; until the %d CRITICAL triggers are delivered",
			prioLimit, prioWarnings, prioCrits, prioCrits),
		Result:   took[1].Round(time.Millisecond).String(),
		Baseline: "first in, first out " + took[0].Round(time.Millisecond).String(),
		Ratio:    fmt.Sprintf("%.1fx sooner", ratio),
		Target:   "≥ 10x sooner",
		Verdict:  check(ratio >= 10),
	})
	return nil
}

// critsBehindWarnings makes one priority run and returns the time from the
// CRITICAL points' write until their last trigger arrived.
func (r *rig) critsBehindWarnings(seg string, fifo bool) (time.Duration, error) {
	l, err := r.startLimited(seg, prioLimit, fifo, false)
	if err != nil {
		return 0, err
	}
	defer l.stop()
	var mu sync.Mutex
	crits, arrived := 0, make(chan time.Time, 1)
	r.e.setOnBody(func(path string, body []byte, t time.Time) {
		if segment(path) != seg || !bytes.Contains(body, []byte(`"level":"CRITICAL"`)) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if crits++; crits == prioCrits {
			arrived <- t
		}
	})
	defer r.e.setOnBody(nil)
	c, err := dial(l.srv.Socket)
	if err != nil {
		return 0, err
	}
	defer c.close()
	if err := c.init(nextTask("prio"), squadcastOptions()); err != nil { // the default endpoint, rate-limited
		return 0, err
	}
	if err := writePoints(c, "warn", prioWarnings, warnIdle); err != nil {
		return 0, err
	}
	start := time.Now()
	if err := writePoints(c, "crit", prioCrits, critIdle); err != nil {
		return 0, err
	}
	select {
	case at := <-arrived:
		return at.Sub(start), nil
	case <-time.After(5 * time.Minute):
		return 0, fmt.Errorf("the %d CRITICAL triggers were not delivered within 5 minutes", prioCrits)
	}
}

// coalescing counts the requests a storm that opens and resolves spends,
// with coalescing and without: coalesceN incidents open at once on a
// rate-limited endpoint, and resolve as soon as the daemon handled their
// triggers.
func (r *rig) coalescing() error {
	logf(r.stderr, "coalescing: %d incidents open and resolve at once, at %d/m", coalesceN, coalesceRate)
	var spent [2]int
	for i, on := range []bool{false, true} {
		var err error
		if spent[i], err = r.openAndResolve(fmt.Sprintf("coal%d", memorySeq.Add(1)), on); err != nil {
			return err
		}
	}
	logf(r.stderr, "coalescing: %d requests, without %d", spent[1], spent[0])
	r.t.add(row{
		Measure: fmt.Sprintf("Storm on a rate-limited endpoint (%d/m): %d incidents open at once, then resolve; requests spent, coalesce = true",
			coalesceRate, coalesceN),
		Result:   fmt.Sprintf("%d requests", spent[1]),
		Baseline: fmt.Sprintf("without coalescing %d requests", spent[0]),
		Ratio:    fmt.Sprintf("%.2f", float64(spent[1])/float64(spent[0])),
		Target:   "(for comparison)",
	})
	return nil
}

// openAndResolve makes one coalescing run and returns the requests it
// spent once every event was delivered or coalesced.
func (r *rig) openAndResolve(seg string, coalesce bool) (int, error) {
	l, err := r.startLimited(seg, coalesceRate, false, coalesce)
	if err != nil {
		return 0, err
	}
	defer l.stop()
	c, err := dial(l.srv.Socket)
	if err != nil {
		return 0, err
	}
	defer c.close()
	if err := c.init(nextTask("coal"), squadcastOptions()); err != nil {
		return 0, err
	}
	if err := writePoints(c, "host", coalesceN, critIdle); err != nil {
		return 0, err
	}
	if err := writePoints(c, "host", coalesceN, okIdle); err != nil {
		return 0, err
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		st := l.sender.Stats()
		if st.Published == uint64(2*coalesceN) && st.Delivered+st.Coalesced == st.Published {
			break
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("not all events delivered or coalesced within 5 minutes: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, done := r.e.counts(seg)
	return done, nil
}
