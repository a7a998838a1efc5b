package udf

import (
	"testing"
	"time"

	"github.com/influxdata/kapacitor/udf/agent"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func opt(name string, vals ...*agent.OptionValue) *agent.Option {
	return &agent.Option{Name: name, Values: vals}
}
func vDouble(f float64) *agent.OptionValue {
	return &agent.OptionValue{Type: agent.ValueType_DOUBLE, Value: &agent.OptionValue_DoubleValue{DoubleValue: f}}
}
func vInt(i int64) *agent.OptionValue {
	return &agent.OptionValue{Type: agent.ValueType_INT, Value: &agent.OptionValue_IntValue{IntValue: i}}
}
func vDur(d time.Duration) *agent.OptionValue {
	return &agent.OptionValue{Type: agent.ValueType_DURATION, Value: &agent.OptionValue_DurationValue{DurationValue: int64(d)}}
}

func TestParseParityOptions(t *testing.T) {
	crit := str("crit", `"v" < 10`)
	tests := []struct {
		name    string
		opts    []*agent.Option
		wantErr string
		check   func(t *testing.T, o *TaskOptions)
	}{
		{name: "resets", opts: []*agent.Option{crit, str("critReset", `"v" > 20`), str("warn", `"v" < 20`), str("warnReset", `"v" > 30`)}, check: func(t *testing.T, o *TaskOptions) {
			assert.NotNil(t, o.Resets[Critical])
			assert.NotNil(t, o.Resets[Warning])
			assert.Nil(t, o.Resets[Info])
		}},
		{name: "reset without level", opts: []*agent.Option{crit, str("infoReset", `"v" > 1`)}, wantErr: "option .infoReset: needs .info()"},
		{name: "bad reset", opts: []*agent.Option{crit, str("critReset", `"v" >`)}, wantErr: `option .critReset('"v" >'): parse error`},
		{name: "flapping and history", opts: []*agent.Option{crit, opt("flapping", vDouble(0.25), vDouble(0.5)), opt("history", vInt(10))}, check: func(t *testing.T, o *TaskOptions) {
			assert.True(t, o.Flapping)
			assert.Equal(t, 0.25, o.FlapLow)
			assert.Equal(t, 0.5, o.FlapHigh)
			assert.Equal(t, 10, o.History)
		}},
		{name: "flapping default history", opts: []*agent.Option{crit, opt("flapping", vDouble(0.25), vDouble(0.5))}, check: func(t *testing.T, o *TaskOptions) {
			assert.Equal(t, DefaultHistory, o.History)
		}},
		{name: "flapping low above high", opts: []*agent.Option{crit, opt("flapping", vDouble(0.6), vDouble(0.5))}, wantErr: "option .flapping(0.6, 0.5): the low threshold must not exceed the high one"},
		{name: "flapping above 1", opts: []*agent.Option{crit, opt("flapping", vDouble(0.2), vDouble(25))}, wantErr: "option .flapping(0.2, 25): thresholds are fractions"},
		{name: "flapping negative", opts: []*agent.Option{crit, opt("flapping", vDouble(-0.1), vDouble(0.5))}, wantErr: "between 0 and 1"},
		{name: "flapping one arg", opts: []*agent.Option{crit, opt("flapping", vDouble(0.2))}, wantErr: "option .flapping: takes 2 argument(s), got 1"},
		{name: "flapping int args", opts: []*agent.Option{crit, opt("flapping", vInt(0), vInt(1))}, wantErr: "option .flapping: argument 1 must be a float, got an integer"},
		{name: "history 1", opts: []*agent.Option{crit, opt("flapping", vDouble(0.2), vDouble(0.5)), opt("history", vInt(1))}, wantErr: "option .history(1): must be between 2 and 10000"},
		{name: "history without flapping", opts: []*agent.Option{crit, opt("history", vInt(5))}, wantErr: "option .history: is the history of .flapping()"},
		{name: "noRecoveries", opts: []*agent.Option{crit, opt("noRecoveries")}, check: func(t *testing.T, o *TaskOptions) { assert.True(t, o.NoRecoveries) }},
		{name: "noRecoveries with arg", opts: []*agent.Option{crit, opt("noRecoveries", vInt(1))}, wantErr: "option .noRecoveries: takes 0 argument(s), got 1"},
		{name: "renotify", opts: []*agent.Option{crit, opt("renotify", vDur(time.Minute))}, check: func(t *testing.T, o *TaskOptions) { assert.Equal(t, time.Minute, o.Renotify) }},
		{name: "renotify zero", opts: []*agent.Option{crit, opt("renotify", vDur(0))}, wantErr: "option .renotify(0s): must be a positive duration"},
		{name: "renotify with allEvents", opts: []*agent.Option{crit, opt("renotify", vDur(time.Minute)), opt("allEvents")}, wantErr: "option .renotify: has no effect with .allEvents()"},
		{name: "allEvents", opts: []*agent.Option{crit, opt("allEvents")}, check: func(t *testing.T, o *TaskOptions) { assert.True(t, o.AllEvents) }},
		{name: "levelField", opts: []*agent.Option{str("levelField", "level")}, check: func(t *testing.T, o *TaskOptions) { assert.Equal(t, "level", o.LevelField) }},
		{name: "levelTag", opts: []*agent.Option{str("levelTag", "severity")}, check: func(t *testing.T, o *TaskOptions) { assert.Equal(t, "severity", o.LevelTag) }},
		{name: "levelField with crit", opts: []*agent.Option{crit, str("levelField", "level")}, wantErr: "option .levelField: takes the level from the point: it cannot be combined with .crit()"},
		{name: "levelTag with levelField", opts: []*agent.Option{str("levelField", "a"), str("levelTag", "b")}, wantErr: "option .levelTag: give .levelField() or .levelTag(), not both"},
		{name: "empty levelField", opts: []*agent.Option{str("levelField", "")}, wantErr: "option .levelField(''): empty field name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := ParseOptions(tt.opts)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			if tt.check != nil {
				tt.check(t, o)
			}
		})
	}
}

