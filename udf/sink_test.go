package udf

import (
	"errors"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/influxdata/kapacitor/udf/agent"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// memStore keeps the nodes' saved state in memory, as a durable Sink's
// file would: the handlers of a "restarted daemon" share it.
type memStore struct {
	mu    sync.Mutex
	nodes map[string]*NodeState
	err   error // LoadState's error, when set
}

func newMemStore() *memStore { return &memStore{nodes: map[string]*NodeState{}} }

func (m *memStore) LoadState(task, node string) (NodeState, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return NodeState{}, false, m.err
	}
	ns, ok := m.nodes[task+"\x00"+node]
	if !ok {
		return NodeState{}, false, nil
	}
	return NodeState{AsOf: ns.AsOf, Groups: slices.Clone(ns.Groups), Options: ns.Options}, true, nil
}

// apply saves a change, as the Sink's transaction would.
func (m *memStore) apply(c *StateChange) {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := c.TaskID + "\x00" + c.NodeID
	ns := m.nodes[key]
	if ns == nil {
		ns = &NodeState{}
		m.nodes[key] = ns
	}
	byGroup := map[string]SavedGroup{}
	for _, g := range ns.Groups {
		byGroup[g.Group] = g
	}
	for _, g := range c.Put {
		byGroup[g.Group] = g
	}
	for _, g := range c.Delete {
		delete(byGroup, g)
	}
	ns.AsOf = c.AsOf
	if c.Options != nil {
		ns.Options = c.Options
	}
	ns.Groups = slices.SortedFunc(maps.Values(byGroup), func(a, b SavedGroup) int {
		if a.Group < b.Group {
			return -1
		}
		return 1
	})
}

// durable is a recorder whose publisher keeps the state in a memStore:
// each Flush saves its change unless flushErr fails it.
type durable struct {
	recorder
	store    *memStore
	flushes  int // Flush calls
	saves    int // of them, with a change
	flushErr error
}

func (d *durable) Open(Destination) (Publisher, error) { return d, nil }
func (d *durable) LoadState(task, node string) (NodeState, bool, error) {
	return d.store.LoadState(task, node)
}

func (d *durable) Flush(c *StateChange) error {
	d.flushes++
	if d.flushErr != nil {
		return d.flushErr
	}
	if c != nil {
		d.saves++
		d.store.apply(c)
	}
	return nil
}

func handlerWithStore(t *testing.T, sink Sink) *Handler {
	t.Helper()
	h := NewHandler(HandlerConfig{Sink: sink})
	res, err := h.Init(&agent.InitRequest{TaskID: "cpu", NodeID: "squadcast2", Options: []*agent.Option{str("crit", `"v" < 10`), str("warn", `"v" < 20`)}})
	require.NoError(t, err)
	require.True(t, res.Success, res.Error)
	return h
}

func feed(t *testing.T, h *Handler, group string, ts int64, v float64) {
	t.Helper()
	_, err := h.Point(point(group, ts, map[string]float64{"v": v}, nil))
	require.NoError(t, err)
}

// TestStateSurvivesRestart: a restarted daemon neither repeats a trigger nor
// misses a recovery, and duration and previousLevel carry on.
func TestStateSurvivesRestart(t *testing.T) {
	store := newMemStore()
	rec := &durable{store: store}
	h := handlerWithStore(t, rec)
	assert.Equal(t, 1, rec.flushes, "Init flushes once, with nothing to write")
	feed(t, h, "host=a", 10, 15) // WARNING
	feed(t, h, "host=b", 11, 5)  // CRITICAL
	feed(t, h, "host=c", 12, 5)  // CRITICAL
	feed(t, h, "host=c", 13, 50) // OK
	h.Flush()
	assert.Equal(t, 1, rec.saves, "one save for the burst")
	require.Len(t, rec.Events(), 4)
	h.Close()

	// The daemon restarts: the same store, a new connection.
	rec2 := &durable{store: store}
	h = handlerWithStore(t, rec2)
	assert.Len(t, h.groups, 2)
	feed(t, h, "host=a", 20, 15) // still WARNING: no repeated trigger
	feed(t, h, "host=b", 21, 5)  // still CRITICAL
	feed(t, h, "host=c", 22, 50) // still OK
	assert.Empty(t, rec2.Events())
	feed(t, h, "host=a", 30, 50) // recovery
	feed(t, h, "host=b", 31, 15) // CRITICAL -> WARNING
	ev := rec2.Events()
	require.Len(t, ev, 2)
	assert.Equal(t, OK, ev[0].Level)
	assert.Equal(t, Warning, ev[0].PreviousLevel)
	assert.EqualValues(t, 20, ev[0].Duration, "duration runs from the first trigger before the restart")
	assert.Equal(t, Warning, ev[1].Level)
	assert.Equal(t, Critical, ev[1].PreviousLevel)
	assert.EqualValues(t, 20, ev[1].Duration)
}

