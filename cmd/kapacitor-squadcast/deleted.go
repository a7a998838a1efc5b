package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"go.uber.org/zap"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast"
	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// deletedTasks resolves, with --resolve-deleted-tasks, the open incidents
// of the tasks deleted from Kapacitor, and drops their saved alert state:
// Kapacitor never resolves them, and the state would stay in the data dir
// forever.
//
// It never acts on an unclear answer. Every check lists Kapacitor's tasks
// in one request (limit=-1: all of them, from one read of Kapacitor's
// store, no pages to shift between requests), and asks again for each
// saved task the list lacks, by its exact ID (pattern=ID&limit=2; task IDs
// hold no pattern characters). A task counts
// as absent from a check only when both answers are 200 with a task list
// that is whole (every entry has an ID; the second lists no other task)
// and it is in neither; and as deleted once absent from two successive
// checks (interval apart) and not connected to the daemon. A disabled
// task is listed: it is kept. A failed check (Kapacitor unreachable, an
// error answer, a list that is not whole) changes nothing, nor does it
// forget what earlier checks found.
//
// Another Kapacitor (a wrong URL, a staging instance, one started on a
// wiped data dir) lacks every task: so a task's absence counts only when
// the Kapacitor answering is the one that last listed it. Each check reads
// Kapacitor's identity, its server ID (kept in its data dir), before and
// after its task lists; the outbox records, per task, the identity of the
// Kapacitor that last listed it (see deleted_identity.go).
type deletedTasks struct {
	api   *reenabler // Kapacitor's API client: only its do is used
	store taskStore
	// connected returns the tasks connected to the daemon now: they exist.
	connected func() map[string]bool
	interval  time.Duration
	log       *zap.Logger
	// resolved, when set, counts the OK events sent for a deleted task, by endpoint.
	resolved func(endpoint string, n int)

	// absent counts, for each saved task, the successive checks it was absent from.
	absent map[string]int
	// failing says the last check failed (its error was logged).
	failing bool
	// logged holds the "task/node" of nodes whose failure to resolve was logged.
	logged map[string]bool
	// listers holds, per task, the identity (server ID) of the Kapacitor
	// that last listed it, as recorded in the outbox; nil until loaded.
	listers map[string]string
	// unlisted holds, per saved task logged as never listed by the
	// Kapacitor answering, that Kapacitor's identity.
	unlisted map[string]string
}

// taskStore is where the saved alert state is: the sender.
type taskStore interface {
	SavedTasks() ([]string, error)
	ResolveTask(task, why string) ([]squadcast.NodeResolution, error)
	TaskListers() (map[string]string, error)
	SetTaskListers(set map[string]string, del []string) error
}

// listedTask is the part of Kapacitor's task JSON a check reads.
type listedTask struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

func newDeletedTasks(api *reenabler, store taskStore, connected func() map[string]bool, interval time.Duration, log *zap.Logger) *deletedTasks {
	return &deletedTasks{api: api, store: store, connected: connected, interval: interval, log: log,
		absent: map[string]int{}, logged: map[string]bool{}, unlisted: map[string]string{}}
}

