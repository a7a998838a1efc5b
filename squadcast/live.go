package squadcast

import (
	"errors"
	"sync"
)

// ErrTaskConnected is the error of ResolveTask for a task that has a node
// connected: it exists (it was defined again), so nothing is resolved.
var ErrTaskConnected = errors.New("a node of the task is connected: the task exists, its incidents are not resolved")

// NodeConnected implements udf.NodeTracker: from now on, until
// NodeDisconnected, ResolveTask refuses the node's task. It waits while
// ResolveTask resolves that task, so that the node then loads the state
// the resolution left (none: its groups start from OK).
func (s *Sender) NodeConnected(task, _ string) { s.live.up(task) }

// NodeDisconnected implements udf.NodeTracker: see NodeConnected.
func (s *Sender) NodeDisconnected(task, _ string) { s.live.down(task) }

// liveTasks counts the connected nodes of each task, and makes the
// resolution of a task (ResolveTask) and the connection of one of its
// nodes exclusive: one of them happens wholly before the other. A task
// is in the map while a node of it is connected or a call holds or waits
// for its lock.
type liveTasks struct {
	mu    sync.Mutex
	tasks map[string]*liveTask
}

// liveTask is one task's entry in liveTasks.
type liveTask struct {
	// mu is held by a resolution of the task, and by a node connecting.
	mu sync.Mutex
	// nodes counts the task's connected nodes; refs the calls holding or
	// waiting for mu. Both are guarded by liveTasks.mu.
	nodes, refs int
}

// acquire returns task's entry, locked.
func (l *liveTasks) acquire(task string) *liveTask {
	l.mu.Lock()
	if l.tasks == nil {
		l.tasks = map[string]*liveTask{}
	}
	t := l.tasks[task]
	if t == nil {
		t = &liveTask{}
		l.tasks[task] = t
	}
	t.refs++
	l.mu.Unlock()
	t.mu.Lock()
	return t
}

// release unlocks task's entry t, having added dn to its connected nodes,
// and forgets it when nothing refers to it.
func (l *liveTasks) release(task string, t *liveTask, dn int) {
	l.mu.Lock()
	t.nodes += dn
	t.refs--
	if t.nodes <= 0 && t.refs == 0 {
		delete(l.tasks, task)
	}
	l.mu.Unlock()
	t.mu.Unlock()
}

// up counts a node of task connected, once no resolution of task runs.
func (l *liveTasks) up(task string) {
	l.release(task, l.acquire(task), 1)
}

// down counts a node of task disconnected. It needs no lock of the task:
// no resolution of it runs while one of its nodes is connected.
func (l *liveTasks) down(task string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.tasks[task]
	if t == nil || t.nodes == 0 {
		return
	}
	if t.nodes--; t.nodes == 0 && t.refs == 0 {
		delete(l.tasks, task)
	}
}

// resolving runs fn unless a node of task is connected (then it returns
// ErrTaskConnected); no node of task connects while fn runs.
func (l *liveTasks) resolving(task string, fn func() error) error {
	t := l.acquire(task)
	defer l.release(task, t, 0)
	l.mu.Lock()
	n := t.nodes
	l.mu.Unlock()
	if n > 0 {
		return ErrTaskConnected
	}
	return fn()
}
