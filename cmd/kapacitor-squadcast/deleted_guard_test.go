package main

import (
	"errors"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zapcore"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast/outbox"
)

// otherServerID is the identity of another Kapacitor (or one started on a
// wiped data dir).
const otherServerID = "0b7c2f55-6f0e-4c43-9d0a-3c1d5e2f7a10"

// neverListedMsg is the warning for a saved task that the answering
// Kapacitor lacks but never listed.
const neverListedMsg = "a task that saved alert state is not in Kapacitor's task list, but this Kapacitor never listed it: its alert state and incidents are kept. " +
	"Check that --kapacitor-url is the Kapacitor whose tasks use this daemon; if the task is really gone, resolve its incidents in Squadcast, " +
	"then drop its state with `kapacitor-squadcast state drop --task TASK` while the daemon is stopped"

// TestDeletedTaskOtherKapacitor: a task listed by one Kapacitor is not
// resolved while another (a new server ID, with no task) answers at the
// URL, however many checks lack it; that is logged once, with both
// identities. When the Kapacitor that listed it answers again and lacks
// it, it is resolved.
func TestDeletedTaskOtherKapacitor(t *testing.T) {
	r := newDeletedRig(t, "t")
	r.listedThenDeleted("t")
	assert.Equal(t, map[string]string{"t": deletedServerID}, r.store.listers, "recorded who listed it")
	r.kap.set(func() { r.kap.serverID = otherServerID })
	r.checks(5)
	assert.Empty(t, r.store.resolved, "another Kapacitor lacks the task")
	warned := r.logs.FilterMessage(neverListedMsg).All()
	require.Len(t, warned, 1, "logged once")
	assert.Equal(t, "t", warned[0].ContextMap()["task"])
	assert.Equal(t, otherServerID, warned[0].ContextMap()["server_id"])
	assert.Equal(t, deletedServerID, warned[0].ContextMap()["listed_by"])
	assert.Equal(t, map[string]string{"t": deletedServerID}, r.store.listers, "the record is kept")

	r.kap.set(func() { r.kap.serverID = deletedServerID })
	r.checks(1)
	assert.Empty(t, r.store.resolved, "absent from one check of its Kapacitor: the other's checks do not count")
	r.checks(1)
	assert.Equal(t, []string{"t: task t deleted"}, r.store.resolved)
	assert.Empty(t, r.store.listers, "the record is dropped with the state")
}

// TestDeletedTaskListedByNewKapacitor: a task that the other Kapacitor
// lists is recorded as its (the identity of the last lister); it counts
// as deleted only once that one lacks it.
func TestDeletedTaskListedByNewKapacitor(t *testing.T) {
	r := newDeletedRig(t, "t")
	r.listedThenDeleted("t")
	r.kap.set(func() { r.kap.serverID = otherServerID })
	r.listedThenDeleted("t")
	assert.Equal(t, map[string]string{"t": otherServerID}, r.store.listers)
	r.kap.set(func() { r.kap.serverID = deletedServerID })
	r.checks(3)
	assert.Empty(t, r.store.resolved, "the first Kapacitor is no longer the one that last listed it")
	r.kap.set(func() { r.kap.serverID = otherServerID })
	r.checks(2)
	assert.Equal(t, []string{"t: task t deleted"}, r.store.resolved)
}

// TestDeletedTaskNeverListed: a saved task that no check ever saw listed
// (state from before the records, or a task deleted before the first
// check) is kept, and logged once with the advice.
func TestDeletedTaskNeverListed(t *testing.T) {
	r := newDeletedRig(t, "t", "cpu")
	r.kap.tasks["cpu"] = "enabled"
	r.checks(6)
	assert.Empty(t, r.store.resolved)
	warned := r.logs.FilterMessage(neverListedMsg).All()
	require.Len(t, warned, 1, "logged once")
	assert.Equal(t, "t", warned[0].ContextMap()["task"])
	assert.Equal(t, deletedServerID, warned[0].ContextMap()["server_id"])
	assert.Equal(t, "", warned[0].ContextMap()["listed_by"])
	assert.Contains(t, warned[0].Message, "kapacitor-squadcast state drop --task")
}