// run checks at once, then every interval, until ctx ends.
func (d *deletedTasks) run(ctx context.Context) {
	t := time.NewTicker(d.interval)
	defer t.Stop()
	for {
		d.check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// check is one check: it reads Kapacitor's identity and tasks (read),
// records which Kapacitor listed each task (record), updates the absent
// counts from the answers, then resolves the tasks absent twice.
func (d *deletedTasks) check(ctx context.Context) {
	saved, err := d.store.SavedTasks()
	if err != nil {
		d.log.Error("cannot list the tasks that saved alert state", zap.Error(err))
		return
	}
	if err := d.loadListers(); err != nil {
		d.log.Error("cannot read which Kapacitor listed each task: no task counts as deleted", zap.Error(err))
		return
	}
	v, err := d.read(ctx, saved)
	if err != nil && len(saved) == 0 {
		// Nothing to resolve: no warning (the daemon starts before Kapacitor).
		d.log.Debug("checked for deleted tasks: no task saved alert state; Kapacitor's task list cannot be read", zap.Error(err))
		return
	}
	if err != nil {
		d.failed(ctx, err)
		return
	}
	if d.failing {
		d.failing = false
		d.log.Info("Kapacitor's task list is readable again: checking for deleted tasks")
	}
	if err := d.record(v, saved); err != nil {
		d.log.Error("cannot record which Kapacitor listed each task: no task counts as deleted", zap.Error(err))
		return
	}
	var gone []string
	for _, task := range saved {
		if !d.counts(task, v) {
			delete(d.absent, task)
			continue
		}
		if d.absent[task]++; d.absent[task] >= 2 {
			gone = append(gone, task)
		}
	}
	d.forgetUnsaved(saved)
	d.log.Debug("checked for deleted tasks", zap.String("server_id", v.id), zap.Int("saved", len(saved)),
		zap.Int("listed", len(v.listed)), zap.Strings("deleted", gone))
	for _, task := range gone {
		d.resolve(task)
	}
}

// failed logs a check that could not read Kapacitor's task list: the first
// of a streak as a warning. Nothing changes.
func (d *deletedTasks) failed(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	if !d.failing {
		d.failing = true
		d.log.Warn("cannot read Kapacitor's task list: no task counts as deleted until it answers", zap.Error(err))
	}
	d.log.Debug("checked for deleted tasks: Kapacitor's task list cannot be read", zap.Error(err))
}

// isAbsent reports whether Kapacitor positively lists task as absent:
// missing from the list and from the answer to a query for its ID, and
// not connected. An error means the query failed: not absent.
func (d *deletedTasks) isAbsent(ctx context.Context, task string, listed map[string]bool, connected map[string]bool) (bool, error) {
	if listed[task] || connected[task] {
		return false, nil
	}
	one, err := d.list(ctx, task)
	if err != nil {
		return false, err
	}
	for id := range one {
		if id != task {
			return false, fmt.Errorf("asked for task %q, Kapacitor listed %q: its answer cannot be trusted", task, id)
		}
	}
	return len(one) == 0, nil
}

// list returns the IDs of Kapacitor's tasks (with any status), or of the
// task whose ID is pattern. Its error says why the answer is not a whole
// list; it never holds the URL's password.
func (d *deletedTasks) list(ctx context.Context, pattern string) (map[string]bool, error) {
	q := url.Values{"fields": {"status"}, "limit": {"-1"}}
	if pattern != "" {
		// Kapacitor (1.5 to 1.7) ignores the pattern when the limit is
		// negative: a whole list would then come back (and be refused by
		// isAbsent, as it lists other tasks).
		q.Set("pattern", pattern)
		q.Set("limit", "2")
	}
	var answer struct {
		Tasks *[]listedTask `json:"tasks"`
	}
	if err := d.api.do(ctx, http.MethodGet, "/kapacitor/v1/tasks?"+q.Encode(), nil, &answer); err != nil {
		return nil, err
	}
	if answer.Tasks == nil {
		return nil, errors.New(`GET /kapacitor/v1/tasks: the answer has no "tasks" list`)
	}
	ids := make(map[string]bool, len(*answer.Tasks))
	for _, t := range *answer.Tasks {
		if t.ID == "" {
			return nil, errors.New("GET /kapacitor/v1/tasks: the answer lists a task without an id")
		}
		ids[t.ID] = true
	}
	return ids, nil
}

// forgetUnsaved drops the counts of tasks that no longer have saved state.
func (d *deletedTasks) forgetUnsaved(saved []string) {
	keep := make(map[string]bool, len(saved))
	for _, t := range saved {
		keep[t] = true
	}
	for t := range d.absent {
		if !keep[t] {
			delete(d.absent, t)
		}
	}
	for t := range d.unlisted {
		if !keep[t] {
			delete(d.unlisted, t)
		}
	}
}

// resolve resolves a deleted task's incidents and drops its state (see
// squadcast.Sender.ResolveTask), and logs what it did. A node that cannot
// be resolved keeps its state; its reason is logged once. A task that has
// a node connected (defined again meanwhile) is not resolved.
func (d *deletedTasks) resolve(task string) {
	if d.connected()[task] {
		delete(d.absent, task) // defined again meanwhile
		return
	}
	nodes, err := d.store.ResolveTask(task, "task "+task+" deleted")
	if errors.Is(err, squadcast.ErrTaskConnected) {
		delete(d.absent, task)
		d.log.Info("a task absent from Kapacitor's task list is connected again: its incidents are not resolved", zap.String("task", task))
		return
	}
	if err != nil {
		d.log.Error("cannot resolve the incidents of a deleted task", zap.String("task", task), zap.Error(err))
		return
	}
	resolved, dropped := 0, 0
	byEndpoint := map[string]int{}
	for _, n := range nodes {
		d.logKept(task, n)
		if n.Err != nil && !errors.Is(n.Err, squadcast.ErrNotWritten) {
			d.nodeFailed(task, n)
			continue
		}
		resolved += n.Resolved
		if n.Endpoint != "" {
			byEndpoint[n.Endpoint] += n.Resolved
		}
		if n.Err != nil {
			d.log.Warn("the resolution of a deleted task's node is not written to the outbox yet: the write is retried, its events are delivered meanwhile, and its alert state is dropped once the write succeeds",
				zap.String("task", task), zap.String("node", n.Node), zap.Int("incidents", n.Resolved), zap.Error(n.Err))
			continue
		}
		dropped++
	}
	for ep, n := range byEndpoint {
		if d.resolved != nil {
			d.resolved(ep, n)
		}
	}
	if dropped > 0 {
		d.log.Info("resolved the open incidents of a task deleted from Kapacitor and dropped its alert state",
			zap.String("task", task), zap.Int("incidents", resolved), zap.Int("nodes", dropped), zap.Any("by_endpoint", byEndpoint))
	}
	if dropped == len(nodes) {
		delete(d.absent, task)
		delete(d.listers, task) // the outbox dropped its record with its state
	}
}

// logKept logs the incidents of a deleted task's node left open because
// another task holds them open (the same alert id).
func (d *deletedTasks) logKept(task string, n squadcast.NodeResolution) {
	for _, k := range n.Kept {
		d.log.Info("left an incident of a deleted task open: another task alerts with its id",
			zap.String("task", task), zap.String("node", n.Node), zap.String("id", udf.LoggedID(k.ID)), zap.String("held_by", k.Task))
	}
}

// nodeFailed logs, once per node, why a deleted task's node keeps its state.
func (d *deletedTasks) nodeFailed(task string, n squadcast.NodeResolution) {
	key := task + "/" + n.Node
	if d.logged[key] {
		return
	}
	d.logged[key] = true
	d.log.Warn("cannot resolve the incidents of a deleted task's node: its alert state is kept; resolve them in Squadcast, then drop it with `kapacitor-squadcast state drop --task TASK` while the daemon is stopped",
		zap.String("task", task), zap.String("node", n.Node), zap.Int("incidents_resolved", n.Resolved), zap.Error(n.Err))
}
