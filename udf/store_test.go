package udf

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/influxdata/kapacitor/udf/agent"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// flushRecorder is a recorder whose Flush can fail and counts calls.
type flushRecorder struct {
	recorder
	flushes  int
	flushErr error
}

func (f *flushRecorder) Open(Destination) (Publisher, error) { return f, nil }
func (f *flushRecorder) Flush() error                        { f.flushes++; return f.flushErr }

func openStore(t *testing.T, dir string) *StateStore {
	t.Helper()
	s, err := OpenDataDirState(dir)
	require.NoError(t, err)
	return s
}

func handlerWithStore(t *testing.T, sink Sink, store *StateStore) *Handler {
	t.Helper()
	h := NewHandler(HandlerConfig{Sink: sink, State: store})
	res, err := h.Init(&agent.InitRequest{TaskID: "cpu", NodeID: "squadcast2", Options: []*agent.Option{str("crit", `"v" < 10`), str("warn", `"v" < 20`)}})
	require.NoError(t, err)
	require.True(t, res.Success, res.Error)
	return h
}

func feed(t *testing.T, h *Handler, group string, ts int64, v float64) {
	t.Helper()
	_, err := h.Point(point(group, ts, map[string]float64{"v": v}, nil))
	require.NoError(t, err)
}

// TestStateSurvivesRestart: a restarted daemon neither repeats a trigger nor
// misses a recovery, and duration and previousLevel carry on.
func TestStateSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, dir)
	rec := &flushRecorder{}
	h := handlerWithStore(t, rec, store)
	feed(t, h, "host=a", 10, 15) // WARNING
	feed(t, h, "host=b", 11, 5)  // CRITICAL
	feed(t, h, "host=c", 12, 5)  // CRITICAL
	feed(t, h, "host=c", 13, 50) // OK
	h.Flush()
	assert.Equal(t, 1, rec.flushes, "the publisher is flushed before the state is saved")
	require.Len(t, rec.Events(), 4)
	h.Close()
	require.NoError(t, store.Close())

	// The daemon restarts: a new store on the same data dir, a new connection.
	store = openStore(t, dir)
	defer store.Close()
	rec2 := &flushRecorder{}
	h = handlerWithStore(t, rec2, store)
	assert.Len(t, h.groups, 2)
	feed(t, h, "host=a", 20, 15) // still WARNING: no repeated trigger
	feed(t, h, "host=b", 21, 5)  // still CRITICAL
	feed(t, h, "host=c", 22, 50) // still OK
	assert.Empty(t, rec2.Events())
	feed(t, h, "host=a", 30, 50) // recovery
	feed(t, h, "host=b", 31, 15) // CRITICAL -> WARNING
	ev := rec2.Events()
	require.Len(t, ev, 2)
	assert.Equal(t, OK, ev[0].Level)
	assert.Equal(t, Warning, ev[0].PreviousLevel)
	assert.EqualValues(t, 20, ev[0].Duration, "duration runs from the first trigger before the restart")
	assert.Equal(t, Warning, ev[1].Level)
	assert.Equal(t, Critical, ev[1].PreviousLevel)
	assert.EqualValues(t, 20, ev[1].Duration)
}

// TestStateNotSavedBeforeEventsAreDurable: when the publisher cannot make its
// events durable, the state is not saved (a restart then repeats the events
// rather than losing them), and both are retried at the next Flush.
func TestStateNotSavedBeforeEventsAreDurable(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, dir)
	defer store.Close()
	rec := &flushRecorder{flushErr: errors.New("disk full")}
	h := handlerWithStore(t, rec, store)
	feed(t, h, "host=a", 10, 5)
	h.Flush()
	_, found, err := store.load("cpu", "squadcast2")
	require.NoError(t, err)
	assert.False(t, found, "state saved although the events were not durable")

	rec.flushErr = nil
	h.Flush()
	ns, found, err := store.load("cpu", "squadcast2")
	require.NoError(t, err)
	require.True(t, found)
	require.Len(t, ns.groups, 1)
	assert.Equal(t, Critical, ns.groups[0].state.level)
	assert.EqualValues(t, 10, ns.asOf)
	assert.Equal(t, 2, rec.flushes)

	h.Flush()
	assert.Equal(t, 2, rec.flushes, "nothing changed: Flush costs nothing")
}

