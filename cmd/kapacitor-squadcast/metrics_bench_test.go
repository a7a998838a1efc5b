package main

import (
	"testing"
	"time"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast"
	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// BenchmarkMetricsPoint is what --listen adds to each point received.
func BenchmarkMetricsPoint(b *testing.B) {
	m := newMetrics([]string{"default"})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.PointReceived()
		}
	})
}

// BenchmarkMetricsEventDelivered is what --listen adds to each event: its
// level counted, and one delivery attempt observed.
func BenchmarkMetricsEventDelivered(b *testing.B) {
	m := newMetrics([]string{"default"})
	b.ReportAllocs()
	for b.Loop() {
		m.AlertEvent(udf.Critical)
		m.Attempted("default", udf.Critical, squadcast.OutcomeDelivered, 20*time.Millisecond, 30*time.Millisecond)
	}
}
