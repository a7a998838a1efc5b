package squadcast

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/kapacitor/udf/agent"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// TestResolveTask: the incidents of a gone task's node are resolved
// through its endpoint, the OK events written in the transaction that
// drops its state; a node saved without its options is left as it is,
// and a node without incidents is dropped without events.
func TestResolveTask(t *testing.T) {
	h := newHoldServer(t)
	h.hold.Store(false)
	s, _, _ := newTestSender(t, holdConfig(h, t.TempDir(), 1))
	hd := udf.NewHandler(udf.HandlerConfig{Sink: s})
	res, err := hd.Init(&agent.InitRequest{TaskID: "cpu", NodeID: "squadcast2", Options: []*agent.Option{
		{Name: "crit", Values: []*agent.OptionValue{{Type: agent.ValueType_STRING, Value: &agent.OptionValue_StringValue{StringValue: `"v" > 90`}}}},
	}})
	require.NoError(t, err)
	require.True(t, res.Success, res.Error)
	for i, g := range []string{"host=a", "host=b"} {
		_, err := hd.Point(&agent.Point{Name: "cpu", Group: g, Time: int64(i + 1), FieldsDouble: map[string]float64{"v": 95}})
		require.NoError(t, err)
	}
	hd.Flush()
	hd.Close()
	p, err := s.Open(udf.Destination{})
	require.NoError(t, err)
	require.NoError(t, p.Flush(&udf.StateChange{TaskID: "old", NodeID: "squadcast1", AsOf: 1,
		Put: []udf.SavedGroup{{Group: "host=c", Level: udf.Critical, ID: "cpu:host=c"}}}))
	require.NoError(t, p.Flush(&udf.StateChange{TaskID: "quiet", NodeID: "squadcast1", AsOf: 1}))
	tasks, err := s.SavedTasks()
	require.NoError(t, err)
	assert.Equal(t, []string{"cpu", "old", "quiet"}, tasks)
	require.Eventually(t, func() bool { return len(h.got()) == 2 }, 10*time.Second, time.Millisecond, "the two triggers")
	// Their deletions written: no outcome can go in a transaction of its own below.
	require.Eventually(t, func() bool { return len(listOutbox(t, s.outbox)) == 0 }, 10*time.Second, 5*time.Millisecond)

	const lister = "c33e93cc-a007-4cf7-af6f-84e7c50a9b6a"
	require.NoError(t, s.SetTaskListers(map[string]string{"cpu": lister, "old": lister, "quiet": lister}, nil))
	before := s.cm.Commits()
	nodes, err := s.ResolveTask("cpu", "task cpu deleted")
	require.NoError(t, err)
	assert.Equal(t, []NodeResolution{{Node: "squadcast2", Endpoint: "default", Resolved: 2}}, nodes)
	assert.Equal(t, before+1, s.cm.Commits(), "the events and the drop: one transaction")
	_, found, err := s.LoadState("cpu", "squadcast2")
	require.NoError(t, err)
	assert.False(t, found, "the node's state is dropped")
	require.Eventually(t, func() bool { return len(h.got()) == 4 }, 10*time.Second, time.Millisecond)
	for _, id := range h.got()[2:] {
		assert.Regexp(t, `^cpu:host=[ab]/`, id)
		assert.Contains(t, id, "is OK (task cpu deleted)")
	}

	nodes, err = s.ResolveTask("old", "task old deleted")
	require.NoError(t, err)
	require.Len(t, nodes, 1)
	assert.True(t, errors.Is(nodes[0].Err, udf.ErrNoOptions), "%v", nodes[0].Err)
	assert.Zero(t, nodes[0].Resolved)
	nodes, err = s.ResolveTask("quiet", "task quiet deleted")
	require.NoError(t, err)
	assert.Equal(t, []NodeResolution{{Node: "squadcast1"}}, nodes)
	tasks, err = s.SavedTasks()
	require.NoError(t, err)
	assert.Equal(t, []string{"old"}, tasks, "the node without options is kept, the others dropped")
	listers, err := s.TaskListers()
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"old": lister}, listers, "a task's record goes with its state")
	nodes, err = s.ResolveTask("nope", "gone")
	require.NoError(t, err)
	assert.Empty(t, nodes)
	require.Eventually(t, func() bool { return len(listOutbox(t, s.outbox)) == 0 }, 10*time.Second, 5*time.Millisecond)
	assert.Len(t, h.got(), 4, "nothing more was sent")
	assert.False(t, strings.Contains(strings.Join(h.got(), ""), "host=c"))
}
