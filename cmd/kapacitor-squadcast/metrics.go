package main

import (
	"fmt"
	"net/http"
	"net/http/pprof"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast"
	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// metricsNamespace prefixes every metric name.
const metricsNamespace = "kapacitor_squadcast"

// metrics are the daemon's Prometheus metrics. It is the udf.Observer of
// the socket server and the squadcast.Observer of the sender. Endpoint
// labels are endpoint names (squadcast.InlineLabel for tasks' own URLs),
// never URLs.
type metrics struct {
	reg *prometheus.Registry

	points       prometheus.Counter
	events       [udf.Critical + 1]prometheus.Counter
	initFailures prometheus.Counter
	deliveries   *prometheus.CounterVec
	accepted     *prometheus.CounterVec
	relayed      *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	byLevel      *prometheus.HistogramVec // latency by endpoint and level
	requests     *prometheus.HistogramVec
	coalesced    *prometheus.CounterVec
	deletedTasks *prometheus.CounterVec // see metrics_deleted.go
	stale        *prometheus.CounterVec
	endpoints    []string // the endpoint labels, inline included
}

var (
	_ udf.Observer       = (*metrics)(nil)
	_ squadcast.Observer = (*metrics)(nil)
)

// newMetrics registers the metrics, with the delivery series of the given
// endpoints (and of inline URLs) present from the start at zero.
func newMetrics(endpoints []string) *metrics {
	reg := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m := &metrics{reg: reg, endpoints: append(slices.Clone(endpoints), squadcast.InlineLabel)}
	// The Go runtime's and the process's own metrics (go_*, process_*:
	// heap, GC, goroutines, resident memory, CPU, open files), as every
	// Go exporter has them.
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.points = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "points_received_total",
		Help: "Points received from Kapacitor tasks, over all @squadcast() nodes.",
	})
	f(m.points)
	events := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "alert_events_total",
		Help: "Alert events produced (level changes, renotifications), by level.",
	}, []string{"level"})
	f(events)
	for l := udf.OK; l <= udf.Critical; l++ {
		m.events[l] = events.WithLabelValues(l.String())
	}
	m.initFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "init_failures_total",
		Help: "Tasks refused at Init (a bad option or an unknown endpoint).",
	})
	f(m.initFailures)
	m.deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "deliveries_total",
		Help: "Delivery attempts by endpoint name and result: delivered, retried (failed, will be tried again) or dead_lettered.",
	}, []string{"endpoint", "result"})
	f(m.deliveries)
	m.accepted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "events_accepted_total",
		Help: "Events taken for delivery (written to the outbox), by endpoint name and source: udf (an @squadcast() node) or relay (Kapacitor's .post()).",
	}, []string{"endpoint", "source"})
	f(m.accepted)
	m.relayed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "relay_requests_total",
		Help: "Requests to the relay (--relay-listen), by result: accepted, not_durable (accepted, but its write to the outbox failed: delivered from memory), or why it was refused.",
	}, []string{"result"})
	f(m.relayed)
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: metricsNamespace, Name: "delivery_latency_seconds",
		Help:    "Time from an event's publication to Squadcast accepting it (retries included), by endpoint name.",
		Buckets: latencyBuckets,
	}, []string{"endpoint"})
	f(m.latency)
	m.byLevel = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: metricsNamespace, Name: "delivery_latency_by_level_seconds",
		Help:    "Time from an event's publication to Squadcast accepting it (retries and waits for a rate limit included), by endpoint name and the event's level.",
		Buckets: latencyBuckets,
	}, []string{"endpoint", "level"})
	f(m.byLevel)
	m.requests = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: metricsNamespace, Name: "request_duration_seconds",
		Help:    "Duration of each HTTP attempt to Squadcast, whatever its result, by endpoint name.",
		Buckets: prometheus.DefBuckets,
	}, []string{"endpoint"})
	f(m.requests)
	m.coalesced = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "events_coalesced_total",
		Help: "Events removed unsent by coalescing (coalesce = true), never delivered: triggers replaced by a later trigger, and triggers never sent dropped with their resolve, by endpoint name.",
	}, []string{"endpoint"})
	f(m.coalesced)
	m.stale = endpointCounter(f, m.endpoints, "stale_resolutions_total",
		"OK events of groups that received no data for their task's .resolveStale() duration, taken for delivery, by endpoint name.")
	for _, e := range m.endpoints {
		// One outcome of each result label: delivered, retried, dead_lettered.
		for _, o := range []squadcast.Outcome{squadcast.OutcomeDelivered, squadcast.OutcomeRetry, squadcast.OutcomePermanent} {
			m.deliveries.WithLabelValues(e, o.String())
		}
		m.coalesced.WithLabelValues(e)
	}
	m.deletedTasks = newDeletedTasksMetric(f, m.endpoints)
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: metricsNamespace, Name: "build_info",
		Help:        "Always 1; the labels say which build runs.",
		ConstLabels: prometheus.Labels{"version": version, "commit": commit(), "goversion": goVersion()},
	}, func() float64 { return 1 }))
	return m
}

