package udf

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/influxdata/kapacitor/udf/agent"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// burstSink records, for each Flush, the events published since the last
// one and the groups its state change carries.
type burstSink struct {
	release chan struct{} // the first flush with events waits for it
	fail    error         // every Flush fails with it, when set

	mu      sync.Mutex
	events  []Event
	since   int
	bursts  []int // events per flush
	changed []int // groups per flush's state change
}

func (s *burstSink) Open(Destination) (Publisher, error) { return s, nil }

func (s *burstSink) LoadState(string, string) (NodeState, bool, error) {
	return NodeState{}, false, nil
}

func (s *burstSink) Publish(e Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, e)
	s.since++
	return nil
}

func (s *burstSink) Flush(c *StateChange) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c == nil && s.since == 0 {
		return nil // Init's
	}
	if len(s.bursts) == 0 {
		s.mu.Unlock()
		<-s.release // a slow disk: the input waits, read ahead
		s.mu.Lock()
	}
	n := 0
	if c != nil {
		n = len(c.Put) + len(c.Delete)
	}
	s.bursts, s.changed = append(s.bursts, s.since), append(s.changed, n)
	s.since = 0
	return s.fail
}

// TestLargeBurstFailingFlushes: while flushes fail (a failing disk), the
// changes they keep do not make every later point wait for a flush of
// its own: one every maxBurstChanges changes, as before.
func TestLargeBurstFailingFlushes(t *testing.T) {
	sink := &burstSink{release: make(chan struct{}), fail: errors.New("disk failing")}
	close(sink.release)
	path, _ := startServer(t, sink)
	k := dial(t, path)
	require.True(t, k.init(str("crit", `"v" > 10`)).GetSuccess())
	n := 3*maxBurstChanges + 10
	go func() {
		for i := range n {
			_ = agent.WriteMessage(pointRequest(fmt.Sprintf("g=%06d", i), int64(1+i), 50), k.conn)
		}
		_ = agent.WriteMessage(&agent.Request{Message: &agent.Request_Keepalive{Keepalive: &agent.KeepaliveRequest{Time: 7}}}, k.conn)
	}()
	points, _ := k.pointsUntilKeepalive()
	assert.Equal(t, n, points)
	sink.mu.Lock()
	defer sink.mu.Unlock()
	assert.Len(t, sink.events, n)
	// A flush per maxBurstChanges changes, and one whenever the input ran
	// dry (which a slow writer may make often); far fewer than a flush per
	// point after the first maxBurstChanges.
	assert.Less(t, len(sink.bursts), n-maxBurstChanges, "flushes: %d", len(sink.bursts))
}

// TestLargeBurstFlushedInParts: a storm's burst (every group of a large
// input turning CRITICAL at once, all of it waiting on the socket) is
// made durable maxBurstChanges groups at a time, not in one flush at the
// end of the input, and every event is handled, in order.
func TestLargeBurstFlushedInParts(t *testing.T) {
	sink := &burstSink{release: make(chan struct{})}
	path, _ := startServer(t, sink)
	k := dial(t, path)
	require.True(t, k.init(str("crit", `"v" > 10`)).GetSuccess())

	k.point("g=first", 0, 50) // its flush waits while the storm arrives
	n := 1 + 3*maxBurstChanges + 10
	wrote := make(chan error, 1)
	go func() {
		for i := 1; i < n; i++ {
			if err := agent.WriteMessage(pointRequest(fmt.Sprintf("g=%06d", i), int64(1+i), 50), k.conn); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- agent.WriteMessage(&agent.Request{Message: &agent.Request_Keepalive{Keepalive: &agent.KeepaliveRequest{Time: 7}}}, k.conn)
	}()
	require.NoError(t, <-wrote, "the storm is read ahead while the flush waits")
	close(sink.release)
	points, _ := k.pointsUntilKeepalive()
	assert.Equal(t, n, points)

	sink.mu.Lock()
	defer sink.mu.Unlock()
	require.Len(t, sink.events, n)
	require.Equal(t, "cpu:g=first", sink.events[0].ID)
	for i, e := range sink.events[1:] {
		require.Equal(t, fmt.Sprintf("cpu:g=%06d", i+1), e.ID, "event %d out of order", i+1)
	}
	assert.GreaterOrEqual(t, len(sink.bursts), 4, "flushed in parts: %v", sink.bursts)
	total := 0
	for i, b := range sink.bursts {
		assert.LessOrEqual(t, b, maxBurstChanges, "flush %d's events", i)
		assert.LessOrEqual(t, sink.changed[i], maxBurstChanges, "flush %d's state change", i)
		total += b
	}
	assert.Equal(t, n, total)
}