// TestDeletedTaskIdentityUnreadable: a check whose identity cannot be
// read (an error, no server_id, one that is not a UUID, the nil UUID),
// or changes between its start and end, or whose records cannot be read
// or written, fails: nothing is resolved.
func TestDeletedTaskIdentityUnreadable(t *testing.T) {
	answer := func(body string) func(r *deletedRig) {
		return func(r *deletedRig) {
			r.kap.vars = func(w http.ResponseWriter) bool { _, _ = w.Write([]byte(body)); return true }
		}
	}
	for _, tc := range []struct {
		name  string
		setup func(r *deletedRig)
	}{
		{"error status", func(r *deletedRig) {
			r.kap.vars = func(w http.ResponseWriter) bool { http.Error(w, "no", http.StatusNotFound); return true }
		}},
		{"no server_id", answer(`{"cluster_id":"98f2dedc-aed2-4a18-b9e9-60aea2c9294d"}`)},
		{"empty server_id", answer(`{"server_id":""}`)},
		{"nil uuid", answer(`{"server_id":"00000000-0000-0000-0000-000000000000"}`)},
		{"not a uuid", answer(`{"server_id":"kapacitor-1"}`)},
		{"not JSON", answer(`<html>proxy`)},
		{"changes during the check", func(r *deletedRig) {
			var n atomic.Int64
			r.kap.vars = func(w http.ResponseWriter) bool {
				id := deletedServerID
				if n.Add(1)%2 == 0 {
					id = otherServerID
				}
				_, _ = w.Write([]byte(`{"server_id":"` + id + `"}`))
				return true
			}
		}},
		{"records unreadable", func(r *deletedRig) {
			r.w.listers = nil // as a new daemon
			r.store.listerErr = errors.New("disk on fire")
		}},
		{"records unwritable", func(r *deletedRig) {
			r.kap.tasks["new"] = "enabled"
			r.store.listerErr = errors.New("disk on fire")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newDeletedRig(t, "t")
			r.listedThenDeleted("t")
			r.kap.set(func() { tc.setup(r) })
			r.checks(4)
			assert.Empty(t, r.store.resolved)
			assert.Empty(t, r.counted)
		})
	}
}

// TestDeletedTaskRecordsSurviveRestart: the record of who listed a task
// is in the outbox file: a daemon started again on it resolves a task
// that its predecessor saw listed and Kapacitor then lost; on a file
// without the record (an older daemon's) nothing is resolved. A record is
// written only when it changes, and that of a task neither listed nor
// saved is forgotten.
func TestDeletedTaskRecordsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	open := func(name string) *outbox.DB {
		db, err := outbox.Open(filepath.Join(dir, name), outbox.Options{})
		require.NoError(t, err)
		t.Cleanup(func() { db.Close() })
		return db
	}
	first := newDeletedRig(t, "t")
	first.store.db = open("a.db")
	first.kap.set(func() { first.kap.tasks["t"], first.kap.tasks["x"] = "enabled", "disabled" })
	first.checks(3)
	got, err := first.store.db.Listers()
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"t": deletedServerID, "x": deletedServerID}, got)
	assert.Equal(t, 1, first.store.writes, "written by the first check only")
	first.kap.set(func() { delete(first.kap.tasks, "x") })
	first.checks(1)
	got, err = first.store.db.Listers()
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"t": deletedServerID}, got, "x is neither listed nor saved: forgotten")
	assert.Equal(t, 2, first.store.writes)
	require.NoError(t, first.store.db.Close())

	// A restarted daemon, Kapacitor having lost the task meanwhile.
	again := newDeletedRig(t, "t")
	again.store.db = open("a.db")
	again.checks(1)
	assert.Empty(t, again.store.resolved)
	again.checks(1)
	assert.Equal(t, []string{"t: task t deleted"}, again.store.resolved)

	// The same on a file without records.
	old := newDeletedRig(t, "t")
	old.store.db = open("old.db")
	old.checks(4)
	assert.Empty(t, old.store.resolved)
	assert.Len(t, old.logs.FilterMessage(neverListedMsg).All(), 1)
}

// TestIsServerID: the forms of Kapacitor's server ID that count.
func TestIsServerID(t *testing.T) {
	assert.True(t, isServerID(deletedServerID))
	assert.True(t, isServerID("C33E93CC-A007-4CF7-AF6F-84E7C50A9B6A"))
	for _, s := range []string{"", "00000000-0000-0000-0000-000000000000", "c33e93cc-a007-4cf7-af6f-84e7c50a9b6", "c33e93cca007-4cf7-af6f-84e7c50a9b6a0",
		"g33e93cc-a007-4cf7-af6f-84e7c50a9b6a", "c33e93cc-a007-4cf7-af6f-84e7c50a9b6a "} {
		assert.False(t, isServerID(s), s)
	}
}

// TestDeletedTaskNothingSaved: with no saved state, checks still record
// who lists each task (a task may save state and be deleted before the
// next check), and a Kapacitor that cannot be read is no warning: there
// is nothing to resolve.
func TestDeletedTaskNothingSaved(t *testing.T) {
	r := newDeletedRig(t)
	r.kap.tasks["cpu"] = "enabled"
	r.checks(1)
	assert.Equal(t, map[string]string{"cpu": deletedServerID}, r.store.listers)
	r.srv.Close()
	r.checks(3)
	assert.Zero(t, r.logs.FilterLevelExact(zapcore.WarnLevel).Len())
	assert.Equal(t, 3, r.logs.FilterMessage("checked for deleted tasks: no task saved alert state; Kapacitor's task list cannot be read").Len())
}
