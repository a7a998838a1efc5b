package main

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast"
	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast/outbox"
)

// deletedPassword is in the fake Kapacitor's URL: no log may show it.
const deletedPassword = "Del3tedPw"

// listKapacitor serves GET /kapacitor/v1/tasks as Kapacitor 1.5 does for
// the deleted-task checks (limit, pattern, fields: a negative limit lists
// every task, whatever the pattern), or one of the answers a check must
// not trust.
type listKapacitor struct {
	mu    sync.Mutex
	tasks map[string]string // id -> status
	// answer, when set, replaces the answer to every list request.
	answer func(w http.ResponseWriter, pattern string) bool
	gets   int
	// serverID is the identity /kapacitor/v1/debug/vars answers; vars,
	// when set, replaces that answer.
	serverID string
	vars     func(w http.ResponseWriter) bool
}

// deletedServerID is the fake Kapacitor's identity unless a test changes it.
const deletedServerID = "c33e93cc-a007-4cf7-af6f-84e7c50a9b6a"

func (k *listKapacitor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if u, p, ok := r.BasicAuth(); !ok || u != "admin" || p != deletedPassword {
		http.Error(w, `{"error":"authentication required"}`, http.StatusUnauthorized)
		return
	}
	if r.Method == http.MethodGet && r.URL.Path == "/kapacitor/v1/debug/vars" {
		if k.vars == nil || !k.vars(w) {
			_ = json.NewEncoder(w).Encode(map[string]any{"cluster_id": "98f2dedc-aed2-4a18-b9e9-60aea2c9294d",
				"server_id": k.serverID, "version": "1.5.9", "num_tasks": len(k.tasks)})
		}
		return
	}
	q := r.URL.Query()
	limit, err := strconv.Atoi(q.Get("limit"))
	if r.Method != http.MethodGet || r.URL.Path != "/kapacitor/v1/tasks" || err != nil || q.Get("fields") != "status" {
		http.Error(w, `{"error":"unexpected request"}`, http.StatusBadRequest)
		return
	}
	k.gets++
	pattern := q.Get("pattern")
	if k.answer != nil && k.answer(w, pattern) {
		return
	}
	tasks := []map[string]string{}
	for id, status := range k.tasks {
		if ok, _ := path.Match(pattern, id); pattern == "" || ok || limit < 0 {
			tasks = append(tasks, map[string]string{"id": id, "status": status, "link": "/kapacitor/v1/tasks/" + id})
		}
	}
	sort.Slice(tasks, func(i, j int) bool { return tasks[i]["id"] < tasks[j]["id"] })
	if limit >= 0 && len(tasks) > limit {
		tasks = tasks[:limit]
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"tasks": tasks})
}

func (k *listKapacitor) set(f func()) {
	k.mu.Lock()
	defer k.mu.Unlock()
	f()
}

// fakeTaskStore is a taskStore that records the resolutions asked for.
type fakeTaskStore struct {
	saved    []string
	resolved []string
	nodes    map[string][]squadcast.NodeResolution // what ResolveTask answers, by task
	// resolveErr, when set, is ResolveTask's error, for every task.
	resolveErr error
	// listers are the records of SetTaskListers, in memory unless db is set.
	listers map[string]string
	db      *outbox.DB
	// listerErr, when set, fails TaskListers and SetTaskListers.
	listerErr error
	// writes counts the calls of SetTaskListers that change something.
	writes int
}

func (s *fakeTaskStore) SavedTasks() ([]string, error) { return s.saved, nil }

func (s *fakeTaskStore) TaskListers() (map[string]string, error) {
	if s.listerErr != nil {
		return nil, s.listerErr
	}
	if s.db != nil {
		return s.db.Listers()
	}
	return maps.Clone(s.listers), nil
}

func (s *fakeTaskStore) SetTaskListers(set map[string]string, del []string) error {
	if s.listerErr != nil {
		return s.listerErr
	}
	if len(set)+len(del) > 0 {
		s.writes++
	}
	if s.db != nil {
		return s.db.SetListers(set, del)
	}
	maps.Copy(s.listers, set)
	for _, t := range del {
		delete(s.listers, t)
	}
	return nil
}

