package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/cmd/internal/stack"
)

// The relay's runs. A daemon with --relay-listen delivers what it relays
// to the endpoint under relaySeg; the baseline of the latency and
// throughput runs is a relay that stores nothing (relay-nostore): the
// daemon's handler, parsing included, with a Sink that takes every alert
// and keeps none, in a process of its own.
const (
	relaySeg = "relayed"
	posters  = 8 // concurrent posters of the throughput run
	// latencyChunks is how many stretches of the latency run go in turn to
	// the relay and to the baseline, so that a slow spell of the machine
	// falls on both.
	latencyChunks = 10
)

// relayRuns makes the runs of the relay for Kapacitor's .post(): delivery
// through kapacitord (when $KAPACITORD is set), answer latency under
// serial posting, and throughput from concurrent posters.
func (r *rig) relayRuns(ctx context.Context) error {
	if !r.c.runs("relay") {
		return nil
	}
	addr, err := stack.FreeAddr()
	if err != nil {
		return err
	}
	d, err := r.startDaemonTo("relayd", relaySeg, nil, "--relay-listen", addr)
	if err != nil {
		return err
	}
	r.stopOnClose(func() { d.Stop() })
	if err := waitListening("tcp", addr, d.Done(), 30*time.Second); err != nil {
		return fmt.Errorf("the daemon's relay: %w", err)
	}
	baseAddr, err := stack.FreeAddr()
	if err != nil {
		return err
	}
	base, err := startSelf("the relay that stores nothing", "tcp", baseAddr, "relay-nostore", "-listen", baseAddr)
	if err != nil {
		return err
	}
	r.stopOnClose(base.Stop)
	relayURL, baseURL := relayURLOf(addr), relayURLOf(baseAddr)

	if err := r.relayDelivery(relayURL); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := r.relayLatency(relayURL, baseURL); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return r.relayThroughput(relayURL, baseURL)
}

// relayURLOf is the URL a .post() gives to relay to the default endpoint
// through the relay at addr.
func relayURLOf(addr string) string { return "http://" + addr + "/relay/default" }

// relayDelivery times the delivery of c.deliveries incidents opened at
// once, to an endpoint taking 100ms per request, by kapacitord's
// |alert().post() straight to the endpoint and through the relay.
func (r *rig) relayDelivery(relayURL string) error {
	if os.Getenv(stack.KapacitordEnv) == "" {
		r.t.add(row{Measure: "Delivery through the relay", Result: "not run: set " + stack.KapacitordEnv})
		return nil
	}
	k, err := r.startKapacitordWith(stack.KapacitordConfig{}, []taskDef{
		{"rl_post", postScript(".post('" + r.e.URL + "/rpost/x')")},
		{"rl_relay", postScript(".post('" + relayURL + "')")},
	})
	if err != nil {
		return err
	}
	defer k.Stop()
	n := r.c.deliveries
	logf(r.stderr, "relay delivery: %d incidents at once, endpoint taking 100ms per request", n)
	r.e.setDelay(100 * time.Millisecond)
	defer r.e.setDelay(0)
	post, err := kapDeliver(k, r.e, "rl_post", "rpost", "rpost", n)
	if err != nil {
		return fmt.Errorf("delivery by |alert().post() to the endpoint: %w", err)
	}
	_, before := r.e.counts(relaySeg)
	relayed, err := kapDeliver(k, r.e, "rl_relay", relaySeg, "rrelay", n)
	if err != nil {
		return fmt.Errorf("delivery by |alert().post() through the relay: %w", err)
	}
	time.Sleep(500 * time.Millisecond) // a duplicate, if any, arrives
	_, after := r.e.counts(relaySeg)
	x := post.Seconds() / relayed.Seconds()
	r.t.add(row{
		Measure:  fmt.Sprintf("Delivery through the relay: %d incidents opened at once, 100 ms per request, kapacitord \\|alert().post() to the relay", n),
		Result:   fmt.Sprintf("%s, %d of %d answered", relayed.Round(time.Millisecond), after-before, n),
		Baseline: "\\|alert().post() to the endpoint " + post.Round(time.Millisecond).String(),
		Ratio:    fmt.Sprintf("%.1fx sooner", x),
		Target:   "≥ 20x sooner, all delivered",
		Verdict:  check(x >= 20 && after-before == n),
	})
	return nil
}

