package udf

import (
	"testing"

	"github.com/influxdata/kapacitor/udf/agent"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tracking is a durable Sink that records, in order, the NodeTracker
// calls, the loads and the saves.
type tracking struct {
	durable
	calls []string
}

func (s *tracking) NodeConnected(task, node string) { s.calls = append(s.calls, "up "+task+"/"+node) }
func (s *tracking) NodeDisconnected(task, node string) {
	s.calls = append(s.calls, "down "+task+"/"+node)
}
func (s *tracking) LoadState(task, node string) (NodeState, bool, error) {
	s.calls = append(s.calls, "load")
	return s.durable.LoadState(task, node)
}

func (s *tracking) Flush(c *StateChange) error {
	if c != nil {
		s.calls = append(s.calls, "save")
	}
	return s.durable.Flush(c)
}

func (s *tracking) Open(Destination) (Publisher, error) { return s, nil }

// TestNodeTracker: a NodeTracker Sink hears of a node's connection before
// its state is loaded, and of its end after its last save, once; not of a
// node whose Init failed.
func TestNodeTracker(t *testing.T) {
	s := &tracking{durable: durable{store: newMemStore()}}
	h := handlerWithStore(t, s)
	feed(t, h, "host=a", 1, 5)
	h.Close()
	h.Close()
	assert.Equal(t, []string{"up cpu/squadcast2", "load", "save", "down cpu/squadcast2"}, s.calls)

	s.calls = nil
	bad := NewHandler(HandlerConfig{Sink: s})
	res, err := bad.Init(&agent.InitRequest{TaskID: "cpu", NodeID: "squadcast2", Options: []*agent.Option{str("crit", `"v" <`)}})
	require.NoError(t, err)
	require.False(t, res.Success)
	bad.Close()
	assert.Empty(t, s.calls, "a failed Init connects nothing")
}