// run feeds values of field v for one group, one per second, and returns the
// levels of the events sent.
func run(t *testing.T, opts []*agent.Option, vals ...float64) ([]Event, *Handler) {
	t.Helper()
	rec := &recorder{}
	h := newTestHandler(t, rec, opts...)
	for i, v := range vals {
		_, err := h.Point(point("host=a", int64(i)*int64(time.Second), map[string]float64{"v": v}, map[string]string{"host": "a"}))
		require.NoError(t, err)
	}
	return rec.Events(), h
}

func levelsOf(evs []Event) []Level {
	out := []Level{}
	for _, e := range evs {
		out = append(out, e.Level)
	}
	return out
}

func TestResets(t *testing.T) {
	// CRITICAL below 10 holds until v > 50, even when v is between 10 and 50.
	evs, _ := run(t, []*agent.Option{str("crit", `"v" < 10`), str("critReset", `"v" > 50`), str("warn", `"v" < 20`)},
		5, 30, 15, 60, 15, 25)
	assert.Equal(t, []Level{Critical, OK, Warning, OK}, levelsOf(evs))
	assert.EqualValues(t, 3*time.Second, evs[1].Duration)
	// Without the reset the level falls back at once.
	evs, _ = run(t, []*agent.Option{str("crit", `"v" < 10`), str("warn", `"v" < 20`)}, 5, 30, 15, 60)
	assert.Equal(t, []Level{Critical, OK, Warning, OK}, levelsOf(evs))
	assert.EqualValues(t, time.Second, evs[1].Duration)
}

func TestAllEvents(t *testing.T) {
	evs, _ := run(t, []*agent.Option{str("crit", `"v" < 10`), opt("allEvents")}, 50, 5, 5, 5, 50, 50, 5)
	assert.Equal(t, []Level{Critical, Critical, Critical, OK, Critical}, levelsOf(evs))
	var durs []time.Duration
	for _, e := range evs {
		durs = append(durs, e.Duration)
	}
	assert.Equal(t, []time.Duration{0, time.Second, 2 * time.Second, 3 * time.Second, 0}, durs)
	assert.Equal(t, []Level{OK, Critical, Critical, Critical, OK}, []Level{evs[0].PreviousLevel, evs[1].PreviousLevel, evs[2].PreviousLevel, evs[3].PreviousLevel, evs[4].PreviousLevel})
}

