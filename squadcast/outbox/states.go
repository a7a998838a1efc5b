package outbox

import (
	"bytes"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// This file reads and deletes the saved alert state of many task nodes at
// once, for the state commands (list and drop), which open the file while
// the daemon is stopped. state.go reads and writes one node's.

// NodeSummary describes the saved alert state of one task node.
type NodeSummary struct {
	Task, Node string
	// AsOf is the newest point time (ns) the state reflects, saved with
	// each change of the node's state; 0 when the node saved none.
	AsOf int64
	// Groups counts the node's alerting groups; Critical, Warning and Info
	// count them by level.
	Groups                  int
	Critical, Warning, Info int
	// Corrupt counts the node's records that cannot be read. The daemon
	// loads none of such a node's state: the node starts from OK.
	Corrupt int
}

// TaskNode is the saved alert state of one task node, with its groups.
type TaskNode struct {
	NodeSummary
	// States are the node's alerting groups, in the order of their names
	// (bytewise); a corrupt record is counted, not listed.
	States []GroupState
}

// States returns a summary of the saved alert state of every task node,
// ordered by task, then node.
func (d *DB) States() ([]NodeSummary, error) {
	var out []NodeSummary
	err := d.eachNode(nil, func(task, node string, b *bolt.Bucket) error {
		tn, err := readNode(task, node, b, false)
		out = append(out, tn.NodeSummary)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list alert state in outbox %s: %w", d.path, err)
	}
	return out, nil
}

// TaskNodes returns the saved alert state of every node of task, ordered
// by node; none when the task saved no state.
func (d *DB) TaskNodes(task string) ([]TaskNode, error) {
	var out []TaskNode
	err := d.eachNode(taskPrefix(task), func(_, node string, b *bolt.Bucket) error {
		tn, err := readNode(task, node, b, true)
		out = append(out, tn)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list alert state of task %s in outbox %s: %w", task, d.path, err)
	}
	return out, nil
}

// DropState deletes the saved alert state of a task node, or, when node
// is "", of every node of the task, and returns how many nodes it
// deleted. A node whose state is deleted starts from OK the next time its
// task starts (unless Kapacitor restores a snapshot of it).
func (d *DB) DropState(task, node string) (nodes int, err error) {
	err = d.updateUnjournaled(func(tx *bolt.Tx) error {
		all := tx.Bucket(bucketState)
		if all == nil {
			return nil
		}
		var keys [][]byte
		if node != "" {
			if all.Bucket(nodeKey(task, node)) != nil {
				keys = append(keys, nodeKey(task, node))
			}
		} else {
			prefix := taskPrefix(task)
			c := all.Cursor()
			for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
				if v == nil { // a node's bucket
					keys = append(keys, bytes.Clone(k))
				}
			}
		}
		for _, k := range keys {
			if err := all.DeleteBucket(k); err != nil {
				return err
			}
		}
		nodes = len(keys)
		return forgetListerIfNoState(tx, task)
	})
	if err != nil {
		return 0, fmt.Errorf("drop alert state of task %s in outbox %s: %w", task, d.path, err)
	}
	return nodes, nil
}

// Nodes returns the task and node of every node that saved alert state,
// ordered by task, then node. It reads no group: it is cheap however many
// groups the nodes hold.
func (d *DB) Nodes() ([][2]string, error) {
	var out [][2]string
	err := d.eachNode(nil, func(task, node string, _ *bolt.Bucket) error {
		out = append(out, [2]string{task, node})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list alert state in outbox %s: %w", d.path, err)
	}
	return out, nil
}

// taskPrefix is the start of the keys of a task's nodes.
func taskPrefix(task string) []byte { return []byte(task + "\x00") }

// eachNode calls fn with each node's bucket whose key starts with prefix
// (every node for nil), in key order: by task, then node.
func (d *DB) eachNode(prefix []byte, fn func(task, node string, b *bolt.Bucket) error) error {
	return d.view(func(tx *bolt.Tx) error {
		all := tx.Bucket(bucketState)
		if all == nil {
			return nil
		}
		c := all.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if v != nil {
				continue // not a node's bucket (none is written)
			}
			task, node, _ := bytes.Cut(k, []byte{0})
			if err := fn(string(task), string(node), all.Bucket(k)); err != nil {
				return err
			}
		}
		return nil
	})
}

// readNode reads a node's records, keeping the groups when withGroups.
// A record that cannot be read is counted in Corrupt; the error is only
// bbolt's.
func readNode(task, node string, b *bolt.Bucket, withGroups bool) (TaskNode, error) {
	tn := TaskNode{NodeSummary: NodeSummary{Task: task, Node: node}}
	s := &tn.NodeSummary
	err := b.ForEach(func(k, v []byte) error {
		switch {
		case len(k) == 1 && k[0] == 'm' && len(v) == 8:
			s.AsOf = int64(binary.BigEndian.Uint64(v))
			return nil
		case len(k) == 1 && k[0] == 'o' && v != nil:
			return nil // the node's options (StateChange.Options)
		case len(k) >= 1 && k[0] == 'g' && v != nil:
			g, err := decodeGroup(string(k[1:]), v)
			if err != nil {
				break
			}
			s.Groups++
			switch g.Level {
			case LevelCritical:
				s.Critical++
			case LevelWarning:
				s.Warning++
			case LevelInfo:
				s.Info++
			}
			if withGroups {
				tn.States = append(tn.States, g)
			}
			return nil
		}
		s.Corrupt++
		return nil
	})
	return tn, err
}
