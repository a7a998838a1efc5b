package main

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast"
	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// waitingCollector is a prometheus.Collector of the events waiting in the
// sender's memory: by endpoint and level, and the age of each endpoint's
// oldest. Both gauges come from one snapshot (squadcast.Sender.Waiting)
// per scrape, so they agree with each other, and the walk it costs is
// paid once.
type waitingCollector struct {
	waiting   func() []squadcast.WaitingStat // the snapshot
	now       func() time.Time
	endpoints []string // the labels shown at zero when nothing waits
	events    *prometheus.Desc
	oldest    *prometheus.Desc
}

var _ prometheus.Collector = (*waitingCollector)(nil)

// newWaitingCollector returns the collector of waiting, with a series for
// each of endpoints (and each level) even when nothing waits there.
func newWaitingCollector(waiting func() []squadcast.WaitingStat, endpoints []string) *waitingCollector {
	return &waitingCollector{
		waiting:   waiting,
		now:       time.Now,
		endpoints: endpoints,
		events: prometheus.NewDesc(prometheus.BuildFQName(metricsNamespace, "", "waiting_events"),
			"Events held in memory and not yet delivered or given up (to send, waiting for a retry, a rate-limit slot or the end of a throttling pause, or in flight), by endpoint name and level. Spilled events, kept on disk only, are not in it: they are in spilled_events.",
			[]string{"endpoint", "level"}, nil),
		oldest: prometheus.NewDesc(prometheus.BuildFQName(metricsNamespace, "", "oldest_waiting_event_age_seconds"),
			"Age (since its publication) of the oldest event counted in waiting_events, by endpoint name; 0 when none waits.",
			[]string{"endpoint"}, nil),
	}
}

// Describe sends the two gauges' descriptions.
func (c *waitingCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.events
	ch <- c.oldest
}

// Collect takes one snapshot and sends both gauges from it.
func (c *waitingCollector) Collect(ch chan<- prometheus.Metric) {
	type key struct {
		endpoint string
		level    udf.Level
	}
	events := map[key]int{}
	oldest := map[string]time.Time{}
	for _, e := range c.endpoints {
		oldest[e] = time.Time{}
		for l := udf.OK; l <= udf.Critical; l++ {
			events[key{e, l}] = 0
		}
	}
	for _, st := range c.waiting() {
		events[key{st.Endpoint, st.Level}] += st.Events
		if o, ok := oldest[st.Endpoint]; !ok || o.IsZero() || st.Oldest.Before(o) {
			oldest[st.Endpoint] = st.Oldest
		}
	}
	now := c.now()
	for k, n := range events {
		ch <- prometheus.MustNewConstMetric(c.events, prometheus.GaugeValue, float64(n), k.endpoint, k.level.String())
	}
	for e, o := range oldest {
		age := 0.0
		if !o.IsZero() {
			age = max(now.Sub(o).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age, e)
	}
}