func TestRenotify(t *testing.T) {
	// One point a second; renotify every 3s: the unchanged CRITICAL is sent
	// again at t=4 and t=7 (3s after the last event).
	evs, _ := run(t, []*agent.Option{str("crit", `"v" < 10`), opt("renotify", vDur(3*time.Second))}, 50, 5, 5, 5, 5, 5, 5, 5, 50)
	var at []int64
	for _, e := range evs {
		at = append(at, e.Time.Unix())
	}
	assert.Equal(t, []int64{1, 4, 7, 8}, at)
	assert.Equal(t, []Level{Critical, Critical, Critical, OK}, levelsOf(evs))
}

func TestNoRecoveries(t *testing.T) {
	evs, h := run(t, []*agent.Option{str("crit", `"v" < 10`), str("warn", `"v" < 20`), opt("noRecoveries")}, 5, 50, 15, 50, 5)
	assert.Equal(t, []Level{Critical, Warning, Critical}, levelsOf(evs))
	for _, e := range evs {
		assert.False(t, e.Recoverable)
	}
	// The suppressed recovery still ended the alert: the next one starts anew.
	assert.EqualValues(t, 0, evs[1].Duration)
	require.Contains(t, h.groups, "host=a")
	assert.Equal(t, Critical, h.groups["host=a"].level)
}

func TestFlapping(t *testing.T) {
	// percentChange as Kapacitor computes it, over a history of 5: four
	// comparisons weighted 0.8, 0.9, 1.0, 1.1, starting at the newest slot
	// (compared with the one before it) and going round the ring, so the
	// second comparison is oldest vs newest.
	f := newFlapState(5)
	for _, l := range []Level{Critical, OK, Critical, OK} {
		f.add(l)
	}
	// Slots [OK CRIT OK CRIT OK], newest at 4: 4v3 change (0.8), 0v4 none
	// (0.9), 1v0 change (1.0), 2v1 change (1.1).
	assert.InDelta(t, (0.8+1.0+1.1)/4, f.percentChange(), 1e-9)

	// Alternating levels start flapping and are then suppressed; steady
	// levels end the flapping.
	opts := []*agent.Option{str("crit", `"v" < 10`), opt("flapping", vDouble(0.25), vDouble(0.5)), opt("history", vInt(5))}
	evs, h := run(t, opts, 5, 50, 5, 50, 5, 50, 5, 5, 5, 5, 5, 50)
	// t=0 CRIT: percent (0.8+0.9)/4 = 0.425, sent. t=1 OK: 0.2, sent.
	// t=2 CRIT: (0.8+0.9+1.1)/4 = 0.7 > 0.5: flapping, suppressed, and so
	// on while alternating; the steady CRITICAL from t=6 brings the percent
	// under 0.25 (no event: the level did not change), and t=11's OK is sent.
	var at []int64
	for _, e := range evs {
		at = append(at, e.Time.Unix())
	}
	assert.Equal(t, []int64{0, 1, 11}, at)
	assert.Equal(t, []Level{Critical, OK, OK}, levelsOf(evs))
	assert.Equal(t, OK, evs[2].PreviousLevel, "previousLevel is the level of the last event sent (t=1's OK), not of suppressed ones")
	assert.Contains(t, h.groups, "host=a", "a flapping group keeps its history even when OK")
}

func TestLevelFromPoint(t *testing.T) {
	rec := &recorder{}
	h := newTestHandler(t, rec, str("levelTag", "severity"))
	for i, sev := range []string{"ok", "Warning", "WARNING", "bogus", "critical", "OK"} {
		_, err := h.Point(&agent.Point{Name: "m", Group: "g", Time: int64(i), Tags: map[string]string{"severity": sev}})
		require.NoError(t, err)
	}
	_, err := h.Point(&agent.Point{Name: "m", Group: "g", Time: 9, Tags: map[string]string{}})
	require.NoError(t, err, "a point without a level is skipped, not an error")
	assert.Equal(t, []Level{Warning, Critical, OK}, levelsOf(rec.Events()))

	rec = &recorder{}
	h = newTestHandler(t, rec, str("levelField", "level"))
	for i, lv := range []string{"INFO", "INFO", "OK"} {
		_, err := h.Point(&agent.Point{Name: "m", Group: "g", Time: int64(i), FieldsString: map[string]string{"level": lv}})
		require.NoError(t, err)
	}
	assert.Equal(t, []Level{Info, OK}, levelsOf(rec.Events()))
}
