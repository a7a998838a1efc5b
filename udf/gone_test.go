package udf

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/influxdata/kapacitor/udf/agent"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOptionsSavedWithState: a node's options go with the first state
// change of its connection and not with later ones; a node restarted with
// the same options does not save them again, one restarted with others
// saves them at Init, before any change.
func TestOptionsSavedWithState(t *testing.T) {
	store := newMemStore()
	rec := &durable{store: store}
	h := handlerWithStore(t, rec)
	feed(t, h, "host=a", 10, 5)
	h.Flush()
	ns, _, err := store.LoadState("cpu", "squadcast2")
	require.NoError(t, err)
	require.NotNil(t, ns.Options, "saved with the first change")
	saved := ns.Options
	store.nodes["cpu\x00squadcast2"].Options = []byte("marker")
	feed(t, h, "host=b", 11, 5)
	h.Flush()
	ns, _, _ = store.LoadState("cpu", "squadcast2")
	assert.Equal(t, []byte("marker"), ns.Options, "a later change does not carry them")
	store.nodes["cpu\x00squadcast2"].Options = saved

	rec2 := &durable{store: store}
	handlerWithStore(t, rec2)
	assert.Equal(t, 1, rec2.flushes, "same options: only Init's empty flush")

	rec3 := &durable{store: store}
	h3 := NewHandler(HandlerConfig{Sink: rec3})
	res, err := h3.Init(&agent.InitRequest{TaskID: "cpu", NodeID: "squadcast2", Options: []*agent.Option{str("crit", `"v" < 5`), str("endpoint", "eu")}})
	require.NoError(t, err)
	require.True(t, res.Success, res.Error)
	assert.Equal(t, 1, rec3.saves, "other options are saved at Init")
	ns, _, _ = store.LoadState("cpu", "squadcast2")
	opts, err := decodeOptions(ns.Options)
	require.NoError(t, err)
	assert.Equal(t, "eu", opts.Destination.Endpoint)
	assert.Len(t, ns.Groups, 2, "the groups are kept")
}

// TestResolveGone: the events that resolve a gone node's groups carry the
// saved id, level OK, the saved level as previousLevel, the duration
// since the group left OK, the reason in the message, and go where the
// node's events went; a group without an id has no incident; with
// .noRecoveries() there are no events; a batch node's options parse as
// a batch node's; without options, or with bad ones, nothing resolves.
func TestResolveGone(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	opts := []*agent.Option{str("crit", `"v" < 10`), str("endpoint", "eu"), str("tag", "team"), str("message", "{{ .Fields.v }}")}
	opts[2].Values = append(opts[2].Values, str("x", "ops").Values...)
	ns := NodeState{AsOf: t0.UnixNano(), Options: encodeOptions(false, opts), Groups: []SavedGroup{
		{Group: "host=a", Level: Critical, FirstTriggered: t0.Add(-time.Minute).UnixNano(), LastTriggered: t0.UnixNano(), ID: "cpu:host=a"},
		{Group: "", Level: Warning, FirstTriggered: t0.Add(time.Hour).UnixNano(), ID: "cpu:nil"},
		{Group: "host=held", Level: Critical, FirstTriggered: t0.UnixNano()},
	}}
	at := t0.Add(time.Second).In(time.FixedZone("x", 3600))
	r, err := ResolveGone("cpu_alert", "squadcast2", ns, at, "task cpu_alert deleted")
	require.NoError(t, err)
	assert.Equal(t, Destination{Endpoint: "eu", Tags: [][2]string{{"team", "ops"}}}, r.Destination)
	require.Len(t, r.Events, 2)
	ev := r.Events[0]
	assert.Equal(t, Event{TaskID: "cpu_alert", NodeID: "squadcast2", ID: "cpu:host=a", Message: "cpu:host=a is OK (task cpu_alert deleted)",
		Details: ev.Details, Time: at.UTC(), Duration: time.Minute + time.Second, Level: OK, PreviousLevel: Critical, Recoverable: true,
		Group: "host=a"}, ev)
	var details map[string]any
	require.NoError(t, json.Unmarshal([]byte(ev.Details), &details), ev.Details)
	assert.Equal(t, "cpu_alert", details["TaskName"])
	assert.Equal(t, ev.Message, details["Message"])
	assert.Equal(t, "OK", details["Level"])
	assert.Equal(t, "nil", r.Events[1].Group)
	assert.Equal(t, Warning, r.Events[1].PreviousLevel)
	assert.Zero(t, r.Events[1].Duration, "a first trigger after the resolution's time: no negative duration")

	ns.Options = encodeOptions(false, append(opts, opt("noRecoveries")))
	r, err = ResolveGone("cpu_alert", "squadcast2", ns, at, "gone")
	require.NoError(t, err)
	assert.Equal(t, "eu", r.Destination.Endpoint)
	assert.Empty(t, r.Events, ".noRecoveries(): no event")

	ns.Options = encodeOptions(true, []*agent.Option{str("crit", `"v" < 10`), opt("all")})
	r, err = ResolveGone("b", "squadcast_batch2", ns, at, "gone")
	require.NoError(t, err, ".all() is a batch node's option")
	assert.Len(t, r.Events, 2)
	assert.Equal(t, DefaultEndpoint, r.Destination.Endpoint)

	for _, bad := range []struct {
		opts []byte
		want string
	}{
		{nil, ErrNoOptions.Error()},
		{[]byte{9, 0}, "saved options of version 9"},
		{[]byte{savedVersion, 0, 0xff}, "decode saved options"},
		{encodeOptions(false, []*agent.Option{opt("all")}), "parse saved options"},
	} {
		ns.Options = bad.opts
		_, err := ResolveGone("b", "n", ns, at, "gone")
		assert.ErrorContains(t, err, bad.want)
	}
}

// FuzzResolveGone: saved options read back from a file never panic: they
// parse (and then resolve) or fail with an error.
func FuzzResolveGone(f *testing.F) {
	f.Add(encodeOptions(false, []*agent.Option{str("crit", `"v" < 10`), str("message", "{{ .ID }}")}))
	f.Add(encodeOptions(true, []*agent.Option{str("crit", `"v" < 10`), opt("all")}))
	f.Add([]byte{savedVersion, savedBatch})
	f.Fuzz(func(t *testing.T, saved []byte) {
		ns := NodeState{Options: saved, Groups: []SavedGroup{{Group: "host=a", Level: Critical, ID: "cpu:host=a"}}}
		r, err := ResolveGone("t", "n", ns, time.Unix(0, 0), "gone")
		if err == nil && len(r.Events) > 1 {
			t.Fatalf("%d events for one group", len(r.Events))
		}
	})
}
