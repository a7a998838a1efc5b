package main

import "github.com/prometheus/client_golang/prometheus"

// newDeletedTasksMetric registers the counter of the OK events sent for
// tasks deleted from Kapacitor (--resolve-deleted-tasks), with a series
// per endpoint at zero.
func newDeletedTasksMetric(register func(prometheus.Collector), endpoints []string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "deleted_task_resolutions_total",
		Help: "Incidents of tasks deleted from Kapacitor resolved by the daemon (--resolve-deleted-tasks): OK events taken for delivery, by endpoint name.",
	}, []string{"endpoint"})
	register(c)
	for _, e := range endpoints {
		c.WithLabelValues(e)
	}
	return c
}

// deletedTaskResolved counts n incidents of a deleted task resolved through endpoint.
func (m *metrics) deletedTaskResolved(endpoint string, n int) {
	m.deletedTasks.WithLabelValues(endpoint).Add(float64(n))
}
