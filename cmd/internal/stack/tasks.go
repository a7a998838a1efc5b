package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// DBRP is a database and retention policy a task reads from.
type DBRP struct {
	DB string `json:"db"`
	RP string `json:"rp"`
}

// Task is what Kapacitor reports about a task (GET /kapacitor/v1/tasks/ID).
type Task struct {
	ID string `json:"id"`
	// Status is "enabled" or "disabled".
	Status string `json:"status"`
	// Executing says whether the task is running now.
	Executing bool `json:"executing"`
	// Error is the task's last error ("" if none).
	Error string `json:"error"`
	// NodeStats holds each node's counters by node name (e.g. "alert2",
	// "squadcast2"): "collected", "emitted", "errors", "alerts_triggered", ...
	NodeStats map[string]map[string]json.Number `json:"-"`
}

// Stat returns counter key of the first node whose name starts with
// nodePrefix (node names are the node kind plus a number, e.g. "alert2"),
// and whether there was such a node and counter.
func (t Task) Stat(nodePrefix, key string) (int64, bool) {
	names := make([]string, 0, len(t.NodeStats))
	for name := range t.NodeStats {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !strings.HasPrefix(name, nodePrefix) {
			continue
		}
		v, ok := t.NodeStats[name][key]
		if !ok {
			return 0, false
		}
		n, err := v.Int64()
		if err != nil {
			f, ferr := v.Float64()
			if ferr != nil {
				return 0, false
			}
			n = int64(f)
		}
		return n, true
	}
	return 0, false
}

// DefineTask creates a stream task with the given TICKscript reading from
// dbrps, enabled or not (POST /kapacitor/v1/tasks). A rejected definition
// returns an *APIError whose Message is Kapacitor's error text verbatim.
//
// What Kapacitor 1.5.9 does, seen against the real kapacitord: it checks the
// script (syntax, property names, UDF option names and argument types from
// the UDF's cached Info) before storing the task, and answers 400 "invalid
// TICKscript: line 1 char 46: unexpected arg to crit, got BOOL expected
// STRING" and the like. A UDF's Init runs later, when the task's nodes start
// in their own goroutines, so when Init answers Success:false the POST still
// succeeds (200): the task is stored with status "enabled" (it stays
// "enabled"), executing becomes false within milliseconds, and its error is
// "<node>: failed to initialize processes <the UDF's error text>", e.g.
// "squadcast2: failed to initialize processes option .crit: ...". Disabling
// and enabling it again also answers 200 and fails the same way. So callers
// must not take a nil error as "running": check with Task or WaitTask (or
// WaitTaskError for the failure). Errors while starting the task itself
// (not its nodes) make the POST fail with 500, the task stored anyway; those
// come back as an *APIError too.
func (k *Kapacitord) DefineTask(id, tickscript string, dbrps []DBRP, enable bool) error {
	return k.defineTask(id, "stream", tickscript, dbrps, enable)
}

// DefineBatchTask creates a batch task, like DefineTask.
func (k *Kapacitord) DefineBatchTask(id, tickscript string, dbrps []DBRP, enable bool) error {
	return k.defineTask(id, "batch", tickscript, dbrps, enable)
}

func (k *Kapacitord) defineTask(id, typ, tickscript string, dbrps []DBRP, enable bool) error {
	status := "disabled"
	if enable {
		status = "enabled"
	}
	body, err := json.Marshal(map[string]any{
		"id":     id,
		"type":   typ,
		"dbrps":  dbrps,
		"script": tickscript,
		"status": status,
	})
	if err != nil {
		return fmt.Errorf("define task %s: %w", id, err)
	}
	return k.do(context.Background(), "define task "+id, http.MethodPost, "/kapacitor/v1/tasks", bytes.NewReader(body), "application/json", nil)
}

// EnableTask enables (starts) a task.
func (k *Kapacitord) EnableTask(id string) error { return k.setStatus(id, "enabled") }

// DisableTask disables (stops) a task.
func (k *Kapacitord) DisableTask(id string) error { return k.setStatus(id, "disabled") }

func (k *Kapacitord) setStatus(id, status string) error {
	body := fmt.Sprintf(`{"status":%q}`, status)
	return k.do(context.Background(), "set task "+id+" "+status, http.MethodPatch, "/kapacitor/v1/tasks/"+url.PathEscape(id), strings.NewReader(body), "application/json", nil)
}

// DeleteTask deletes a task.
func (k *Kapacitord) DeleteTask(id string) error {
	return k.do(context.Background(), "delete task "+id, http.MethodDelete, "/kapacitor/v1/tasks/"+url.PathEscape(id), nil, "", nil)
}

// Task returns a task's status, error and node counters.
func (k *Kapacitord) Task(id string) (Task, error) {
	var raw struct {
		Task
		Stats struct {
			NodeStats map[string]map[string]json.Number `json:"node-stats"`
		} `json:"stats"`
	}
	if err := k.do(context.Background(), "get task "+id, http.MethodGet, "/kapacitor/v1/tasks/"+url.PathEscape(id), nil, "", &raw); err != nil {
		return Task{}, err
	}
	t := raw.Task
	t.NodeStats = raw.Stats.NodeStats
	return t, nil
}

// WaitTaskError waits until the task reports a non-empty error and returns
// the task, or fails after timeout.
func (k *Kapacitord) WaitTaskError(id string, timeout time.Duration) (Task, error) {
	return k.WaitTask(id, timeout, "an error", func(t Task) bool { return t.Error != "" })
}

// WaitTask polls a task until cond holds and returns it, or fails after
// timeout with what (a description of cond) and the task's last state.
func (k *Kapacitord) WaitTask(id string, timeout time.Duration, what string, cond func(Task) bool) (Task, error) {
	deadline := time.Now().Add(timeout)
	for {
		t, err := k.Task(id)
		if err == nil && cond(t) {
			return t, nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return t, fmt.Errorf("task %s: waiting %s for %s: %w", id, timeout, what, err)
			}
			return t, fmt.Errorf("task %s: no %s within %s (status %q, executing %v, error %q)", id, what, timeout, t.Status, t.Executing, t.Error)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TaskVar is a value for one of a TICKscript's `var` declarations, given
// when the task is defined (what `kapacitor define -vars FILE` sends).
type TaskVar struct {
	// Type is Kapacitor's var type: "bool", "int", "float", "string",
	// "regex", "duration", "lambda", "list" or "star".
	Type string `json:"type"`
	// Value is the value; a duration may be a string such as "2s".
	Value any `json:"value"`
}

// DefineTaskVars is DefineTask with values overriding the script's vars
// (POST /kapacitor/v1/tasks with "vars"). Kapacitor rejects a var whose
// type differs from the script's declaration.
func (k *Kapacitord) DefineTaskVars(id, tickscript string, dbrps []DBRP, vars map[string]TaskVar, enable bool) error {
	status := "disabled"
	if enable {
		status = "enabled"
	}
	body, err := json.Marshal(map[string]any{
		"id":     id,
		"type":   "stream",
		"dbrps":  dbrps,
		"script": tickscript,
		"vars":   vars,
		"status": status,
	})
	if err != nil {
		return fmt.Errorf("define task %s: %w", id, err)
	}
	return k.do(context.Background(), "define task "+id, http.MethodPost, "/kapacitor/v1/tasks", bytes.NewReader(body), "application/json", nil)
}