func (s *fakeTaskStore) ResolveTask(task, why string) ([]squadcast.NodeResolution, error) {
	if s.resolveErr != nil {
		return nil, s.resolveErr
	}
	s.resolved = append(s.resolved, task+": "+why)
	nodes, ok := s.nodes[task]
	if !ok {
		nodes = []squadcast.NodeResolution{{Node: "squadcast2", Endpoint: "default", Resolved: 2}}
	}
	// As the Sender does, the nodes resolved are dropped, the others kept.
	var kept []squadcast.NodeResolution
	for _, n := range nodes {
		if n.Err != nil {
			kept = append(kept, n)
		}
	}
	if ok {
		s.nodes[task] = kept
	}
	if len(kept) == 0 {
		delete(s.listers, task) // as the outbox drops the record with the state
		for i, t := range s.saved {
			if t == task {
				s.saved = append(s.saved[:i:i], s.saved[i+1:]...)
				break
			}
		}
	}
	return nodes, nil
}

// deletedRig is a deletedTasks on a fake Kapacitor and store.
type deletedRig struct {
	kap       *listKapacitor
	srv       *httptest.Server
	store     *fakeTaskStore
	w         *deletedTasks
	logs      *observer.ObservedLogs
	counted   map[string]int
	connected map[string]bool
}

func newDeletedRig(t *testing.T, saved ...string) *deletedRig {
	t.Helper()
	r := &deletedRig{kap: &listKapacitor{tasks: map[string]string{}, serverID: deletedServerID},
		store:   &fakeTaskStore{saved: saved, listers: map[string]string{}},
		counted: map[string]int{}, connected: map[string]bool{}}
	r.srv = httptest.NewServer(r.kap)
	t.Cleanup(r.srv.Close)
	base, err := parseKapacitorURL("http://admin:" + deletedPassword + "@" + r.srv.Listener.Addr().String())
	require.NoError(t, err)
	core, logs := observer.New(zapcore.DebugLevel)
	r.logs = logs
	r.w = newDeletedTasks(&reenabler{base: base, client: &http.Client{Timeout: 5 * time.Second}}, r.store,
		func() map[string]bool { return r.connected }, time.Minute, zap.New(core))
	r.w.resolved = func(ep string, n int) { r.counted[ep] += n }
	t.Cleanup(func() {
		for _, e := range logs.All() {
			b, _ := json.Marshal(e.ContextMap())
			assert.NotContains(t, e.Message+string(b), deletedPassword, "a log shows the password")
		}
	})
	return r
}

// listedThenDeleted runs a check with these tasks in Kapacitor, then
// deletes them from it: this Kapacitor listed them.
func (r *deletedRig) listedThenDeleted(tasks ...string) {
	r.kap.set(func() {
		for _, t := range tasks {
			r.kap.tasks[t] = "enabled"
		}
	})
	r.checks(1)
	r.kap.set(func() {
		for _, t := range tasks {
			delete(r.kap.tasks, t)
		}
	})
}

// checks runs n checks.
func (r *deletedRig) checks(n int) {
	for range n {
		r.w.check(context.Background())
	}
}

// TestDeletedTaskAbsentTwice: a saved task absent from two checks is
// resolved, once, with the reason in the message, and counted by
// endpoint; absent from one check, it is not.
func TestDeletedTaskAbsentTwice(t *testing.T) {
	r := newDeletedRig(t, "cpu", "gone")
	r.listedThenDeleted("gone")
	r.kap.tasks["cpu"] = "enabled"
	r.checks(1)
	assert.Empty(t, r.store.resolved, "absent from one check only")
	r.checks(1)
	assert.Equal(t, []string{"gone: task gone deleted"}, r.store.resolved)
	assert.Equal(t, map[string]int{"default": 2}, r.counted)
	logged := r.logs.FilterMessage("resolved the open incidents of a task deleted from Kapacitor and dropped its alert state").All()
	require.Len(t, logged, 1)
	assert.Equal(t, "gone", logged[0].ContextMap()["task"])
	assert.EqualValues(t, 2, logged[0].ContextMap()["incidents"])
	r.checks(3)
	assert.Len(t, r.store.resolved, 1, "resolved once")
}

