package outbox

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// TestStateSaveAndLoad: a node's changes are applied in order, groups put
// and deleted, and another node's state is apart.
func TestStateSaveAndLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), File)
	d := openTest(t, path)
	_, found, err := d.LoadState("cpu", "squadcast2")
	require.NoError(t, err)
	assert.False(t, found)
	a := GroupState{Group: "host=a", Level: LevelWarning, FirstTriggered: 10, LastTriggered: 10, ID: "cpu:host=a"}
	b := GroupState{Group: "host=b", Level: LevelCritical, FirstTriggered: 11, LastTriggered: 12, ID: "b is down"}
	require.NoError(t, d.Commit(&Batch{State: []*StateChange{
		{Task: "cpu", Node: "squadcast2", AsOf: 11, Put: []GroupState{a, b}},
		{Task: "mem", Node: "squadcast2", AsOf: 5, Put: []GroupState{b}},
	}}))
	require.NoError(t, d.Commit(&Batch{State: []*StateChange{{Task: "cpu", Node: "squadcast2", AsOf: 12, Delete: []string{"host=a"}}}}))
	require.NoError(t, d.Close())

	d = openTest(t, path)
	ns, found, err := d.LoadState("cpu", "squadcast2")
	require.NoError(t, err)
	require.True(t, found)
	assert.Equal(t, NodeState{AsOf: 12, Groups: []GroupState{b}}, ns)
	ns, found, err = d.LoadState("mem", "squadcast2")
	require.NoError(t, err)
	require.True(t, found)
	assert.EqualValues(t, 5, ns.AsOf)
}

// TestStateRecords: group records round trip, store the default id's
// group key once, read version 1, and refuse what is not a record.
func TestStateRecords(t *testing.T) {
	for _, tc := range []struct {
		g    GroupState
		size int // encoded bytes, 0 to skip
	}{
		{GroupState{Group: "host=a", Level: LevelInfo, FirstTriggered: -5, LastTriggered: 1 << 62}, 0},
		{GroupState{Group: "host=é", Level: LevelCritical, ID: "cpu:host=é"}, 3 + 1 + 1 + 4},
		{GroupState{Group: "host=b", Level: LevelWarning, FirstTriggered: 1 << 60, LastTriggered: 1<<60 + 5e9, ID: "cpu:host=b"}, 3 + 9 + 5 + 4},
		{GroupState{Group: "host=c", Level: LevelWarning, FirstTriggered: 7, LastTriggered: 3, ID: "host=c is down"}, 0},
		{GroupState{Group: "", Level: LevelCritical, FirstTriggered: 1, LastTriggered: 2, ID: "nil"}, 0},
		{GroupState{Group: "x", Level: LevelCritical, FirstTriggered: math.MinInt64, LastTriggered: math.MaxInt64, ID: "x"}, 0},
	} {
		b := encodeGroup(&tc.g)
		if tc.size > 0 {
			assert.Len(t, b, tc.size, "%s: the id's group key is not stored", tc.g.ID)
		}
		got, err := decodeGroup(tc.g.Group, b)
		require.NoError(t, err)
		assert.Equal(t, tc.g, got)
	}
	// Version 1: level, first, last, the whole id.
	got, err := decodeGroup("host=a", []byte{1, LevelCritical, 10, 20, 'c', 'p', 'u'})
	require.NoError(t, err)
	assert.Equal(t, GroupState{Group: "host=a", Level: LevelCritical, FirstTriggered: 5, LastTriggered: 10, ID: "cpu"}, got)
	for _, b := range [][]byte{nil, {1}, {2, 3}, {1, 0}, {1, 3, 0x80}, {2, 3}, {2, 3, 4, 0, 0}, {3, 3, 0, 0, 0}, {2, 3, 0, 0x80}} {
		_, err := decodeGroup("g", b)
		assert.Error(t, err, "%v", b)
	}
}

// TestStateCorruptRecord: a record that cannot be decoded fails the load
// with an error naming the task, the node and the group.
func TestStateCorruptRecord(t *testing.T) {
	d := openTest(t, filepath.Join(t.TempDir(), File))
	require.NoError(t, d.Commit(&Batch{State: []*StateChange{{Task: "cpu", Node: "squadcast2", AsOf: 1,
		Put: []GroupState{{Group: "host=a", Level: LevelCritical, ID: "x"}}}}}))
	require.NoError(t, d.update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketState).Bucket(nodeKey("cpu", "squadcast2")).Put([]byte("ghost=b"), []byte{1, 9})
	}))
	_, _, err := d.LoadState("cpu", "squadcast2")
	assert.ErrorContains(t, err, `load alert state of task cpu node squadcast2: group "host=b": bad level 9`)
}

