package squadcast

import (
	"errors"
	"fmt"
	"slices"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast/outbox"
	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// SavedTasks returns the tasks that saved alert state, in order. It reads
// no group: it is cheap however many groups are saved.
func (s *Sender) SavedTasks() ([]string, error) {
	nodes, err := s.outbox.Nodes()
	if err != nil {
		return nil, err
	}
	var tasks []string
	for _, n := range nodes {
		if len(tasks) == 0 || tasks[len(tasks)-1] != n[0] {
			tasks = append(tasks, n[0])
		}
	}
	return tasks, nil
}

// NodeResolution is what ResolveTask did with one node of a task.
type NodeResolution struct {
	// Node is the node's ID.
	Node string
	// Endpoint names where its events went, as an Observer hears it
	// (InlineLabel for a task's own URL); "" when it has no event.
	Endpoint string
	// Resolved counts the OK events published: one per incident open.
	Resolved int
	// Kept are the node's incidents left open because another task's
	// saved state holds their id at a level other than OK (see
	// ResolveTask); the node's state is dropped all the same.
	Kept []HeldIncident
	// Err says why the node could not be resolved: its state is kept,
	// unless Err wraps ErrNotWritten.
	Err error
}

// HeldIncident is an incident of a gone task that another task holds open.
type HeldIncident struct {
	// ID is the incident's alert id; Task is a task whose saved state
	// has a group alerting with that id.
	ID, Task string
}

// ErrNotWritten wraps NodeResolution.Err when the node's OK events and the
// drop of its state were queued but their write to the outbox failed: the
// outbox retries the write (the events are delivered from memory
// meanwhile), so the state is dropped once it succeeds; a daemon stopped
// before that keeps it, and resolves the task again when it runs again.
var ErrNotWritten = errors.New("the write of the resolution to the outbox failed: it is retried, and the node's state is dropped once it succeeds")

// ResolveTask resolves the incidents of every node of a task that is gone
// (deleted from Kapacitor) and drops the nodes' saved state: see
// udf.ResolveGone for the events, which why explains ("task T deleted").
// They go where the node's own went (its saved options say where), through
// the outbox and delivery as the node's would, and the node's state is
// dropped in the transaction that writes them, or after them (some may go
// in earlier transactions, see outbox.Committer): a crash never loses
// them, but may repeat some at the next resolution. A node whose groups
// have no incident is dropped without events, even without saved options.
//
// Two rules keep it from resolving an incident that is still open. A task
// with a node connected (see NodeConnected: defined again, and connecting)
// is never resolved: ResolveTask returns ErrTaskConnected, and a node
// that connects meanwhile waits for it to end, then loads no state. And an
// incident whose id the saved state of another task holds at a level
// other than OK (the default id has no task name: a copy of the task has
// the same ids) is not resolved: it is in the node's Kept. Its other
// error is that of listing the task's nodes, or of reading the other
// tasks' state: then nothing is resolved.
func (s *Sender) ResolveTask(task, why string) (out []NodeResolution, err error) {
	err = s.live.resolving(task, func() error {
		out, err = s.resolveTask(task, why)
		return err
	})
	return out, err
}

// resolveTask is ResolveTask, while no node of task is connected.
func (s *Sender) resolveTask(task, why string) ([]NodeResolution, error) {
	nodes, err := s.outbox.Nodes()
	if err != nil {
		return nil, err
	}
	var mine []savedNode
	ids := map[string]bool{}
	for _, n := range nodes {
		if n[0] != task {
			continue
		}
		sn := savedNode{node: n[1]}
		sn.state, _, sn.err = s.LoadState(task, n[1])
		for _, g := range sn.state.Groups {
			if g.ID != "" {
				ids[g.ID] = true
			}
		}
		mine = append(mine, sn)
	}
	held, err := s.heldElsewhere(task, nodes, ids)
	if err != nil {
		return nil, err
	}
	var out []NodeResolution
	for _, sn := range mine {
		out = append(out, s.resolveNode(task, sn, held, why))
	}
	return out, nil
}

// savedNode is a node of a gone task, with its saved state.
type savedNode struct {
	node  string
	state udf.NodeState
	err   error // of loading state
}

// heldElsewhere returns, of ids, those that a group of a node of another
// task than task alerts with, each with the first such task.
func (s *Sender) heldElsewhere(task string, nodes [][2]string, ids map[string]bool) (map[string]string, error) {
	held := map[string]string{}
	if len(ids) == 0 {
		return held, nil
	}
	for _, n := range nodes {
		if n[0] == task {
			continue
		}
		ns, _, err := s.LoadState(n[0], n[1])
		if err != nil {
			return nil, fmt.Errorf("which incidents other tasks hold open: %w", err)
		}
		for _, g := range ns.Groups {
			if g.Level != udf.OK && ids[g.ID] && held[g.ID] == "" {
				held[g.ID] = n[0]
			}
		}
	}
	return held, nil
}

// resolveNode resolves one node of a gone task, but for the incidents
// held elsewhere: see ResolveTask.
func (s *Sender) resolveNode(task string, sn savedNode, held map[string]string, why string) NodeResolution {
	r := NodeResolution{Node: sn.node}
	if sn.err != nil {
		r.Err = sn.err
		return r
	}
	ns := sn.state
	ns.Groups = slices.DeleteFunc(slices.Clone(ns.Groups), func(g udf.SavedGroup) bool {
		if other := held[g.ID]; g.ID != "" && other != "" {
			r.Kept = append(r.Kept, HeldIncident{ID: g.ID, Task: other})
			return true
		}
		return false
	})
	drop := &outbox.StateChange{Task: task, Node: sn.node, Drop: true}
	if !slices.ContainsFunc(ns.Groups, func(g udf.SavedGroup) bool { return g.ID != "" }) {
		r.Err = notWritten(s.cm.Flush(&outbox.Source{Name: "state"}, drop, false))
		return r
	}
	gone, err := udf.ResolveGone(task, sn.node, ns, s.clock.Now(), why)
	if err != nil {
		r.Err = err
		return r
	}
	pub, err := s.Open(gone.Destination)
	if err != nil {
		r.Err = fmt.Errorf("the node's destination: %w", err)
		return r
	}
	p := pub.(*publisher)
	r.Endpoint = p.t.label
	// Hold the events for the transaction of the drop (see Flush).
	if err := p.flush(nil, true); err != nil {
		r.Err = err
		return r
	}
	for _, ev := range gone.Events {
		if err := p.Publish(ev); err != nil {
			// Those published are delivered; the state is kept, so the
			// next resolution sends them all again.
			r.Err = err
			_ = p.flush(nil, false)
			return r
		}
		r.Resolved++
	}
	r.Err = notWritten(s.cm.Flush(&p.src, drop, true))
	return r
}

// notWritten wraps the error of the flush that queued a node's drop with
// ErrNotWritten, unless the Sender is closing: then the committer does
// not retry it, and the state may be kept.
func notWritten(err error) error {
	if err == nil || errors.Is(err, ErrClosed) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrNotWritten, err)
}

// TaskListers returns, for each task recorded, the identity of the
// Kapacitor that last listed it (see SetTaskListers): none for a file
// written before they were recorded.
func (s *Sender) TaskListers() (map[string]string, error) { return s.outbox.Listers() }

// SetTaskListers records, in one transaction of the outbox, the identity
// of the Kapacitor that listed each task of set, and forgets the tasks of
// del. ResolveTask forgets the record of a task whose state it drops.
func (s *Sender) SetTaskListers(set map[string]string, del []string) error {
	return s.outbox.SetListers(set, del)
}