func TestSnapshotRestoreNewerWins(t *testing.T) {
	store := openStore(t, t.TempDir())
	defer store.Close()

	// A task that alerted on host=a and host=b; Kapacitor snapshots it.
	h := handlerWithStore(t, &flushRecorder{}, store)
	feed(t, h, "host=a", 10, 5)
	feed(t, h, "host=b", 11, 15)
	snap, err := h.Snapshot()
	require.NoError(t, err)
	h.Flush()

	// Later host=a recovers and that is saved; the snapshot is now older.
	feed(t, h, "host=a", 20, 50)
	h.Flush()

	h2 := handlerWithStore(t, &flushRecorder{}, store)
	res, err := h2.Restore(&agent.RestoreRequest{Snapshot: snap.Snapshot})
	require.NoError(t, err)
	require.True(t, res.Success)
	assert.Len(t, h2.groups, 1, "the saved state is newer than the snapshot and wins")
	assert.Contains(t, h2.groups, "host=b")

	// With no saved state (a new data dir), the snapshot is used and saved.
	store2 := openStore(t, t.TempDir())
	defer store2.Close()
	rec := &flushRecorder{}
	h3 := handlerWithStore(t, rec, store2)
	res, err = h3.Restore(&agent.RestoreRequest{Snapshot: snap.Snapshot})
	require.NoError(t, err)
	require.True(t, res.Success)
	require.Len(t, h3.groups, 2)
	assert.Equal(t, Critical, h3.groups["host=a"].level)
	assert.Equal(t, Critical, h3.prevOf("cpu:host=a"), "previousLevel is restored too")
	h3.Flush()
	ns, found, err := store2.load("cpu", "squadcast2")
	require.NoError(t, err)
	require.True(t, found)
	assert.Len(t, ns.groups, 2)
	feed(t, h3, "host=a", 30, 5)
	assert.Empty(t, rec.Events(), "no repeated trigger after a restore")

	// A bad snapshot is ignored, never fails the task.
	res, err = h3.Restore(&agent.RestoreRequest{Snapshot: []byte(`{"version":9}`)})
	require.NoError(t, err)
	assert.True(t, res.Success)
	assert.Len(t, h3.groups, 2)
}

