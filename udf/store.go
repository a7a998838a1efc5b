package udf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// StateStore keeps the alert state of every task node on disk (a bbolt
// file in the data dir), so that a restarted daemon, or a task re-enabled
// after it restarted, carries on where it was: no repeated trigger, no
// missed recovery. Only alerting groups are stored (an absent group is OK),
// and a node's state is written only when it changes, i.e. with its events.
//
// The daemon keeps it in the outbox's file (see NewStateStore), so that a
// burst's events and its state changes are written in one transaction,
// with one sync to disk (StateFlusher). OpenStateStore gives it a file of
// its own, for publishers that keep no outbox.
//
// Layout: bucket "alert_state" holds one bucket per node, named TaskID NUL
// NodeID; in it, key "m" holds the node's meta (the newest point time it
// saved) and keys "g"+group hold groups.
type StateStore struct {
	db  *bolt.DB
	own bool // Close closes db
}

var bucketNodes = []byte("alert_state")

const stateVersion = 2

// OpenStateStore opens (creating if needed) a state file of its own at path.
func OpenStateStore(path string) (*StateStore, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("open alert state %s: locked by another process (is another daemon using this data dir?)", path)
		}
		return nil, fmt.Errorf("open alert state %s: %w", path, err)
	}
	s, err := NewStateStore(db)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open alert state %s: %w", path, err)
	}
	s.own = true
	return s, nil
}

// NewStateStore keeps the alert state in db, an open bbolt file that holds
// other buckets too (the outbox's): it creates its bucket if needed. Close
// leaves db open.
func NewStateStore(db *bolt.DB) (*StateStore, error) {
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketNodes)
		return err
	}); err != nil {
		return nil, fmt.Errorf("create the alert state bucket: %w", err)
	}
	return &StateStore{db: db}, nil
}

// Close closes the file, if the store has one of its own.
func (s *StateStore) Close() error {
	if !s.own {
		return nil
	}
	return s.db.Close()
}

// savedGroup is one stored group.
type savedGroup struct {
	group string
	state groupState
}

// nodeState is what is stored for one task node.
type nodeState struct {
	// asOf is the newest point time (ns) the state reflects.
	asOf   int64
	groups []savedGroup
}

func nodeKey(task, node string) []byte { return []byte(task + "\x00" + node) }

// load returns the stored state of a node; found is false when there is none.
func (s *StateStore) load(task, node string) (ns nodeState, found bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketNodes).Bucket(nodeKey(task, node))
		if b == nil {
			return nil
		}
		found = true
		return b.ForEach(func(k, v []byte) error {
			switch {
			case len(k) == 1 && k[0] == 'm':
				if len(v) != 8 {
					return fmt.Errorf("meta record of %d bytes, want 8", len(v))
				}
				ns.asOf = int64(binary.BigEndian.Uint64(v))
			case len(k) >= 1 && k[0] == 'g':
				group := string(k[1:])
				st, err := decodeGroup(group, v)
				if err != nil {
					return fmt.Errorf("group %q: %w", k[1:], err)
				}
				ns.groups = append(ns.groups, savedGroup{group: group, state: st})
			default:
				return fmt.Errorf("unknown key %q", k)
			}
			return nil
		})
	})
	if err != nil {
		return nodeState{}, false, fmt.Errorf("load alert state of task %s node %s: %w", task, node, err)
	}
	return ns, found, nil
}

// stateChange is the changes of one node's groups since its last save,
// encoded when they were taken (the handler changes its groups on, while
// the change waits for a transaction).
type stateChange struct {
	store      *StateStore
	task, node string
	asOf       int64
	put        [][2][]byte // key, record
	del        [][]byte    // keys
}

// change takes the changes of the groups in dirty: those in groups are
// stored, the others are removed (they are OK again). A group whose name
// is too long for a bbolt key (over 32 KiB) cannot be stored: it is left
// out, and counted in tooLong.
func (s *StateStore) change(task, node string, asOf int64, groups map[string]*groupState, dirty map[string]struct{}) (c *stateChange, tooLong int) {
	c = &stateChange{store: s, task: task, node: node, asOf: asOf}
	for g := range dirty {
		if 1+len(g) > bolt.MaxKeySize {
			tooLong++
			continue
		}
		key := append([]byte{'g'}, g...)
		// A group kept at OK (for its .flapping() history) is stored as
		// absent: only alerting groups are.
		if st, ok := groups[g]; ok && st.level != OK {
			c.put = append(c.put, [2][]byte{key, encodeGroup(g, st)})
		} else {
			c.del = append(c.del, key)
		}
	}
	return c, tooLong
}

