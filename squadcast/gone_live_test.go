package squadcast

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/influxdata/kapacitor/udf/agent"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// critOptions are the options of a node that is CRITICAL over 90, with
// the default id {{ .Name }}:{{ .Group }} (no task name in it).
var critOptions = []*agent.Option{
	{Name: "crit", Values: []*agent.OptionValue{{Type: agent.ValueType_STRING, Value: &agent.OptionValue_StringValue{StringValue: `"v" > 90`}}}},
}

// connectNode inits a handler of task's node squadcast2 on sink.
func connectNode(t *testing.T, sink udf.Sink, task string) *udf.Handler {
	t.Helper()
	hd := udf.NewHandler(udf.HandlerConfig{Sink: sink})
	res, err := hd.Init(&agent.InitRequest{TaskID: task, NodeID: "squadcast2", Options: critOptions})
	require.NoError(t, err)
	require.True(t, res.Success, res.Error)
	return hd
}

// point gives hd a point of measurement cpu in group with value v, and flushes.
func point(t *testing.T, hd *udf.Handler, group string, at int64, v float64) {
	t.Helper()
	_, err := hd.Point(&agent.Point{Name: "cpu", Group: group, Time: at, FieldsDouble: map[string]float64{"v": v}})
	require.NoError(t, err)
	hd.Flush()
}

// delivered waits until the server got n events and the outbox is empty.
func delivered(t *testing.T, s *Sender, h *holdServer, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return len(h.got()) >= n }, 10*time.Second, time.Millisecond)
	require.Eventually(t, func() bool { return len(listOutbox(t, s.outbox)) == 0 }, 10*time.Second, 5*time.Millisecond)
	require.Len(t, h.got(), n)
}

// loadHook is a Sink that runs fn right after a node's Init loaded its
// saved state: before Init ends, where the daemon's udf.Server does not
// yet count the task connected.
type loadHook struct {
	*Sender
	fn func()
}

func (l loadHook) LoadState(task, node string) (udf.NodeState, bool, error) {
	ns, found, err := l.Sender.LoadState(task, node)
	l.fn()
	return ns, found, err
}

// TestResolveTaskWhileReconnecting: a deleted task defined again, whose
// node connects while the resolver runs (it loaded its CRITICAL group), is
// not resolved: ResolveTask refuses it and sends nothing. Once the node
// is gone, the task is resolved.
func TestResolveTaskWhileReconnecting(t *testing.T) {
	h := newHoldServer(t)
	h.hold.Store(false)
	s, _, _ := newTestSender(t, holdConfig(h, t.TempDir(), 1))
	hd := connectNode(t, s, "cpu")
	point(t, hd, "host=a", 1, 95)
	hd.Close()
	delivered(t, s, h, 1)

	var nodes []NodeResolution
	var err error
	hd2 := connectNode(t, loadHook{Sender: s, fn: func() { nodes, err = s.ResolveTask("cpu", "task cpu deleted") }}, "cpu")
	require.ErrorIs(t, err, ErrTaskConnected)
	assert.Empty(t, nodes)
	ns, found, lerr := s.LoadState("cpu", "squadcast2")
	require.NoError(t, lerr)
	require.True(t, found)
	assert.Equal(t, "cpu:host=a", ns.Groups[0].ID, "the live node's state is kept")
	point(t, hd2, "host=a", 2, 99) // still CRITICAL: nothing to send
	_, err = s.ResolveTask("cpu", "task cpu deleted")
	require.ErrorIs(t, err, ErrTaskConnected, "refused while the node is connected")

	hd2.Close()
	nodes, err = s.ResolveTask("cpu", "task cpu deleted")
	require.NoError(t, err)
	assert.Equal(t, []NodeResolution{{Node: "squadcast2", Endpoint: "default", Resolved: 1}}, nodes)
	delivered(t, s, h, 2)
	assert.Regexp(t, `^cpu:host=a/.*is OK \(task cpu deleted\)`, h.got()[1])
	assert.Empty(t, s.live.tasks, "no task left in the registry")
}

// acceptHook is an Observer that runs fn when an event is taken for delivery.
type acceptHook struct{ fn func() }

func (acceptHook) Attempted(string, udf.Level, Outcome, time.Duration, time.Duration) {}
func (a acceptHook) Accepted(string, Source)                                          { a.fn() }
func (acceptHook) Coalesced(string, udf.Level)                                        {}
func (acceptHook) StaleResolved(string)                                               {}

// TestNodeConnectsAfterResolution: a node of the task that connects while
// ResolveTask resolves it waits until the resolution is done, then loads
// no state: its group starts from OK, and its next CRITICAL point opens
// the incident again.
func TestNodeConnectsAfterResolution(t *testing.T) {
	h := newHoldServer(t)
	h.hold.Store(false)
	var resolving atomic.Bool
	connected := make(chan *udf.Handler, 1)
	var s *Sender
	cfg := holdConfig(h, t.TempDir(), 1)
	cfg.Observer = acceptHook{fn: func() {
		if !resolving.CompareAndSwap(true, false) {
			return
		}
		// The resolution's OK is being published: a node connects now.
		go func() {
			hd := udf.NewHandler(udf.HandlerConfig{Sink: s})
			if _, err := hd.Init(&agent.InitRequest{TaskID: "cpu", NodeID: "squadcast2", Options: critOptions}); err != nil {
				t.Error(err)
			}
			connected <- hd
		}()
		select {
		case hd := <-connected: // it did not wait: the test fails below
			connected <- hd
		case <-time.After(300 * time.Millisecond):
		}
	}}
	s, _, _ = newTestSender(t, cfg)
	hd := connectNode(t, s, "cpu")
	point(t, hd, "host=a", 1, 95)
	hd.Close()
	delivered(t, s, h, 1)

	resolving.Store(true)
	nodes, err := s.ResolveTask("cpu", "task cpu deleted")
	require.NoError(t, err)
	assert.Equal(t, []NodeResolution{{Node: "squadcast2", Endpoint: "default", Resolved: 1}}, nodes)
	hd2 := <-connected
	point(t, hd2, "host=a", 2, 99)
	delivered(t, s, h, 3)
	assert.Regexp(t, `^cpu:host=a/.*is OK \(task cpu deleted\)`, h.got()[1])
	assert.Regexp(t, `^cpu:host=a/.*CRITICAL`, h.got()[2], "the live node re-opens the incident")
	hd2.Close()
}

