package outbox

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// smallShrinks makes a sparse file of a few megabytes worth shrinking, and
// the committer check at every transaction, for the test.
func smallShrinks(t *testing.T) {
	oldFree, oldEvery := compactMinFree, shrinkCheckEvery
	compactMinFree, shrinkCheckEvery = 1<<20, 0
	t.Cleanup(func() { compactMinFree, shrinkCheckEvery = oldFree, oldEvery })
}

// deliverAll deletes the records seqs in one transaction.
func deliverAll(t *testing.T, d *DB, seqs []uint64) {
	var b Batch
	for _, seq := range seqs {
		b.Ops = append(b.Ops, Op{Kind: OpDelete, Seq: seq})
	}
	require.NoError(t, d.Commit(&b))
}

// TestShrink: an open outbox left mostly free by a delivered burst is
// shrunk in place: the file gets smaller, and what it holds (a pending
// event, a dead letter, the alert state, the sequence numbers) is as it
// was, for the open DB and after a reopen. A file mostly in use is left
// alone.
func TestShrink(t *testing.T) {
	smallShrinks(t)
	path := filepath.Join(t.TempDir(), File)
	d := openTest(t, path)
	deliverAll(t, d, appendN(t, d, 1000, 4000))
	kept := appendN(t, d, 2, 10)
	require.NoError(t, d.Commit(&Batch{Ops: []Op{{Kind: OpDead, Seq: kept[1], Data: record(t, "dead", 10)}},
		State: []*StateChange{{Task: "cpu", Node: "n", AsOf: 1, Put: []GroupState{{Group: "g", Level: LevelCritical, ID: "g"}}}}}))
	before := fileSize(t, path)
	require.Greater(t, before, int64(2<<20), "the burst grew the file")

	s, err := d.Shrink()
	require.NoError(t, err)
	require.NotNil(t, s)
	after := fileSize(t, path)
	assert.Less(t, after, before/4, "shrunk from %d to %d bytes", before, after)
	assert.Equal(t, before, s.Before)
	assert.Equal(t, after, s.After)
	require.NoFileExists(t, path+compactSuffix)

	check := func(d *DB) {
		t.Helper()
		l, err := d.LoadStart(10)
		require.NoError(t, err)
		require.Len(t, l.Events, 1)
		assert.Equal(t, kept[0], l.Events[0].Seq)
		assert.Equal(t, 1, d.Pending())
		assert.Equal(t, 1, d.Dead())
		ns, found, err := d.LoadState("cpu", "n")
		require.NoError(t, err)
		require.True(t, found)
		assert.Equal(t, "g", ns.Groups[0].Group)
	}
	check(d)
	next := appendN(t, d, 1, 10)[0]
	assert.Equal(t, uint64(1003), next, "sequence numbers go on from where they were")

	s, err = d.Shrink()
	require.NoError(t, err)
	assert.Nil(t, s, "a file mostly in use is left alone")

	require.NoError(t, d.Close())
	d = openTest(t, path)
	check2, err := d.LoadStart(10)
	require.NoError(t, err)
	require.Len(t, check2.Events, 2, "the event written after the shrink is in the file")
	assert.Equal(t, next, check2.Events[1].Seq)
	assert.Equal(t, uint64(1004), d.NextSeq())
}

