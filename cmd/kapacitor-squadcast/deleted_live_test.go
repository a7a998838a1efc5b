package main

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast"
)

// TestDeletedTaskConnectsWhileResolved: a task that connects again between
// the check and its resolution (ResolveTask refuses it) is logged at info,
// not resolved, and needs two more absences.
func TestDeletedTaskConnectsWhileResolved(t *testing.T) {
	r := newDeletedRig(t, "t")
	r.listedThenDeleted("t")
	r.store.resolveErr = squadcast.ErrTaskConnected
	r.checks(2)
	assert.Empty(t, r.store.resolved)
	assert.Empty(t, r.counted)
	logged := r.logs.FilterMessage("a task absent from Kapacitor's task list is connected again: its incidents are not resolved").All()
	require.Len(t, logged, 1)
	assert.Equal(t, "t", logged[0].ContextMap()["task"])
	assert.Empty(t, r.logs.FilterMessage("cannot resolve the incidents of a deleted task").All())

	r.store.resolveErr = nil
	r.checks(1)
	assert.Empty(t, r.store.resolved, "its count started again")
	r.checks(1)
	assert.Equal(t, []string{"t: task t deleted"}, r.store.resolved)
}

// TestDeletedTaskKeptAndNotWritten: the incidents left open because
// another task holds them are logged with their id and that task; a node
// whose resolution is not written yet is logged as such (not as kept),
// and its events counted.
func TestDeletedTaskKeptAndNotWritten(t *testing.T) {
	r := newDeletedRig(t, "t")
	r.store.nodes = map[string][]squadcast.NodeResolution{"t": {
		{Node: "squadcast2", Endpoint: "eu", Resolved: 1, Kept: []squadcast.HeldIncident{{ID: "cpu:host=a", Task: "t_v2"}}},
		{Node: "squadcast5", Endpoint: "eu", Resolved: 2,
			Err: fmt.Errorf("%w: %w", squadcast.ErrNotWritten, errors.New("injected disk failure"))},
	}}
	r.listedThenDeleted("t")
	r.checks(2)
	kept := r.logs.FilterMessage("left an incident of a deleted task open: another task alerts with its id").All()
	require.Len(t, kept, 1)
	assert.Equal(t, map[string]any{"task": "t", "node": "squadcast2", "id": "cpu:host=a", "held_by": "t_v2"}, kept[0].ContextMap())
	pending := r.logs.FilterMessage("the resolution of a deleted task's node is not written to the outbox yet: the write is retried, its events are delivered meanwhile, and its alert state is dropped once the write succeeds").All()
	require.Len(t, pending, 1)
	assert.Equal(t, "squadcast5", pending[0].ContextMap()["node"])
	assert.Contains(t, pending[0].ContextMap()["error"], "injected disk failure")
	assert.Empty(t, r.logs.FilterMessageSnippet("its alert state is kept").All())
	assert.Equal(t, map[string]int{"eu": 3}, r.counted)
	resolved := r.logs.FilterMessage("resolved the open incidents of a task deleted from Kapacitor and dropped its alert state").All()
	require.Len(t, resolved, 1)
	assert.EqualValues(t, 1, resolved[0].ContextMap()["nodes"], "one node dropped; the other once its write succeeds")
}