// write writes the change in tx, a writable transaction of the store's
// file. Its errors name the task and node.
func (c *stateChange) write(tx *bolt.Tx) error {
	if err := c.writeIn(tx); err != nil {
		return c.err(err)
	}
	return nil
}

func (c *stateChange) writeIn(tx *bolt.Tx) error {
	if tx.DB() != c.store.db {
		return errors.New("the alert state is kept in another file than the events (HandlerConfig.State is not the publisher's)")
	}
	nodes := tx.Bucket(bucketNodes)
	if nodes == nil {
		return errors.New("the file has no alert state bucket")
	}
	b, err := nodes.CreateBucketIfNotExists(nodeKey(c.task, c.node))
	if err != nil {
		return err
	}
	// Fill pages before splitting them: groups are mostly added, rarely
	// removed, and a million of them take half the pages of the default
	// half-full split (pages that count in the daemon's RSS, as bbolt reads
	// the file through a memory map).
	b.FillPercent = 1.0
	var m [8]byte
	binary.BigEndian.PutUint64(m[:], uint64(c.asOf))
	if err := b.Put([]byte{'m'}, m[:]); err != nil {
		return err
	}
	for _, kv := range c.put {
		if err := b.Put(kv[0], kv[1]); err != nil {
			return err
		}
	}
	for _, k := range c.del {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// save writes a change in a transaction of its own.
func (s *StateStore) save(c *stateChange) error {
	if err := s.db.Update(c.writeIn); err != nil {
		return c.err(err)
	}
	return nil
}

func (c *stateChange) err(err error) error {
	return fmt.Errorf("save alert state of task %s node %s: %w", c.task, c.node, err)
}

// A group record, version 2 (about 16 bytes for a default id):
//
//	2, level, flags, varint first trigger time, varint last - first, id
//
// where, with flags&idEndsWithGroup, id is only the part of the alert ID
// before the group key that ends it (as the default id's "cpu:" of
// "cpu:host=a"). Version 1 (still read) was: 1, level, varint first,
// varint last, the whole id.
const idEndsWithGroup = 1

func encodeGroup(group string, st *groupState) []byte {
	id := st.alertID()
	var flags byte
	if group != "" && strings.HasSuffix(id, group) {
		flags |= idEndsWithGroup
		id = id[:len(id)-len(group)]
	}
	b := make([]byte, 0, 3+2*binary.MaxVarintLen64+len(id))
	b = append(b, stateVersion, byte(st.level), flags)
	b = binary.AppendVarint(b, st.firstTriggered)
	b = binary.AppendVarint(b, st.lastTriggered-st.firstTriggered)
	return append(b, id...)
}

func decodeGroup(group string, b []byte) (groupState, error) {
	if len(b) < 2 {
		return groupState{}, fmt.Errorf("record of %d bytes is too short", len(b))
	}
	version := b[0]
	if version != 1 && version != stateVersion {
		return groupState{}, fmt.Errorf("record version %d, want %d", b[0], stateVersion)
	}
	st := groupState{level: Level(b[1])}
	if st.level <= OK || st.level > Critical {
		return groupState{}, fmt.Errorf("bad level %d", b[1])
	}
	b = b[2:]
	var flags byte
	if version == stateVersion {
		if len(b) == 0 {
			return groupState{}, errors.New("flags missing")
		}
		flags, b = b[0], b[1:]
		if flags&^idEndsWithGroup != 0 {
			return groupState{}, fmt.Errorf("unknown flags %#x", flags)
		}
	}
	var n int
	if st.firstTriggered, n = binary.Varint(b); n <= 0 {
		return groupState{}, errors.New("bad first-trigger time")
	}
	b = b[n:]
	if st.lastTriggered, n = binary.Varint(b); n <= 0 {
		return groupState{}, errors.New("bad last-trigger time")
	}
	if version == stateVersion {
		st.lastTriggered += st.firstTriggered
	}
	id := string(b[n:])
	if flags&idEndsWithGroup != 0 {
		id += group
	}
	st.setAlertID(id)
	return st, nil
}

// statePath is the state file's name in a data dir.
const stateFile = "state.db"

// OpenDataDirState opens the state store in a data dir.
func OpenDataDirState(dataDir string) (*StateStore, error) {
	if fi, err := os.Stat(dataDir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("data dir %s is not a directory", dataDir)
	}
	return OpenStateStore(dataDir + string(os.PathSeparator) + stateFile)
}