// TestShrinkKeepsCommitsDuringCopy: what is committed while Shrink copies
// its snapshot (new events, deliveries, dead letters, state changes) is
// in the shrunk file too, in order.
func TestShrinkKeepsCommitsDuringCopy(t *testing.T) {
	smallShrinks(t)
	path := filepath.Join(t.TempDir(), File)
	d := openTest(t, path)
	deliverAll(t, d, appendN(t, d, 1000, 4000))
	kept := appendN(t, d, 3, 10)
	var during []uint64
	afterShrinkCopy = func() {
		during = appendN(t, d, 2, 10)
		require.NoError(t, d.Commit(&Batch{Ops: []Op{{Kind: OpDelete, Seq: kept[0]}, {Kind: OpDead, Seq: kept[1], Data: record(t, "dead", 10)}},
			State: []*StateChange{{Task: "cpu", Node: "n", AsOf: 2, Put: []GroupState{{Group: "g", Level: LevelWarning, ID: "g"}}}}}))
	}
	t.Cleanup(func() { afterShrinkCopy = nil })
	s, err := d.Shrink()
	require.NoError(t, err)
	require.NotNil(t, s)
	require.Less(t, fileSize(t, path), s.Before/4)

	check := func(d *DB) {
		t.Helper()
		l, err := d.LoadStart(10)
		require.NoError(t, err)
		var seqs []uint64
		for _, e := range l.Events {
			seqs = append(seqs, e.Seq)
		}
		assert.Equal(t, []uint64{kept[2], during[0], during[1]}, seqs)
		assert.Equal(t, 3, d.Pending())
		assert.Equal(t, 1, d.Dead())
		ns, found, err := d.LoadState("cpu", "n")
		require.NoError(t, err)
		require.True(t, found)
		assert.Equal(t, int64(2), ns.AsOf)
		assert.EqualValues(t, LevelWarning, ns.Groups[0].Level)
	}
	check(d)
	require.NoError(t, d.Close())
	check(openTest(t, path))
}

// TestCommitterShrinksWhenDrained: the committer shrinks the file after a
// transaction that leaves no event pending, not while events are pending;
// appends, flushes and reads that run meanwhile from other goroutines
// lose nothing (run with -race).
func TestCommitterShrinksWhenDrained(t *testing.T) {
	smallShrinks(t)
	path := filepath.Join(t.TempDir(), File)
	d := openTest(t, path)
	core, logs := observer.New(zap.InfoLevel)
	var onShrink atomic.Int64
	c := NewCommitter(d, CommitterConfig[uint64]{Logger: zap.New(core), OnCommit: func([]uint64, error) {},
		OnShrink: func() { onShrink.Add(1) }})
	stopped := false
	defer func() {
		if !stopped {
			c.Stop(false)
		}
	}()

	burst := appendN(t, d, 1000, 4000)
	src := &Source{Name: "test"}
	c.Append(src, d.NextSeq(), record(t, "pending", 10), 0)
	require.NoError(t, c.Flush(src, nil, false))
	for _, seq := range burst {
		c.Outcome(Op{Kind: OpDelete, Seq: seq})
	}
	c.WriteHeld()
	require.Eventually(t, func() bool { return d.Pending() == 1 }, 10*time.Second, time.Millisecond)
	require.NoError(t, c.Flush(src, nil, false)) // a transaction with an event pending
	assert.Zero(t, c.Shrinks(), "not while an event is pending")

	// Writers and readers busy while the last delivery drains the outbox.
	var wg, readers sync.WaitGroup
	var appended [4][]uint64
	stop := make(chan struct{})
	for w := range appended {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := &Source{Name: fmt.Sprint("w", w)}
			for i := 0; i < 200; i++ {
				seq := d.NextSeq()
				c.Append(s, seq, record(t, fmt.Sprint("w", w, "-", i), 10), seq)
				if !assert.NoError(t, c.Flush(s, &StateChange{Task: "t", Node: fmt.Sprint("n", w), AsOf: int64(i + 1),
					Put: []GroupState{{Group: fmt.Sprint(i), Level: LevelWarning, ID: "x"}}}, false)) {
					return
				}
				appended[w] = append(appended[w], seq)
				c.Outcome(Op{Kind: OpDelete, Seq: seq})
				c.WriteHeld()
			}
		}()
	}
	readers.Add(1)
	go func() {
		defer readers.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			_, err := d.LoadFrom(0, 100)
			assert.NoError(t, err)
		}
	}()
	l, err := d.LoadStart(1)
	require.NoError(t, err)
	c.Outcome(Op{Kind: OpDelete, Seq: l.Events[0].Seq})
	c.WriteHeld()
	require.Eventually(t, func() bool { return c.Shrinks() > 0 }, 20*time.Second, time.Millisecond, "shrunk once drained")
	wg.Wait()
	close(stop)
	readers.Wait()
	assert.Equal(t, c.Shrinks(), onShrink.Load())
	assert.GreaterOrEqual(t, logs.FilterMessage("shrank the outbox: its backlog drained, and most of the file was free space").Len(), 1)

	// Everything every writer flushed is in the file: its state, and its
	// events until their deletions are written.
	c.Stop(false)
	stopped = true
	require.Less(t, fileSize(t, path), int64(2<<20))
	assert.Zero(t, d.Pending())
	for w := range appended {
		ns, found, err := d.LoadState("t", fmt.Sprint("n", w))
		require.NoError(t, err)
		require.True(t, found)
		assert.Len(t, ns.Groups, 200, "writer %d's state changes", w)
		assert.Len(t, appended[w], 200)
	}
}