// endpointCounter registers a counter by endpoint name, each of endpoints
// present from the start at zero.
func endpointCounter(register func(prometheus.Collector), endpoints []string, name, help string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: metricsNamespace, Name: name, Help: help}, []string{"endpoint"})
	register(c)
	for _, e := range endpoints {
		c.WithLabelValues(e)
	}
	return c
}

// latencyBuckets are the buckets of the delivery latency histograms, in
// seconds: from 10 ms to a day.
var latencyBuckets = []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400}

// watch registers the gauges read from the server and the sender.
func (m *metrics) watch(connections func() int, sender *squadcast.Sender) {
	m.reg.MustRegister(
		newWaitingCollector(sender.Waiting, m.endpoints),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "connections",
			Help: "Open connections from Kapacitor (one per running @squadcast() node).",
		}, func() float64 { return float64(connections()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "outbox_pending_events",
			Help: "Events in the outbox file still to deliver (dead letters not counted).",
		}, func() float64 { return float64(sender.Stats().Pending) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "queued_events",
			Help: "Events held in memory: waiting to be written, to be sent, for a retry, or in flight.",
		}, func() float64 { return float64(sender.Stats().Queued) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "spilled_events",
			Help: "Events kept in the outbox only, while the memory queue is full: loaded, oldest first, as it drains.",
		}, func() float64 { return float64(sender.Stats().Spilled) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "events_dropped_total",
			Help: "Events that could not be queued (payload error, shutting down, memory queue full while the outbox cannot be written): lost.",
		}, func() float64 { return float64(sender.Stats().Dropped) }),
	)
}

// PointReceived counts a point.
func (m *metrics) PointReceived() { m.points.Inc() }

// AlertEvent counts an event by level.
func (m *metrics) AlertEvent(l udf.Level) {
	if l >= udf.OK && l <= udf.Critical {
		m.events[l].Inc()
	}
}

// Accepted counts an event taken for delivery, by endpoint and source.
func (m *metrics) Accepted(endpoint string, source squadcast.Source) {
	m.accepted.WithLabelValues(endpoint, string(source)).Inc()
}

// InitFailed counts a refused task.
func (m *metrics) InitFailed() { m.initFailures.Inc() }

// Attempted counts a delivery attempt and observes its durations: a
// delivered event's age by endpoint, and by endpoint and level.
func (m *metrics) Attempted(endpoint string, level udf.Level, o squadcast.Outcome, took, age time.Duration) {
	m.deliveries.WithLabelValues(endpoint, o.String()).Inc()
	m.requests.WithLabelValues(endpoint).Observe(took.Seconds())
	if o == squadcast.OutcomeDelivered {
		m.latency.WithLabelValues(endpoint).Observe(age.Seconds())
		m.byLevel.WithLabelValues(endpoint, level.String()).Observe(age.Seconds())
	}
}

// Coalesced counts an event removed by coalescing, by endpoint.
func (m *metrics) Coalesced(endpoint string, _ udf.Level) {
	m.coalesced.WithLabelValues(endpoint).Inc()
}

// StaleResolved counts a stale resolution (.resolveStale()), by endpoint.
func (m *metrics) StaleResolved(endpoint string) {
	m.stale.WithLabelValues(endpoint).Inc()
}

// handler serves /metrics, /healthz (the process is up) and /readyz (ready
// reports nil: the socket is listening and the outbox writable).
func (m *metrics) handler(ready func() error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready: %v\n", err)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	// Go's profiles, as Prometheus and Alertmanager serve them: CPU, heap
	// and goroutines of a running daemon, for `go tool pprof URL`. Not
	// /debug/pprof/cmdline: the command line may hold a webhook URL.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
}
