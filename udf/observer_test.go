package udf

import (
	"sync"
	"testing"

	"github.com/influxdata/kapacitor/udf/agent"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// countingObserver counts what an Observer hears.
type countingObserver struct {
	mu           sync.Mutex
	points       int
	events       map[Level]int
	initFailures int
}

func (o *countingObserver) PointReceived() { o.mu.Lock(); o.points++; o.mu.Unlock() }
func (o *countingObserver) AlertEvent(l Level) {
	o.mu.Lock()
	o.events[l]++
	o.mu.Unlock()
}
func (o *countingObserver) InitFailed() { o.mu.Lock(); o.initFailures++; o.mu.Unlock() }

// TestObserver: the Observer hears every point, every event with its
// level, and every refused Init.
func TestObserver(t *testing.T) {
	obs := &countingObserver{events: map[Level]int{}}
	rec := &recorder{}
	h := NewHandler(HandlerConfig{Sink: rec, Observer: obs})
	res, err := h.Init(&agent.InitRequest{TaskID: "t", NodeID: "n", Options: []*agent.Option{str("crit", `"v" < 10`), str("warn", `"v" < 20`)}})
	require.NoError(t, err)
	require.True(t, res.Success, res.Error)
	for i, v := range []float64{50, 15, 15, 5, 50, 50} { // -, WARNING, -, CRITICAL, OK, -
		_, err := h.Point(point("", int64(i), map[string]float64{"v": v}, nil))
		require.NoError(t, err)
	}
	assert.Equal(t, 6, obs.points)
	assert.Equal(t, map[Level]int{Warning: 1, Critical: 1, OK: 1}, obs.events)
	assert.Len(t, rec.Events(), 3)
	assert.Equal(t, 0, obs.initFailures)

	bad := NewHandler(HandlerConfig{Sink: rec, Observer: obs})
	res, err = bad.Init(&agent.InitRequest{Options: []*agent.Option{str("crit", "(")}})
	require.NoError(t, err)
	require.False(t, res.Success)
	unknown := NewHandler(HandlerConfig{Sink: &recorder{openErr: &OptionError{Option: "endpoint", Value: "'nope'", Reason: "unknown endpoint"}}, Observer: obs})
	res, err = unknown.Init(&agent.InitRequest{Options: []*agent.Option{str("crit", `"v" < 10`), str("endpoint", "nope")}})
	require.NoError(t, err)
	require.False(t, res.Success)
	assert.Equal(t, 2, obs.initFailures)
}
