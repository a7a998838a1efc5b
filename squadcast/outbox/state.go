package outbox

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// Alert-state levels as stored: a group is stored only while it alerts.
const (
	LevelInfo     = 1
	LevelWarning  = 2
	LevelCritical = 3
)

// MaxGroupLen is the longest group name whose state can be stored (a key
// of the file is at most 32 KiB). StateChange.Put and Delete must hold no
// longer name: Commit fails on one.
const MaxGroupLen = bolt.MaxKeySize - 1

// GroupState is the saved alert state of one alerting group.
type GroupState struct {
	// Group is Kapacitor's group key ("" without groupBy).
	Group string
	// Level is LevelInfo, LevelWarning or LevelCritical.
	Level int8
	// FirstTriggered and LastTriggered are point times (ns): when the
	// group left OK, and its last event.
	FirstTriggered int64
	LastTriggered  int64
	// ID is the alert id of the group's last event.
	ID string
}

// NodeState is the saved alert state of one task node.
type NodeState struct {
	// AsOf is the newest point time (ns) the state reflects.
	AsOf int64
	// Groups are the node's alerting groups.
	Groups []GroupState
	// Options are the node's options as its StateChange saved them, opaque
	// here; nil when none were saved (a file written before they were).
	Options []byte
}

// StateChange is the changes of one node's state since its last save.
type StateChange struct {
	Task, Node string
	AsOf       int64
	// Put are the groups that alert now; Delete names those that no
	// longer do (they are OK again).
	Put    []GroupState
	Delete []string
	// Options, when not nil, replace the node's saved options.
	Options []byte
	// Drop deletes the node's whole saved state (groups, options and all)
	// instead: the other fields but Task and Node are ignored.
	Drop bool
}

func nodeKey(task, node string) []byte { return []byte(task + "\x00" + node) }

// LoadState returns the saved state of a task node; found is false when
// there is none.
func (d *DB) LoadState(task, node string) (ns NodeState, found bool, err error) {
	err = d.view(func(tx *bolt.Tx) error {
		nodes := tx.Bucket(bucketState)
		if nodes == nil {
			return nil
		}
		b := nodes.Bucket(nodeKey(task, node))
		if b == nil {
			return nil
		}
		found = true
		return b.ForEach(func(k, v []byte) error {
			switch {
			case len(k) == 1 && k[0] == 'o':
				ns.Options = bytes.Clone(v)
			case len(k) == 1 && k[0] == 'm':
				if len(v) != 8 {
					return fmt.Errorf("meta record of %d bytes, want 8", len(v))
				}
				ns.AsOf = int64(binary.BigEndian.Uint64(v))
			case len(k) >= 1 && k[0] == 'g':
				g, err := decodeGroup(string(k[1:]), v)
				if err != nil {
					return fmt.Errorf("group %q: %w", k[1:], err)
				}
				ns.Groups = append(ns.Groups, g)
			default:
				return fmt.Errorf("unknown key %q", k)
			}
			return nil
		})
	})
	if err != nil {
		return NodeState{}, false, fmt.Errorf("load alert state of task %s node %s: %w", task, node, err)
	}
	return ns, found, nil
}

// write writes the change in tx. Its errors name the task and node.
func (c *StateChange) write(tx *bolt.Tx) error {
	if err := c.writeIn(tx); err != nil {
		return fmt.Errorf("save alert state of task %s node %s: %w", c.Task, c.Node, err)
	}
	return nil
}

func (c *StateChange) writeIn(tx *bolt.Tx) error {
	if c.Drop {
		nodes := tx.Bucket(bucketState)
		if nodes == nil || nodes.Bucket(nodeKey(c.Task, c.Node)) == nil {
			return nil
		}
		if err := nodes.DeleteBucket(nodeKey(c.Task, c.Node)); err != nil {
			return err
		}
		return forgetListerIfNoState(tx, c.Task)
	}
	nodes, err := tx.CreateBucketIfNotExists(bucketState)
	if err != nil {
		return err
	}
	b, err := nodes.CreateBucketIfNotExists(nodeKey(c.Task, c.Node))
	if err != nil {
		return err
	}
	// Fill pages before splitting them: groups are mostly added, rarely
	// removed, and a million of them take half the pages of the default
	// half-full split (pages that count in the daemon's RSS, as bbolt reads
	// the file through a memory map).
	b.FillPercent = 1.0
	var m [8]byte
	binary.BigEndian.PutUint64(m[:], uint64(c.AsOf))
	if err := b.Put([]byte{'m'}, m[:]); err != nil {
		return err
	}
	if c.Options != nil {
		if err := b.Put([]byte{'o'}, c.Options); err != nil {
			return err
		}
	}
	var key []byte
	for i := range c.Put {
		g := &c.Put[i]
		key = append(append(key[:0], 'g'), g.Group...)
		if err := b.Put(key, encodeGroup(g)); err != nil {
			return err
		}
	}
	for _, group := range c.Delete {
		key = append(append(key[:0], 'g'), group...)
		if err := b.Delete(key); err != nil {
			return err
		}
	}
	return nil
}

// A group record, version 2 (about 16 bytes for a default id):
//
//	2, level, flags, varint first trigger time, varint last - first, id
//
// where, with flags&idEndsWithGroup, id is only the part of the alert ID
// before the group key that ends it (as the default id's "cpu:" of
// "cpu:host=a"). Version 1 (still read) was: 1, level, varint first,
// varint last, the whole id.
const (
	stateVersion    = 2
	idEndsWithGroup = 1
)

func encodeGroup(g *GroupState) []byte {
	id := g.ID
	var flags byte
	if g.Group != "" && strings.HasSuffix(id, g.Group) {
		flags |= idEndsWithGroup
		id = id[:len(id)-len(g.Group)]
	}
	b := make([]byte, 0, 3+2*binary.MaxVarintLen64+len(id))
	b = append(b, stateVersion, byte(g.Level), flags)
	b = binary.AppendVarint(b, g.FirstTriggered)
	b = binary.AppendVarint(b, g.LastTriggered-g.FirstTriggered)
	return append(b, id...)
}

func decodeGroup(group string, b []byte) (GroupState, error) {
	if len(b) < 2 {
		return GroupState{}, fmt.Errorf("record of %d bytes is too short", len(b))
	}
	version := b[0]
	if version != 1 && version != stateVersion {
		return GroupState{}, fmt.Errorf("record version %d, want %d", b[0], stateVersion)
	}
	g := GroupState{Group: group, Level: int8(b[1])}
	if g.Level < LevelInfo || g.Level > LevelCritical {
		return GroupState{}, fmt.Errorf("bad level %d", b[1])
	}
	b = b[2:]
	var flags byte
	if version == stateVersion {
		if len(b) == 0 {
			return GroupState{}, errors.New("flags missing")
		}
		flags, b = b[0], b[1:]
		if flags&^idEndsWithGroup != 0 {
			return GroupState{}, fmt.Errorf("unknown flags %#x", flags)
		}
	}
	var n int
	if g.FirstTriggered, n = binary.Varint(b); n <= 0 {
		return GroupState{}, errors.New("bad first-trigger time")
	}
	b = b[n:]
	if g.LastTriggered, n = binary.Varint(b); n <= 0 {
		return GroupState{}, errors.New("bad last-trigger time")
	}
	if version == stateVersion {
		g.LastTriggered += g.FirstTriggered
	}
	g.ID = string(b[n:])
	if flags&idEndsWithGroup != 0 {
		g.ID += group
	}
	return g, nil
}