// TestStateNotSavedBeforeEventsAreDurable: when the publisher cannot make
// its events durable, the state is not saved (a restart then repeats the
// events rather than losing them), and both are retried at the next
// Flush, with the state changed since.
func TestStateNotSavedBeforeEventsAreDurable(t *testing.T) {
	store := newMemStore()
	rec := &durable{store: store, flushErr: errors.New("disk full")}
	h := handlerWithStore(t, rec)
	feed(t, h, "host=a", 10, 5)
	h.Flush()
	_, found, err := store.LoadState("cpu", "squadcast2")
	require.NoError(t, err)
	assert.False(t, found, "state saved although the events were not durable")

	rec.flushErr = nil
	h.Flush()
	ns, found, err := store.LoadState("cpu", "squadcast2")
	require.NoError(t, err)
	require.True(t, found)
	require.Len(t, ns.Groups, 1)
	assert.Equal(t, Critical, ns.Groups[0].Level)
	assert.EqualValues(t, 10, ns.AsOf)
	assert.Equal(t, 3, rec.flushes, "Init's, the failed one and the retry")

	h.Flush()
	assert.Equal(t, 3, rec.flushes, "nothing changed: Flush costs nothing")

	rec.flushErr = errors.New("disk full")
	feed(t, h, "host=a", 20, 50) // recovery
	h.Flush()
	rec.flushErr = nil
	feed(t, h, "host=c", 21, 5) // CRITICAL
	h.Flush()
	assert.Equal(t, 2, rec.saves)
	ns, _, err = store.LoadState("cpu", "squadcast2")
	require.NoError(t, err)
	var groups []string
	for _, g := range ns.Groups {
		groups = append(groups, g.Group)
	}
	assert.Equal(t, []string{"host=c"}, groups, "the retried flush carries the recovery of host=a")
}

func TestSnapshotRestoreNewerWins(t *testing.T) {
	store := newMemStore()

	// A task that alerted on host=a and host=b; Kapacitor snapshots it.
	h := handlerWithStore(t, &durable{store: store})
	feed(t, h, "host=a", 10, 5)
	feed(t, h, "host=b", 11, 15)
	snap, err := h.Snapshot()
	require.NoError(t, err)
	h.Flush()

	// Later host=a recovers and that is saved; the snapshot is now older.
	feed(t, h, "host=a", 20, 50)
	h.Flush()

	h2 := handlerWithStore(t, &durable{store: store})
	res, err := h2.Restore(&agent.RestoreRequest{Snapshot: snap.Snapshot})
	require.NoError(t, err)
	require.True(t, res.Success)
	assert.Len(t, h2.groups, 1, "the saved state is newer than the snapshot and wins")
	assert.Contains(t, h2.groups, "host=b")

	// With no saved state (a new data dir), the snapshot is used and saved.
	store2 := newMemStore()
	rec := &durable{store: store2}
	h3 := handlerWithStore(t, rec)
	res, err = h3.Restore(&agent.RestoreRequest{Snapshot: snap.Snapshot})
	require.NoError(t, err)
	require.True(t, res.Success)
	require.Len(t, h3.groups, 2)
	assert.Equal(t, Critical, h3.groups["host=a"].level)
	assert.Equal(t, Critical, h3.prevOf("cpu:host=a"), "previousLevel is restored too")
	h3.Flush()
	ns, found, err := store2.LoadState("cpu", "squadcast2")
	require.NoError(t, err)
	require.True(t, found)
	assert.Len(t, ns.Groups, 2)
	feed(t, h3, "host=a", 30, 5)
	assert.Empty(t, rec.Events(), "no repeated trigger after a restore")

	// A bad snapshot is ignored, never fails the task.
	res, err = h3.Restore(&agent.RestoreRequest{Snapshot: []byte(`{"version":9}`)})
	require.NoError(t, err)
	assert.True(t, res.Success)
	assert.Len(t, h3.groups, 2)
}

// TestStateLoadError: a node whose saved state cannot be read still
// starts, from OK, with the error logged.
func TestStateLoadError(t *testing.T) {
	store := newMemStore()
	store.err = errors.New(`group "host=b": bad level 9`)
	h := handlerWithStore(t, &durable{store: store})
	assert.Empty(t, h.groups)
}

// TestFlappingOKGroupSaved: with .flapping(), a recovered group is kept
// (for its history) at OK; the saved state and the snapshot leave it out,
// as both hold alerting groups only, so that both still load.
func TestFlappingOKGroupSaved(t *testing.T) {
	store := newMemStore()
	init := func(rec *durable) *Handler {
		h := NewHandler(HandlerConfig{Sink: rec})
		res, err := h.Init(&agent.InitRequest{TaskID: "cpu", NodeID: "squadcast2", Options: []*agent.Option{
			str("crit", `"v" < 10`), opt("flapping", vDouble(0.98), vDouble(0.99)), opt("history", vInt(4)), // history kept, never flapping
		}})
		require.NoError(t, err)
		require.True(t, res.Success, res.Error)
		return h
	}
	rec := &durable{store: store}
	h := init(rec)
	feed(t, h, "host=a", 10, 5)  // CRITICAL
	feed(t, h, "host=a", 11, 50) // OK, kept for its history
	feed(t, h, "host=b", 12, 5)  // CRITICAL
	h.Flush()
	require.Len(t, rec.Events(), 3)
	snap, err := h.Snapshot()
	require.NoError(t, err)

	ns, found, err := store.LoadState("cpu", "squadcast2")
	require.NoError(t, err, "the saved state loads")
	require.True(t, found)
	require.Len(t, ns.Groups, 1)
	assert.Equal(t, "host=b", ns.Groups[0].Group)

	_, groups, err := decodeSnapshot(snap.Snapshot)
	require.NoError(t, err, "the snapshot loads")
	require.Len(t, groups, 1)
	assert.Equal(t, "host=b", groups[0].Group)

	h2 := init(&durable{store: store})
	res, err := h2.Restore(&agent.RestoreRequest{Snapshot: snap.Snapshot})
	require.NoError(t, err)
	assert.True(t, res.Success)
}