// TestDeletedTaskNotResolved: nothing is resolved for a task that is
// listed (enabled or disabled), connected, listed again between two
// absences, or when a check cannot trust Kapacitor's answer: an error
// status, Kapacitor unreachable, a list without "tasks", an entry without
// an id, or an answer by ID that lists another task; and a list that
// lacks a task the answer by ID has (a capped list) does not count.
func TestDeletedTaskNotResolved(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(r *deletedRig)
	}{
		{"enabled", func(r *deletedRig) { r.kap.tasks["t"] = "enabled" }},
		{"disabled", func(r *deletedRig) { r.kap.tasks["t"] = "disabled" }},
		{"connected", func(r *deletedRig) { r.connected["t"] = true }},
		{"error status", func(r *deletedRig) {
			r.kap.answer = func(w http.ResponseWriter, _ string) bool {
				http.Error(w, `{"error":"boom"}`, http.StatusInternalServerError)
				return true
			}
		}},
		{"unreachable", func(r *deletedRig) { r.srv.Close() }},
		{"no tasks list", func(r *deletedRig) {
			r.kap.answer = func(w http.ResponseWriter, _ string) bool { _, _ = w.Write([]byte(`{"error":""}`)); return true }
		}},
		{"not JSON", func(r *deletedRig) {
			r.kap.answer = func(w http.ResponseWriter, _ string) bool { _, _ = w.Write([]byte(`<html>proxy`)); return true }
		}},
		{"entry without id", func(r *deletedRig) {
			r.kap.answer = func(w http.ResponseWriter, _ string) bool {
				_, _ = w.Write([]byte(`{"tasks":[{"status":"enabled"}]}`))
				return true
			}
		}},
		{"answer by id lists another task", func(r *deletedRig) {
			r.kap.answer = func(w http.ResponseWriter, pattern string) bool {
				if pattern == "" {
					return false
				}
				_, _ = w.Write([]byte(`{"tasks":[{"id":"other","status":"enabled"}]}`))
				return true
			}
		}},
		{"capped list", func(r *deletedRig) {
			r.kap.tasks["t"] = "enabled"
			r.kap.answer = func(w http.ResponseWriter, pattern string) bool {
				if pattern != "" {
					return false
				}
				_, _ = w.Write([]byte(`{"tasks":[]}`))
				return true
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newDeletedRig(t, "t")
			r.listedThenDeleted("t")
			tc.setup(r)
			r.checks(4)
			assert.Empty(t, r.store.resolved)
			assert.Empty(t, r.counted)
		})
	}
}

// TestDeletedTaskCountsReset: a task listed again between two absences
// needs two more; a failed check in between neither counts nor resets;
// while Kapacitor cannot be read, one warning is logged, and one line
// when it answers again.
func TestDeletedTaskCountsReset(t *testing.T) {
	r := newDeletedRig(t, "t")
	r.listedThenDeleted("t")
	r.checks(1) // absent
	r.kap.set(func() { r.kap.tasks["t"] = "enabled" })
	r.checks(1) // listed
	r.kap.set(func() { delete(r.kap.tasks, "t") })
	r.checks(1) // absent
	assert.Empty(t, r.store.resolved, "a task listed between two absences")

	r.kap.set(func() {
		r.kap.answer = func(w http.ResponseWriter, _ string) bool {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return true
		}
	})
	r.checks(3)
	assert.Empty(t, r.store.resolved, "failed checks count for nothing")
	warned := r.logs.FilterMessage("cannot read Kapacitor's task list: no task counts as deleted until it answers").All()
	require.Len(t, warned, 1, "one warning for the streak")
	assert.Contains(t, warned[0].ContextMap()["error"], "503 Service Unavailable")
	r.kap.set(func() { r.kap.answer = nil })
	r.checks(1)
	assert.Equal(t, []string{"t: task t deleted"}, r.store.resolved, "absent from two successful checks")
	assert.Len(t, r.logs.FilterMessage("Kapacitor's task list is readable again: checking for deleted tasks").All(), 1)
}

// TestDeletedTaskNodeFails: a node that cannot be resolved keeps the task
// saved: it is tried again at each check, its reason logged once, and the
// other node's resolutions are counted (once: that node is dropped).
func TestDeletedTaskNodeFails(t *testing.T) {
	r := newDeletedRig(t, "t")
	r.store.nodes = map[string][]squadcast.NodeResolution{"t": {
		{Node: "squadcast2", Endpoint: "eu", Resolved: 3},
		{Node: "squadcast5", Err: errors.New("the node's state was saved without its options")},
	}}
	r.listedThenDeleted("t")
	r.checks(4)
	assert.Len(t, r.store.resolved, 3, "tried at each check from the second")
	warned := r.logs.FilterMessage("cannot resolve the incidents of a deleted task's node: its alert state is kept; resolve them in Squadcast, then drop it with `kapacitor-squadcast state drop --task TASK` while the daemon is stopped").All()
	require.Len(t, warned, 1)
	assert.Equal(t, "squadcast5", warned[0].ContextMap()["node"])
	assert.True(t, strings.Contains(warned[0].ContextMap()["error"].(string), "without its options"))
	assert.Equal(t, map[string]int{"eu": 3}, r.counted)
}
