package udf

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/influxdata/kapacitor/udf/agent"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// slowDisk is a Sink whose publisher's first Flush after an event waits
// until release is closed, like a slow fsync. It records events and fails
// the test if one is published while a Flush is in progress.
type slowDisk struct {
	t       *testing.T
	release chan struct{}
	flushed chan struct{} // closed when the first Flush starts

	mu      sync.Mutex
	inFlush bool
	flushes int
	events  []Event
}

func (s *slowDisk) Open(Destination) (Publisher, error) { return s, nil }

func (s *slowDisk) Publish(e Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inFlush {
		s.t.Errorf("event %s %s published while Flush waits for the disk", e.ID, e.Level)
	}
	s.events = append(s.events, e)
	return nil
}

func (s *slowDisk) LoadState(string, string) (NodeState, bool, error) {
	return NodeState{}, false, nil
}

func (s *slowDisk) Flush(*StateChange) error {
	s.mu.Lock()
	if len(s.events) == 0 {
		s.mu.Unlock()
		return nil // Init's flush
	}
	s.inFlush = true
	s.flushes++
	first := s.flushes == 1
	s.mu.Unlock()
	if first {
		close(s.flushed)
		<-s.release
	}
	s.mu.Lock()
	s.inFlush = false
	s.mu.Unlock()
	return nil
}

func (s *slowDisk) snapshot() ([]Event, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...), s.flushes
}

// TestReadAheadWhileFlushing checks that while the handler waits for the
// disk, Kapacitor can go on writing far more than a socket holds (its
// writes do not block), that nothing of that input is handled before the
// flush returns, and that all of it is handled afterwards, in order.
func TestReadAheadWhileFlushing(t *testing.T) {
	disk := &slowDisk{t: t, release: make(chan struct{}), flushed: make(chan struct{})}
	path, _ := startServer(t, disk)
	k := dial(t, path)
	require.True(t, k.init(str("crit", `"v" > 10`)).GetSuccess())

	k.point("g=first", 1, 50) // CRITICAL: an event, then a flush that waits
	select {
	case <-disk.flushed:
	case <-time.After(10 * time.Second):
		t.Fatal("no flush after the first event")
	}

	// About 1.5 MB of points, many times what a unix socket holds; every
	// 100th changes its group's level.
	const n = 10000
	wrote := make(chan error, 1)
	go func() {
		for i := range n {
			v := 1.0
			if i%100 == 0 && (i/100)%2 == 0 {
				v = 50
			}
			req := &agent.Request{Message: &agent.Request_Point{Point: &agent.Point{
				Name: "cpu", Time: int64(2 + i), Group: "g=shared",
				Tags:         map[string]string{"g": "shared", "host": fmt.Sprintf("host-%05d", i)},
				FieldsDouble: map[string]float64{"v": v, "pad1": float64(i), "pad2": 2, "pad3": 3, "pad4": 4},
			}}}
			if err := agent.WriteMessage(req, k.conn); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}()
	select {
	case err := <-wrote:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		close(disk.release)
		t.Fatal("Kapacitor's writes blocked while the handler waited for the disk")
	}
	events, _ := disk.snapshot()
	assert.Len(t, events, 1, "input was handled while the flush waited")

	close(disk.release)
	k.send(&agent.Request{Message: &agent.Request_Keepalive{Keepalive: &agent.KeepaliveRequest{Time: 7}}})
	points, ka := k.pointsUntilKeepalive()
	assert.Equal(t, int64(7), ka.GetTime())
	events, flushes := disk.snapshot()
	// g=shared goes CRITICAL at i=0, 200, 400, ... and OK at i=1, 201, ...
	want := 1 + 2*(n/200)
	require.Len(t, events, want)
	assert.Equal(t, want, points, "a point back per event")
	assert.Equal(t, "cpu:g=first", events[0].ID)
	for j, e := range events[1:] {
		wantLevel, i := Critical, 200*(j/2)
		if j%2 == 1 {
			wantLevel, i = OK, i+1
		}
		assert.Equal(t, wantLevel, e.Level, "event %d", j+1)
		assert.Equal(t, int64(2+i), e.Time.UnixNano(), "event %d", j+1)
		assert.Equal(t, fmt.Sprintf("host-%05d", i), e.Tags["host"], "event %d", j+1)
	}
	assert.GreaterOrEqual(t, flushes, 2)
}