// TestShrinkFailedCopy: when the copy cannot be made, Shrink fails with
// the file named, and the DB goes on with the old file as it was.
func TestShrinkFailedCopy(t *testing.T) {
	smallShrinks(t)
	path := filepath.Join(t.TempDir(), File)
	d := openTest(t, path)
	deliverAll(t, d, appendN(t, d, 1000, 4000))
	kept := appendN(t, d, 1, 10)
	// A directory, not empty, where the copy would go.
	require.NoError(t, os.MkdirAll(filepath.Join(path+compactSuffix, "x"), 0o700))
	before := fileSize(t, path)
	s, err := d.Shrink()
	require.Error(t, err)
	assert.Contains(t, err.Error(), path)
	assert.Nil(t, s)
	assert.Equal(t, before, fileSize(t, path))
	more := appendN(t, d, 1, 10)
	l, err := d.LoadStart(10)
	require.NoError(t, err)
	require.Len(t, l.Events, 2)
	assert.Equal(t, []uint64{kept[0], more[0]}, []uint64{l.Events[0].Seq, l.Events[1].Seq})
	d.wmu.Lock()
	assert.False(t, d.journaling, "the journal ended")
	d.wmu.Unlock()
}

// TestShrinkGivesUpOnABurstDuringCopy: when more than journalMax is
// committed while Shrink copies, it gives up (nil, no error): the old
// file stays, with every write, old and new, and no copy is left behind;
// the next Shrink, with no burst, shrinks it.
func TestShrinkGivesUpOnABurstDuringCopy(t *testing.T) {
	smallShrinks(t)
	oldMax := journalMax
	journalMax = 64 << 10
	t.Cleanup(func() { journalMax = oldMax })
	path := filepath.Join(t.TempDir(), File)
	d := openTest(t, path)
	deliverAll(t, d, appendN(t, d, 1000, 4000))
	kept := appendN(t, d, 1, 10)
	var during []uint64
	afterShrinkCopy = func() {
		during = append(appendN(t, d, 20, 4000), appendN(t, d, 20, 4000)...)
		afterShrinkCopy = nil
	}
	t.Cleanup(func() { afterShrinkCopy = nil })
	before := fileSize(t, path)
	s, err := d.Shrink()
	require.NoError(t, err)
	require.Nil(t, s, "gave up")
	require.NoFileExists(t, path+compactSuffix)
	assert.GreaterOrEqual(t, fileSize(t, path), before, "the old file is still in use")
	check := func(d *DB) {
		t.Helper()
		l, err := d.LoadStart(100)
		require.NoError(t, err)
		var seqs []uint64
		for _, e := range l.Events {
			seqs = append(seqs, e.Seq)
		}
		assert.Equal(t, append(kept, during...), seqs)
	}
	check(d)

	s, err = d.Shrink()
	require.NoError(t, err)
	require.NotNil(t, s, "with no burst during the copy, it shrinks")
	check(d)
	require.NoError(t, d.Close())
	check(openTest(t, path))
}
