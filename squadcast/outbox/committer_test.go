package outbox

import (
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestCommitterRefusedState: a state change that bbolt refuses would fail
// every retry: it is logged and left out, and the events of its
// transaction, and of other sources, are written without waiting for it.
func TestCommitterRefusedState(t *testing.T) {
	d := openTest(t, filepath.Join(t.TempDir(), File))
	core, logs := observer.New(zap.InfoLevel)
	var mu sync.Mutex
	var committed []string
	c := NewCommitter(d, CommitterConfig[string]{Logger: zap.New(core), OnCommit: func(items []string, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			committed = append(committed, items...)
		}
	}})
	defer c.Stop(false)
	a, b := &Source{Name: "a"}, &Source{Name: "b"}
	require.NoError(t, c.Flush(a, nil, true))
	require.NoError(t, c.Flush(b, nil, true))

	c.Append(a, d.NextSeq(), record(t, "a", 1), "a")
	refused := &StateChange{Task: "t", Node: "n", Put: []GroupState{{Group: strings.Repeat("g", MaxGroupLen+1), Level: LevelCritical}}}
	require.NoError(t, c.Flush(a, refused, true), "the events are durable")
	c.Append(b, d.NextSeq(), record(t, "b", 1), "b")
	kept := &StateChange{Task: "t", Node: "n", Put: []GroupState{{Group: "kept", Level: LevelCritical}}}
	require.NoError(t, c.Flush(b, kept, true), "the committer goes on")

	assert.Equal(t, 2, d.Pending())
	mu.Lock()
	assert.Equal(t, []string{"a", "b"}, committed)
	mu.Unlock()
	ns, _, err := d.LoadState("t", "n")
	require.NoError(t, err)
	require.Len(t, ns.Groups, 1)
	assert.Equal(t, "kept", ns.Groups[0].Group)
	logged := logs.FilterMessage("alert state change not saved: the outbox file refuses it (the events are written without it; after a restart those groups start from older state)").All()
	require.Len(t, logged, 1)
	assert.Equal(t, "a", logged[0].ContextMap()["endpoint"])
	assert.Contains(t, logged[0].ContextMap()["error"], "key too large")
}

// TestCommitterHeld: a held source's appends wait for its flush (one
// transaction with its state change); another's are written at once.
func TestCommitterHeld(t *testing.T) {
	d := openTest(t, filepath.Join(t.TempDir(), File))
	c := NewCommitter(d, CommitterConfig[int]{OnCommit: func([]int, error) {}})
	defer c.Stop(false)
	held, free := &Source{Name: "held"}, &Source{Name: "free"}
	require.NoError(t, c.Flush(held, nil, true))
	c.Append(held, d.NextSeq(), record(t, "h", 1), 1)
	c.Append(free, d.NextSeq(), record(t, "f", 1), 2)
	require.Eventually(t, func() bool { return d.Pending() == 2 }, 10e9, 1e6,
		"the free source's append wakes the committer, which writes all that waits")
	before := c.Commits()
	c.Append(held, d.NextSeq(), record(t, "h2", 1), 3)
	require.NoError(t, c.Flush(held, &StateChange{Task: "t", Node: "n"}, false))
	assert.Equal(t, before+1, c.Commits(), "the event and the state change: one transaction")
	assert.Equal(t, 3, d.Pending())
}
