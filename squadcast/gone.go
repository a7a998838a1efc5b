package squadcast

import (
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
	// Err says why the node could not be resolved: its state is kept.
	Err error
}

// ResolveTask resolves the incidents of every node of a task that is gone
// (deleted from Kapacitor) and drops the nodes' saved state: see
// udf.ResolveGone for the events, which why explains ("task T deleted").
// They go where the node's own went (its saved options say where), through
// the outbox and delivery as the node's would, and the node's state is
// dropped in the transaction that writes them, or after them (some may go
// in earlier transactions, see outbox.Committer): a crash never loses
// them, but may repeat some at the next resolution. A node whose groups have no
// incident is dropped without events, even without saved options. The
// error is only that of listing the task's nodes.
func (s *Sender) ResolveTask(task, why string) ([]NodeResolution, error) {
	nodes, err := s.outbox.Nodes()
	if err != nil {
		return nil, err
	}
	var out []NodeResolution
	for _, n := range nodes {
		if n[0] == task {
			out = append(out, s.resolveNode(task, n[1], why))
		}
	}
	return out, nil
}

// resolveNode resolves one node of a gone task: see ResolveTask.
func (s *Sender) resolveNode(task, node, why string) NodeResolution {
	r := NodeResolution{Node: node}
	ns, _, err := s.LoadState(task, node)
	if err != nil {
		r.Err = err
		return r
	}
	drop := &outbox.StateChange{Task: task, Node: node, Drop: true}
	if !slices.ContainsFunc(ns.Groups, func(g udf.SavedGroup) bool { return g.ID != "" }) {
		r.Err = s.cm.Flush(&outbox.Source{Name: "state"}, drop, false)
		return r
	}
	gone, err := udf.ResolveGone(task, node, ns, s.clock.Now(), why)
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
	r.Err = s.cm.Flush(&p.src, drop, true)
	return r
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
