package udf

import (
	"fmt"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/influxdata/kapacitor/udf/agent"
	"github.com/stretchr/testify/require"
)

// discard is a Sink whose publisher drops every event.
type discard struct{}

func (discard) Open(Destination) (Publisher, error) { return discard{}, nil }
func (discard) Publish(Event) error                 { return nil }
func (discard) Flush(*StateChange) error            { return nil }
func (discard) LoadState(string, string) (NodeState, bool, error) {
	return NodeState{}, false, nil
}

// heapPerGroup feeds one CRITICAL point to each of n distinct groups of a
// handler (the default id template) and returns the live heap the handler
// holds for them afterwards, in bytes per group.
func heapPerGroup(t testing.TB, n int, extra ...*agent.Option) float64 {
	h := NewHandler(HandlerConfig{Sink: discard{}, Hostname: "h"})
	res, err := h.Init(&agent.InitRequest{TaskID: "t", NodeID: "n", Options: append([]*agent.Option{str("crit", `"usage_idle" < 10`)}, extra...)})
	require.NoError(t, err)
	require.True(t, res.Success, res.Error)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	p := &agent.Point{Name: "cpu", Tags: map[string]string{"cpu": "cpu-total"}, FieldsDouble: map[string]float64{"usage_idle": 5}}
	for i := range n {
		host := fmt.Sprintf("host-%07d", i)
		p.Group, p.Time = "host="+host, int64(i)
		p.Tags["host"] = host
		_, err := h.Point(p)
		require.NoError(t, err)
	}
	h.Flush() // the sink keeps no state: the handler only forgets the changed groups
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	require.Len(t, h.groups, n)
	runtime.KeepAlive(h)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
}

// TestHeapPerAlertingGroup guards the size of an alerting group's state
// (see groups.go): the map entry, the key and alert ID (one string), the
// groupState, and no entry in the previousLevel map. It measured 91 bytes
// at 100,000 groups; 201 before groups.go (a map entry and a string each
// for the key and the ID, a 48-byte groupState, an entry in the
// previousLevel map, and the changed groups' set kept at its largest).
func TestHeapPerAlertingGroup(t *testing.T) {
	if testing.Short() {
		t.Skip("feeds 100,000 groups")
	}
	b := heapPerGroup(t, 100000)
	t.Logf("%.0f bytes of live heap per alerting group", b)
	require.Less(t, b, 130.0, "bytes of live heap per alerting group")
}

// TestHeapPerAlertingGroupResolveStale bounds what .resolveStale() adds
// per alerting group (its last-seen time, the name and tags of its last
// event, and its entry in the tracker's heap), which only its tasks pay.
func TestHeapPerAlertingGroupResolveStale(t *testing.T) {
	if testing.Short() {
		t.Skip("feeds 100,000 groups")
	}
	b := heapPerGroup(t, 100000, opt("resolveStale", vDur(time.Hour)))
	t.Logf("%.0f bytes of live heap per alerting group with .resolveStale()", b)
	require.Less(t, b, 400.0, "bytes of live heap per alerting group")
}

// TestGroupStateSize: a group's state fits the 32-byte allocation class.
func TestGroupStateSize(t *testing.T) {
	require.Equal(t, uintptr(32), unsafe.Sizeof(groupState{}))
}