// TestStateRefused: a state change that bbolt refuses (a group name over
// its key limit: MaxGroupLen) fails the transaction with a *StateError naming it, and
// nothing of the batch is written.
func TestStateRefused(t *testing.T) {
	d := openTest(t, filepath.Join(t.TempDir(), File))
	err := d.Commit(&Batch{
		Ops: []Op{{Kind: OpAppend, Seq: d.NextSeq(), Data: record(t, "a", 1)}},
		State: []*StateChange{{Task: "ok", Node: "n"}, {Task: "t", Node: "n",
			Put: []GroupState{{Group: strings.Repeat("g", MaxGroupLen+1), Level: LevelCritical}}}},
	})
	var se *StateError
	require.True(t, errors.As(err, &se), "%v", err)
	assert.Equal(t, 1, se.Index)
	assert.ErrorContains(t, err, "key too large")
	assert.Zero(t, d.Pending())
}

// TestStateLeavesFilled: groups added in order fill the state's pages
// before they split (bbolt's default splits them half full).
func TestStateLeavesFilled(t *testing.T) {
	d := openTest(t, filepath.Join(t.TempDir(), File))
	for i := range 300 {
		c := &StateChange{Task: "cpu", Node: "squadcast2", AsOf: int64(i)}
		for j := range 10 {
			g := fmt.Sprintf("host=host-%07d", i*10+j)
			c.Put = append(c.Put, GroupState{Group: g, Level: LevelCritical, FirstTriggered: 1, LastTriggered: 2, ID: "cpu:" + g})
		}
		require.NoError(t, d.Commit(&Batch{State: []*StateChange{c}}))
	}
	require.NoError(t, d.view(func(tx *bolt.Tx) error {
		st := tx.Bucket(bucketState).Bucket(nodeKey("cpu", "squadcast2")).Stats()
		assert.Equal(t, 3000+1, st.KeyN)
		assert.Greater(t, float64(st.LeafInuse)/float64(st.LeafAlloc), 0.8, "%+v", st)
		return nil
	}))
}

// TestStateOptionsAndDrop: a node's options are saved with a change that
// gives them and kept by changes that do not; the summaries do not count
// them as corrupt; Nodes lists every node without reading its groups; a
// Drop change deletes the node's whole state in the transaction of the
// events before it, and dropping a node that saved none is no error.
func TestStateOptionsAndDrop(t *testing.T) {
	path := filepath.Join(t.TempDir(), File)
	d := openTest(t, path)
	a := GroupState{Group: "host=a", Level: LevelCritical, FirstTriggered: 1, LastTriggered: 2, ID: "cpu:host=a"}
	require.NoError(t, d.Commit(&Batch{State: []*StateChange{
		{Task: "cpu", Node: "squadcast2", AsOf: 2, Put: []GroupState{a}, Options: []byte("opts-1")},
		{Task: "mem", Node: "squadcast3", AsOf: 3, Put: []GroupState{a}},
	}}))
	require.NoError(t, d.Commit(&Batch{State: []*StateChange{{Task: "cpu", Node: "squadcast2", AsOf: 4}}}))
	ns, found, err := d.LoadState("cpu", "squadcast2")
	require.NoError(t, err)
	require.True(t, found)
	assert.Equal(t, NodeState{AsOf: 4, Groups: []GroupState{a}, Options: []byte("opts-1")}, ns, "a change without options keeps them")
	ns, _, err = d.LoadState("mem", "squadcast3")
	require.NoError(t, err)
	assert.Nil(t, ns.Options, "a node saved without options")
	sums, err := d.States()
	require.NoError(t, err)
	require.Len(t, sums, 2)
	assert.Zero(t, sums[0].Corrupt, "the options record is not corrupt")
	nodes, err := d.Nodes()
	require.NoError(t, err)
	assert.Equal(t, [][2]string{{"cpu", "squadcast2"}, {"mem", "squadcast3"}}, nodes)

	require.NoError(t, d.Commit(&Batch{
		Ops: []Op{{Kind: OpAppend, Seq: d.NextSeq(), Data: record(t, "a", 1)}},
		State: []*StateChange{{Task: "cpu", Node: "squadcast2", Drop: true, Put: []GroupState{a}},
			{Task: "gone", Node: "squadcast1", Drop: true}},
	}))
	assert.Equal(t, 1, d.Pending())
	_, found, err = d.LoadState("cpu", "squadcast2")
	require.NoError(t, err)
	assert.False(t, found, "dropped, Put ignored")
	nodes, err = d.Nodes()
	require.NoError(t, err)
	assert.Equal(t, [][2]string{{"mem", "squadcast3"}}, nodes, "a dropped node that saved nothing is not created")
}