func TestStateStoreErrors(t *testing.T) {
	t.Run("corrupt file", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, stateFile), []byte("this is not a bbolt file, not at all, really not"), 0o600))
		_, err := OpenDataDirState(dir)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "open alert state")
		assert.Contains(t, err.Error(), stateFile)
	})
	t.Run("missing data dir", func(t *testing.T) {
		_, err := OpenDataDirState(filepath.Join(t.TempDir(), "nope"))
		assert.ErrorContains(t, err, "is not a directory")
	})
	t.Run("locked by another daemon", func(t *testing.T) {
		dir := t.TempDir()
		s := openStore(t, dir)
		defer s.Close()
		_, err := OpenDataDirState(dir)
		assert.ErrorContains(t, err, "locked by another process")
	})
	t.Run("corrupt record", func(t *testing.T) {
		dir := t.TempDir()
		s := openStore(t, dir)
		defer s.Close()
		c, _ := s.change("cpu", "squadcast2", 1, map[string]*groupState{"host=a": stateWithID(groupState{level: Critical}, "x")}, map[string]struct{}{"host=a": {}})
		require.NoError(t, s.save(c))
		require.NoError(t, s.db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketNodes).Bucket(nodeKey("cpu", "squadcast2")).Put([]byte("ghost=b"), []byte{1, 9})
		}))
		_, _, err := s.load("cpu", "squadcast2")
		assert.ErrorContains(t, err, `group "host=b": bad level 9`)
		// The task still starts, from OK, with the error logged.
		h := handlerWithStore(t, &flushRecorder{}, s)
		assert.Empty(t, h.groups)
	})
	t.Run("records round trip", func(t *testing.T) {
		for _, tc := range []struct {
			group string
			st    *groupState
			size  int // encoded bytes, 0 to skip
		}{
			{"host=a", stateWithID(groupState{level: Info, firstTriggered: -5, lastTriggered: 1 << 62}, ""), 0},
			{"host=é", stateWithID(groupState{level: Critical, firstTriggered: 0, lastTriggered: 0}, "cpu:host=é"), 3 + 1 + 1 + 4},
			{"host=b", stateWithID(groupState{level: Warning, firstTriggered: 1 << 60, lastTriggered: 1<<60 + 5e9}, "cpu:host=b"), 3 + 9 + 5 + 4},
			{"host=c", stateWithID(groupState{level: Warning, firstTriggered: 7, lastTriggered: 3}, "host=c is down"), 0},
			{"", stateWithID(groupState{level: Critical, firstTriggered: 1, lastTriggered: 2}, "nil"), 0},
			{"x", stateWithID(groupState{level: Critical, firstTriggered: math.MinInt64, lastTriggered: math.MaxInt64}, "x"), 0},
		} {
			b := encodeGroup(tc.group, tc.st)
			if tc.size > 0 {
				assert.Len(t, b, tc.size, "%s: the id's group key is not stored", tc.st.alertID())
			}
			got, err := decodeGroup(tc.group, b)
			require.NoError(t, err)
			assert.Equal(t, tc.st.alertID(), got.alertID())
			got.setAlertID(tc.st.alertID()) // the same ID, in other bytes
			assert.Equal(t, *tc.st, got)
		}
		// Version 1: level, first, last, the whole id.
		got, err := decodeGroup("host=a", []byte{1, byte(Critical), 10, 20, 'c', 'p', 'u'})
		require.NoError(t, err)
		assert.Equal(t, "cpu", got.alertID())
		assert.Equal(t, Critical, got.level)
		assert.EqualValues(t, 5, got.firstTriggered)
		assert.EqualValues(t, 10, got.lastTriggered)
		for _, b := range [][]byte{nil, {1}, {2, 3}, {1, 0}, {1, 3, 0x80}, {2, 3}, {2, 3, 4, 0, 0}, {3, 3, 0, 0, 0}, {2, 3, 0, 0x80}} {
			_, err := decodeGroup("g", b)
			assert.Error(t, err, "%v", b)
		}
	})
}

// stateRecorder is a recorder that keeps the alert state in its own file
// (a StateFlusher): each FlushState writes the save in one transaction.
type stateRecorder struct {
	recorder
	db       *bolt.DB
	flushes  int // FlushState calls
	saves    int // of them, with a state save
	flushErr error
}

func (f *stateRecorder) Open(Destination) (Publisher, error) { return f, nil }
func (f *stateRecorder) Flush() error                        { panic("Flush called on a StateFlusher") }
func (f *stateRecorder) FlushState(save func(*bolt.Tx) error) error {
	f.flushes++
	if f.flushErr != nil {
		return f.flushErr
	}
	if save == nil {
		return nil
	}
	f.saves++
	return f.db.Update(save)
}

// TestStateFlusher: with a publisher that keeps the state (the daemon's
// sender), the handler hands it the burst's state change at Flush, in
// place of Flush and a save of its own; a failed flush is retried with
// the state changed since.
func TestStateFlusher(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "shared.db"), 0o600, nil)
	require.NoError(t, err)
	defer db.Close()
	store, err := NewStateStore(db)
	require.NoError(t, err)
	rec := &stateRecorder{db: db}
	h := handlerWithStore(t, rec, store)
	assert.Equal(t, 1, rec.flushes, "Init flushes once, with nothing to write")
	assert.Equal(t, 0, rec.saves)

	feed(t, h, "host=a", 10, 5) // CRITICAL
	feed(t, h, "host=b", 11, 5) // CRITICAL
	h.Flush()
	assert.Equal(t, 1, rec.saves, "one save for the burst")
	ns, found, err := store.load("cpu", "squadcast2")
	require.NoError(t, err)
	require.True(t, found)
	assert.Len(t, ns.groups, 2)
	assert.EqualValues(t, 11, ns.asOf)

	rec.flushErr = errors.New("disk full")
	feed(t, h, "host=a", 20, 50) // recovery
	h.Flush()
	rec.flushErr = nil
	feed(t, h, "host=c", 21, 5) // CRITICAL
	h.Flush()
	assert.Equal(t, 2, rec.saves)
	ns, _, err = store.load("cpu", "squadcast2")
	require.NoError(t, err)
	var groups []string
	for _, g := range ns.groups {
		groups = append(groups, g.group)
	}
	assert.ElementsMatch(t, []string{"host=b", "host=c"}, groups, "the retried flush carries the recovery of host=a")
	h.Flush()
	assert.Equal(t, 2, rec.saves, "nothing changed: no save")
}