// relayLatency times c.relaySamples alerts posted one at a time, back to
// back, to the relay and to the baseline, in turns of a tenth each.
func (r *rig) relayLatency(relayURL, baseURL string) error {
	n := r.c.relaySamples
	logf(r.stderr, "relay latency: %d alerts one at a time, to the relay and to the relay that stores nothing", n)
	bodies := relayBodies(n, time.Now())
	ours, base := newPoster(relayURL), newPoster(baseURL)
	defer ours.close()
	defer base.close()
	_, before := r.e.counts(relaySeg)
	var lo, lb []time.Duration
	for c := range latencyChunks {
		chunk := bodies[c*n/latencyChunks : (c+1)*n/latencyChunks]
		got, err := ours.serially(chunk)
		if err != nil {
			return fmt.Errorf("relay latency: %w", err)
		}
		lo = append(lo, got...)
		if got, err = base.serially(chunk); err != nil {
			return fmt.Errorf("relay latency, baseline: %w", err)
		}
		lb = append(lb, got...)
	}
	if err := r.waitRelayed(before + n); err != nil {
		return err
	}
	p99 := percentile(lo, 99)
	r.t.add(row{
		Measure:  fmt.Sprintf("Relay answer latency, %d alerts posted one at a time (as .post() does), idle endpoint", n),
		Result:   fmt.Sprintf("p50 %s, p99 %s", us(percentile(lo, 50)), us(p99)),
		Baseline: fmt.Sprintf("relay storing nothing p50 %s, p99 %s", us(percentile(lb, 50)), us(percentile(lb, 99))),
		Target:   "p99 < 2ms",
		Verdict:  check(p99 < 2*time.Millisecond),
	})
	return nil
}

// relayThroughput compares the requests per second that 8 concurrent
// posters get from the relay and from the baseline, alternating rounds of
// c.relayRequests alerts. After each round of the relay it waits, untimed,
// until the endpoint has all its alerts, so that their delivery does not
// run into the baseline's round.
func (r *rig) relayThroughput(relayURL, baseURL string) error {
	n := r.c.relayRequests
	logf(r.stderr, "relay throughput: %d rounds of %d alerts from %d posters", r.c.rounds, n, posters)
	bodies := relayBodies(n, time.Now())
	base, ours, err := compare(r.c.rounds,
		func() (float64, error) { return postConcurrently(baseURL, bodies, posters) },
		func() (float64, error) {
			_, before := r.e.counts(relaySeg)
			v, err := postConcurrently(relayURL, bodies, posters)
			if err == nil {
				err = r.waitRelayed(before + n)
			}
			return v, err
		})
	if err != nil {
		return fmt.Errorf("relay throughput: %w", err)
	}
	logf(r.stderr, "relay throughput: storing nothing %v; relay %v (requests/s)", base, ours)
	ratio := ours.ratio(base)
	r.t.add(row{
		Measure:  fmt.Sprintf("Relay throughput, %d concurrent posters, %d alerts per round, %d rounds", posters, n, r.c.rounds),
		Result:   rps(ours.median()),
		Baseline: "relay storing nothing (same handler and parsing) " + rps(base.median()),
		Ratio:    fmt.Sprintf("%.2f", ratio),
		Target:   "≥ 0.8",
		Verdict:  check(ratio >= 0.8),
	})
	return nil
}

// waitRelayed waits until the endpoint has answered n requests of the
// relay's daemon in all.
func (r *rig) waitRelayed(n int) error {
	if _, ok := r.e.waitDone(relaySeg, n, 5*time.Minute); !ok {
		_, done := r.e.counts(relaySeg)
		return fmt.Errorf("the relay's daemon delivered %d of %d alerts within 5 minutes", done, n)
	}
	return nil
}

// us rounds d for the table: to 10µs.
func us(d time.Duration) string { return d.Round(10 * time.Microsecond).String() }

func rps(v float64) string { return fmt.Sprintf("%.0f requests/s", v) }
