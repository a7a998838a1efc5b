package outbox

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// saveStates saves the state of two tasks: cpu (two nodes, three groups,
// and a node with none) and mem (one node).
func saveStates(t *testing.T, d *DB) {
	t.Helper()
	a := GroupState{Group: "host=a", Level: LevelCritical, FirstTriggered: 10, LastTriggered: 20, ID: "cpu:host=a"}
	b := GroupState{Group: "host=b", Level: LevelWarning, FirstTriggered: 11, LastTriggered: 11, ID: "b is hot"}
	c := GroupState{Group: "", Level: LevelInfo, FirstTriggered: 12, LastTriggered: 12, ID: "cpu:nil"}
	require.NoError(t, d.Commit(&Batch{State: []*StateChange{
		{Task: "cpu", Node: "squadcast2", AsOf: 30, Put: []GroupState{b, a}},
		{Task: "cpu", Node: "squadcast5", AsOf: 12, Put: []GroupState{c}},
		{Task: "cpu", Node: "squadcast9", AsOf: 7},
		{Task: "cpux", Node: "squadcast2", AsOf: 1, Put: []GroupState{a}},
		{Task: "mem", Node: "squadcast3", AsOf: 40, Put: []GroupState{a}},
	}}))
}

// TestStates: the summary of every node, ordered by task and node, with
// its groups counted by level; a task's nodes with their groups; and a
// task named like the start of another is apart.
func TestStates(t *testing.T) {
	d := openTest(t, filepath.Join(t.TempDir(), File))
	got, err := d.States()
	require.NoError(t, err)
	assert.Empty(t, got, "a new outbox")
	saveStates(t, d)

	got, err = d.States()
	require.NoError(t, err)
	assert.Equal(t, []NodeSummary{
		{Task: "cpu", Node: "squadcast2", AsOf: 30, Groups: 2, Critical: 1, Warning: 1},
		{Task: "cpu", Node: "squadcast5", AsOf: 12, Groups: 1, Info: 1},
		{Task: "cpu", Node: "squadcast9", AsOf: 7},
		{Task: "cpux", Node: "squadcast2", AsOf: 1, Groups: 1, Critical: 1},
		{Task: "mem", Node: "squadcast3", AsOf: 40, Groups: 1, Critical: 1},
	}, got)

	nodes, err := d.TaskNodes("cpu")
	require.NoError(t, err)
	require.Len(t, nodes, 3)
	assert.Equal(t, got[0], nodes[0].NodeSummary)
	assert.Equal(t, []string{"host=a", "host=b"}, groupNames(nodes[0].States))
	assert.Equal(t, GroupState{Group: "host=b", Level: LevelWarning, FirstTriggered: 11, LastTriggered: 11, ID: "b is hot"}, nodes[0].States[1])
	assert.Equal(t, []string{""}, groupNames(nodes[1].States))
	assert.Empty(t, nodes[2].States)
	nodes, err = d.TaskNodes("cp")
	require.NoError(t, err)
	assert.Empty(t, nodes)
}

func groupNames(gs []GroupState) []string {
	var names []string
	for _, g := range gs {
		names = append(names, g.Group)
	}
	return names
}

// TestStatesCorrupt: records that cannot be read are counted, not listed,
// and do not hide the node's other groups.
func TestStatesCorrupt(t *testing.T) {
	d := openTest(t, filepath.Join(t.TempDir(), File))
	saveStates(t, d)
	require.NoError(t, d.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketState).Bucket(nodeKey("mem", "squadcast3"))
		for k, v := range map[string][]byte{"ghost=b": {2, 9, 0, 0, 0}, "x": {1}, "m": {1, 2}} {
			if err := b.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	}))
	got, err := d.States()
	require.NoError(t, err)
	assert.Equal(t, NodeSummary{Task: "mem", Node: "squadcast3", Groups: 1, Critical: 1, Corrupt: 3}, got[4])
	nodes, err := d.TaskNodes("mem")
	require.NoError(t, err)
	require.Len(t, nodes, 1)
	assert.Equal(t, []string{"host=a"}, groupNames(nodes[0].States))
	assert.Equal(t, 3, nodes[0].Corrupt)
}

// TestDropState: one node, then every node of a task; the other tasks
// (cpux too) keep theirs; nothing to drop is 0 nodes; and it lasts.
func TestDropState(t *testing.T) {
	path := filepath.Join(t.TempDir(), File)
	d := openTest(t, path)
	n, err := d.DropState("cpu", "")
	require.NoError(t, err)
	assert.Zero(t, n, "a new outbox")
	saveStates(t, d)

	for _, tc := range []struct {
		task, node string
		want       int
	}{
		{"cpu", "squadcast5", 1},
		{"cpu", "squadcast5", 0},
		{"cpu", "nosuch", 0},
		{"cp", "", 0},
		{"cpu", "", 2},
		{"cpu", "", 0},
	} {
		n, err := d.DropState(tc.task, tc.node)
		require.NoError(t, err)
		assert.Equal(t, tc.want, n, "%s %s", tc.task, tc.node)
	}
	require.NoError(t, d.Close())

	d, err = Open(path, Options{ReadOnly: true})
	require.NoError(t, err)
	defer d.Close()
	got, err := d.States()
	require.NoError(t, err)
	var names []string
	for _, s := range got {
		names = append(names, s.Task+"/"+s.Node)
	}
	assert.Equal(t, []string{"cpux/squadcast2", "mem/squadcast3"}, names)
	_, found, err := d.LoadState("cpu", "squadcast2")
	require.NoError(t, err)
	assert.False(t, found)
	_, err = d.DropState("mem", "")
	assert.ErrorContains(t, err, "drop alert state of task mem in outbox "+path+": ")
}
