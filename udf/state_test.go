package udf

import (
	"testing"
	"time"

	"github.com/influxdata/kapacitor/udf/agent"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDetermineLevel(t *testing.T) {
	o, err := ParseOptions([]*agent.Option{str("crit", `"v" < 10`), str("warn", `"v" < 20`), str("info", `"v" < 30 OR "bad" > 1`)})
	require.NoError(t, err)
	var errs []Level
	onErr := func(l Level, err error) { errs = append(errs, l) }
	for _, tt := range []struct {
		v    float64
		want Level
	}{{5, Critical}, {15, Warning}, {25, Info}, {35, OK}, {10, Warning}} {
		got := determineLevel(&o.Levels, &o.Resets, OK, point("", 0, map[string]float64{"v": tt.v}, nil), onErr)
		assert.Equal(t, tt.want, got, "v=%v", tt.v)
	}
	// "bad" is missing: info's expression fails only where it is reached and
	// its left side is false, and counts as false.
	assert.Equal(t, []Level{Info}, errs)
}

func TestGroupStateStateChangesOnly(t *testing.T) {
	// Levels per point, and whether the alert node (stateChangesOnly) sends an event.
	seq := []struct {
		l    Level
		send bool
		dur  time.Duration
	}{
		{OK, false, 0},
		{Warning, true, 0},   // t=1 starts the alert
		{Warning, false, 0},  // unchanged
		{Critical, true, 2},  // t=3: still the alert of t=1
		{Critical, false, 0}, //
		{OK, true, 4},        // t=5: recovery, duration since t=1
		{OK, false, 0},       //
		{Info, true, 0},      // t=7: a new alert
		{OK, true, 1},        // t=8
	}
	var s groupState
	r := rules{stateChangesOnly: true}
	for i, step := range seq {
		got := r.update(&s, nil, step.l, int64(i))
		require.Equal(t, step.send, got, "step %d", i)
		if got {
			assert.Equal(t, step.dur, s.duration(), "duration at step %d", i)
		}
	}
}
