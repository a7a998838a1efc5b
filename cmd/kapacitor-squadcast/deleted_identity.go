package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"go.uber.org/zap"
)

// kapacitorView is what one check read from Kapacitor.
type kapacitorView struct {
	// id is the answering Kapacitor's identity: its server ID.
	id string
	// listed holds the IDs of the tasks it lists.
	listed map[string]bool
	// absent holds the saved tasks it positively lists as absent (see isAbsent).
	absent map[string]bool
}

// read reads Kapacitor's identity, its task list, and, for each saved task
// the list lacks, the answer to a query for its ID, then its identity
// again: an identity that cannot be read, or that changed meanwhile (the
// URL now reaches another Kapacitor), fails the check.
func (d *deletedTasks) read(ctx context.Context, saved []string) (*kapacitorView, error) {
	id, err := d.identity(ctx)
	if err != nil {
		return nil, err
	}
	listed, err := d.list(ctx, "")
	if err != nil {
		return nil, err
	}
	v := &kapacitorView{id: id, listed: listed, absent: map[string]bool{}}
	connected := d.connected()
	for _, task := range saved {
		absent, err := d.isAbsent(ctx, task, listed, connected)
		if err != nil {
			d.log.Debug("cannot tell whether a task is deleted: it counts as present", zap.String("task", task), zap.Error(err))
		}
		if absent {
			v.absent[task] = true
		}
	}
	again, err := d.identity(ctx)
	if err != nil {
		return nil, err
	}
	if again != id {
		return nil, fmt.Errorf("the server_id of Kapacitor changed during the check, from %s to %s: another Kapacitor answers at the URL", id, again)
	}
	return v, nil
}

// identity returns the answering Kapacitor's server ID, from
// GET /kapacitor/v1/debug/vars: a UUID that Kapacitor creates with its data
// dir (server.id) and keeps across restarts.
func (d *deletedTasks) identity(ctx context.Context) (string, error) {
	var vars struct {
		ServerID string `json:"server_id"`
	}
	if err := d.api.do(ctx, http.MethodGet, "/kapacitor/v1/debug/vars", nil, &vars); err != nil {
		return "", err
	}
	if !isServerID(vars.ServerID) {
		return "", errors.New(`GET /kapacitor/v1/debug/vars: the answer has no valid "server_id": Kapacitor's identity cannot be read`)
	}
	return vars.ServerID, nil
}

// isServerID reports whether s is a UUID in its canonical text form, and
// not the nil UUID: the form of Kapacitor's server IDs.
func isServerID(s string) bool {
	if len(s) != 36 || s == "00000000-0000-0000-0000-000000000000" {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// loadListers reads, once, which Kapacitor last listed each task, as the
// outbox recorded it (before a restart too).
func (d *deletedTasks) loadListers() error {
	if d.listers != nil {
		return nil
	}
	l, err := d.store.TaskListers()
	if err != nil {
		return err
	}
	d.listers = l
	return nil
}

// record records in the outbox the identity of the Kapacitor of v for
// every task it lists (every task, not only those with saved state: a
// task may save state and be deleted between two checks), writing only
// what changed, and forgets the tasks that are neither listed nor saved.
func (d *deletedTasks) record(v *kapacitorView, saved []string) error {
	set := map[string]string{}
	for task := range v.listed {
		if d.listers[task] != v.id {
			set[task] = v.id
		}
		delete(d.unlisted, task)
	}
	isSaved := make(map[string]bool, len(saved))
	for _, task := range saved {
		isSaved[task] = true
	}
	var del []string
	for task := range d.listers {
		if !v.listed[task] && !isSaved[task] {
			del = append(del, task)
		}
	}
	if err := d.store.SetTaskListers(set, del); err != nil {
		return err
	}
	for task, id := range set {
		d.listers[task] = id
	}
	for _, task := range del {
		delete(d.listers, task)
	}
	return nil
}

// counts reports whether a saved task's absence from the check of v
// counts: Kapacitor lists it as absent, and is the Kapacitor that last
// listed it. One that never listed it keeps it, and says so once.
func (d *deletedTasks) counts(task string, v *kapacitorView) bool {
	if !v.absent[task] {
		return false
	}
	if d.listers[task] == v.id {
		return true
	}
	if d.unlisted[task] != v.id {
		d.unlisted[task] = v.id
		d.log.Warn("a task that saved alert state is not in Kapacitor's task list, but this Kapacitor never listed it: its alert state and incidents are kept. "+
			"Check that --kapacitor-url is the Kapacitor whose tasks use this daemon; if the task is really gone, resolve its incidents in Squadcast, "+
			"then drop its state with `kapacitor-squadcast state drop --task TASK` while the daemon is stopped",
			zap.String("task", task), zap.String("server_id", v.id), zap.String("listed_by", d.listers[task]))
	}
	return false
}