// stateWithID returns st with the alert ID id.
func stateWithID(st groupState, id string) *groupState {
	st.setAlertID(id)
	return &st
}

// TestFlappingOKGroupSaved: with .flapping(), a recovered group is kept
// (for its history) at OK; the saved state and the snapshot leave it out,
// as both hold alerting groups only, so that both still load.
func TestFlappingOKGroupSaved(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, dir)
	defer store.Close()
	init := func(rec *flushRecorder) *Handler {
		h := NewHandler(HandlerConfig{Sink: rec, State: store})
		res, err := h.Init(&agent.InitRequest{TaskID: "cpu", NodeID: "squadcast2", Options: []*agent.Option{
			str("crit", `"v" < 10`), opt("flapping", vDouble(0.98), vDouble(0.99)), opt("history", vInt(4)), // history kept, never flapping
		}})
		require.NoError(t, err)
		require.True(t, res.Success, res.Error)
		return h
	}
	rec := &flushRecorder{}
	h := init(rec)
	feed(t, h, "host=a", 10, 5)  // CRITICAL
	feed(t, h, "host=a", 11, 50) // OK, kept for its history
	feed(t, h, "host=b", 12, 5)  // CRITICAL
	h.Flush()
	require.Len(t, rec.Events(), 3)
	snap, err := h.Snapshot()
	require.NoError(t, err)

	ns, found, err := store.load("cpu", "squadcast2")
	require.NoError(t, err, "the saved state loads")
	require.True(t, found)
	require.Len(t, ns.groups, 1)
	assert.Equal(t, "host=b", ns.groups[0].group)

	_, groups, err := decodeSnapshot(snap.Snapshot)
	require.NoError(t, err, "the snapshot loads")
	require.Len(t, groups, 1)
	assert.Equal(t, "host=b", groups[0].group)

	h2 := init(&flushRecorder{})
	res, err := h2.Restore(&agent.RestoreRequest{Snapshot: snap.Snapshot})
	require.NoError(t, err)
	assert.True(t, res.Success)
}

// TestStateLeavesFilled: groups added in order fill the state's pages
// before they split (bbolt's default splits them half full).
func TestStateLeavesFilled(t *testing.T) {
	store := openStore(t, t.TempDir())
	defer store.Close()
	groups := map[string]*groupState{}
	for i := range 300 {
		dirty := map[string]struct{}{}
		for j := range 10 {
			g := fmt.Sprintf("host=host-%07d", i*10+j)
			groups[g] = stateWithID(groupState{level: Critical, firstTriggered: 1, lastTriggered: 2}, "cpu:"+g)
			dirty[g] = struct{}{}
		}
		c, _ := store.change("cpu", "squadcast2", int64(i), groups, dirty)
		require.NoError(t, store.save(c))
	}
	require.NoError(t, store.db.View(func(tx *bolt.Tx) error {
		st := tx.Bucket(bucketNodes).Bucket(nodeKey("cpu", "squadcast2")).Stats()
		assert.Equal(t, 3000+1, st.KeyN)
		assert.Greater(t, float64(st.LeafInuse)/float64(st.LeafAlloc), 0.8, "%+v", st)
		return nil
	}))
}
