package main

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast"
	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// TestWaitingMetrics: while a stand-in holds every request, a scrape shows
// the events waiting by endpoint and level (the one in flight included),
// zeros for the levels and endpoints where none waits, the age of each
// endpoint's oldest, and no URL or key. Once the stand-in answers, all
// are delivered, counted by level in the latency histogram, and nothing
// waits.
func TestWaitingMetrics(t *testing.T) {
	const key = "waiting-metrics-key"
	standIn, release := holdingStandIn(t)
	url := standIn + "/v2/incidents/api/" + key

	m := newMetrics([]string{"default", "team"})
	s, err := squadcast.New(squadcast.Config{
		Endpoints: []squadcast.Endpoint{{Name: "default", URL: url, Format: squadcast.FormatIncidentWebhook},
			{Name: "team", URL: url + "team", Format: squadcast.FormatIncidentWebhook}},
		DataDir: t.TempDir(), Workers: 1, Observer: m,
	})
	require.NoError(t, err)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		assert.NoError(t, s.Close(ctx))
	}()
	m.watch(func() int { return 0 }, s)
	base := httptest.NewServer(m.handler(func() error { return nil }))
	defer base.Close()

	publish := func(d udf.Destination, id string, l udf.Level) {
		t.Helper()
		p, err := s.Open(d)
		require.NoError(t, err)
		require.NoError(t, p.Publish(udf.Event{ID: id, Message: "m", Level: l, Time: time.Now()}))
		require.NoError(t, p.Flush(nil), "once flushed, the event is scheduled")
	}
	publish(udf.Destination{}, "a", udf.Critical)
	publish(udf.Destination{}, "b", udf.Warning)
	publish(udf.Destination{}, "c", udf.Warning)
	publish(udf.Destination{URL: url + "inline"}, "d", udf.OK)
	time.Sleep(20 * time.Millisecond) // the oldest ages

	_, page := scrape(t, base.URL, "/metrics")
	for series, want := range map[string]float64{
		`kapacitor_squadcast_waiting_events{endpoint="default",level="CRITICAL"}`: 1,
		`kapacitor_squadcast_waiting_events{endpoint="default",level="WARNING"}`:  2,
		`kapacitor_squadcast_waiting_events{endpoint="default",level="OK"}`:       0,
		`kapacitor_squadcast_waiting_events{endpoint="default",level="INFO"}`:     0,
		`kapacitor_squadcast_waiting_events{endpoint="inline",level="OK"}`:        1,
		`kapacitor_squadcast_waiting_events{endpoint="team",level="CRITICAL"}`:    0,
		`kapacitor_squadcast_oldest_waiting_event_age_seconds{endpoint="team"}`:   0,
	} {
		assert.Equal(t, want, metricValue(page, series), series)
	}
	for _, e := range []string{"default", "inline"} {
		age := metricValue(page, `kapacitor_squadcast_oldest_waiting_event_age_seconds{endpoint="`+e+`"}`)
		assert.True(t, age >= 0.02 && age < 60, "the oldest of %s is as old as it is: %v", e, age)
	}
	assert.Greater(t, metricValue(page, `kapacitor_squadcast_oldest_waiting_event_age_seconds{endpoint="default"}`),
		metricValue(page, `kapacitor_squadcast_oldest_waiting_event_age_seconds{endpoint="inline"}`), "default's oldest was published first")
	assert.NotContains(t, page, key)
	assert.NotContains(t, page, "/v2/incidents")
	assert.NotContains(t, page, strings.TrimPrefix(standIn, "http://"))

	release()
	checkAllDelivered(t, base.URL)
}

// checkAllDelivered waits until the events of TestWaitingMetrics are
// delivered: nothing waits any more, and the latency is counted by level.
func checkAllDelivered(t *testing.T, base string) {
	t.Helper()
	var page string
	require.Eventually(t, func() bool {
		_, page = scrape(t, base, "/metrics")
		return metricValue(page, `kapacitor_squadcast_waiting_events{endpoint="default",level="WARNING"}`) == 0 &&
			metricValue(page, `kapacitor_squadcast_waiting_events{endpoint="inline",level="OK"}`) == 0
	}, 30*time.Second, 10*time.Millisecond, "all are delivered")
	for series, want := range map[string]float64{
		`kapacitor_squadcast_waiting_events{endpoint="default",level="CRITICAL"}`:                          0,
		`kapacitor_squadcast_oldest_waiting_event_age_seconds{endpoint="default"}`:                         0,
		`kapacitor_squadcast_delivery_latency_by_level_seconds_count{endpoint="default",level="CRITICAL"}`: 1,
		`kapacitor_squadcast_delivery_latency_by_level_seconds_count{endpoint="default",level="WARNING"}`:  2,
		`kapacitor_squadcast_delivery_latency_by_level_seconds_count{endpoint="inline",level="OK"}`:        1,
		`kapacitor_squadcast_delivery_latency_seconds_count{endpoint="default"}`:                           3,
	} {
		assert.Equal(t, want, metricValue(page, series), series)
	}
}