// TestResolveTaskSkipsIDsOfLiveTasks: a task copied under a new name (the
// same ids, as the default id has no task name), then the old one
// deleted: the incident that the copy holds CRITICAL is left open, and
// reported; the old task's own incident is resolved, and its state dropped.
// Once the copy is deleted too, its incident is resolved.
func TestResolveTaskSkipsIDsOfLiveTasks(t *testing.T) {
	h := newHoldServer(t)
	h.hold.Store(false)
	s, _, _ := newTestSender(t, holdConfig(h, t.TempDir(), 1))
	old := connectNode(t, s, "cpu")
	point(t, old, "host=a", 1, 95)
	point(t, old, "host=b", 1, 95)
	old.Close()
	copied := connectNode(t, s, "cpu_v2")
	point(t, copied, "host=a", 2, 97)
	delivered(t, s, h, 3)

	nodes, err := s.ResolveTask("cpu", "task cpu deleted")
	require.NoError(t, err)
	assert.Equal(t, []NodeResolution{{Node: "squadcast2", Endpoint: "default", Resolved: 1,
		Kept: []HeldIncident{{ID: "cpu:host=a", Task: "cpu_v2"}}}}, nodes)
	delivered(t, s, h, 4)
	assert.Regexp(t, `^cpu:host=b/.*is OK \(task cpu deleted\)`, h.got()[3], "only the incident no other task holds")
	_, found, err := s.LoadState("cpu", "squadcast2")
	require.NoError(t, err)
	assert.False(t, found, "the deleted task's state is dropped")
	ns, _, err := s.LoadState("cpu_v2", "squadcast2")
	require.NoError(t, err)
	require.Len(t, ns.Groups, 1)
	assert.Equal(t, udf.Critical, ns.Groups[0].Level)

	copied.Close()
	nodes, err = s.ResolveTask("cpu_v2", "task cpu_v2 deleted")
	require.NoError(t, err)
	assert.Equal(t, []NodeResolution{{Node: "squadcast2", Endpoint: "default", Resolved: 1}}, nodes)
	delivered(t, s, h, 5)
	assert.Regexp(t, `^cpu:host=a/.*is OK \(task cpu_v2 deleted\)`, h.got()[4])
}

// TestResolveTaskWriteFails: when the write of a node's resolution fails,
// the error says so (ErrNotWritten), and the write is retried: the events
// are delivered and the state dropped once it succeeds.
func TestResolveTaskWriteFails(t *testing.T) {
	h := newHoldServer(t)
	h.hold.Store(false)
	cfg, _ := testConfig(t, holdConfig(h, t.TempDir(), 1))
	fh := &fastHooks{}
	hk := fh.hooks()
	var failing atomic.Bool
	failCommitsWhile(&hk, failing.Load)
	s := startSender(t, cfg, hk)
	hd := connectNode(t, s, "cpu")
	point(t, hd, "host=a", 1, 95)
	hd.Close()
	delivered(t, s, h, 1)

	failing.Store(true)
	nodes, err := s.ResolveTask("cpu", "task cpu deleted")
	require.NoError(t, err)
	require.Len(t, nodes, 1)
	assert.True(t, errors.Is(nodes[0].Err, ErrNotWritten), "%v", nodes[0].Err)
	assert.ErrorContains(t, nodes[0].Err, "injected disk failure")
	assert.Equal(t, 1, nodes[0].Resolved)
	failing.Store(false)
	require.Eventually(t, func() bool {
		_, found, err := s.LoadState("cpu", "squadcast2")
		return err == nil && !found
	}, 10*time.Second, 5*time.Millisecond, "the drop is written by the retry")
	delivered(t, s, h, 2)
	assert.Regexp(t, `^cpu:host=a/.*is OK \(task cpu deleted\)`, h.got()[1])
}

// TestLiveTasks: the registry counts each task's connected nodes, refuses
// a resolution while one is connected, and forgets a task with none.
func TestLiveTasks(t *testing.T) {
	var l liveTasks
	ran := 0
	run := func() error { ran++; return nil }
	l.up("a")
	l.up("a")
	l.up("b")
	assert.ErrorIs(t, l.resolving("a", run), ErrTaskConnected)
	l.down("a")
	assert.ErrorIs(t, l.resolving("a", run), ErrTaskConnected, "one node of a is still connected")
	l.down("a")
	l.down("a") // more than connected: ignored
	require.NoError(t, l.resolving("a", run))
	assert.Equal(t, 1, ran)
	boom := errors.New("boom")
	assert.ErrorIs(t, l.resolving("c", func() error { return boom }), boom)
	assert.Equal(t, []string{"b"}, keys(l.tasks))
	l.down("b")
	assert.Empty(t, l.tasks)
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
