package outbox

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestCompactIfSparse: an outbox left mostly free by a delivered backlog
// is compacted when it is opened: the file shrinks, and the pending
// events, the alert state and the sequence numbers are kept (a new event
// gets a higher one, so that order holds). A file mostly in use is left
// alone.
func TestCompactIfSparse(t *testing.T) {
	path := filepath.Join(t.TempDir(), File)
	d, err := Open(path, Options{})
	require.NoError(t, err)
	burst := appendN(t, d, 1000, 4000)
	var delivered Batch
	for _, seq := range burst {
		delivered.Ops = append(delivered.Ops, Op{Kind: OpDelete, Seq: seq})
	}
	require.NoError(t, d.Commit(&delivered))
	appendN(t, d, 2, 10) // left pending
	require.NoError(t, d.Commit(&Batch{State: []*StateChange{{Task: "cpu", Node: "n", AsOf: 1,
		Put: []GroupState{{Group: "state", Level: LevelCritical, ID: "state"}}}}}))
	require.NoError(t, d.Close())
	before := fileSize(t, path)
	require.Greater(t, before, int64(2<<20), "the burst grew the file")
	require.NoError(t, os.WriteFile(path+compactSuffix, []byte("left by a crash"), 0o600))
	old := compactMinFree
	compactMinFree = 1 << 20 // the default, 64 MiB, is for real backlogs
	t.Cleanup(func() { compactMinFree = old })

	core, logs := observer.New(zap.InfoLevel)
	d, err = Open(path, Options{})
	require.NoError(t, err)
	d, err = CompactIfSparse(d, zap.New(core))
	require.NoError(t, err)
	after := fileSize(t, path)
	require.Less(t, after, before/4, "compacted from %d to %d bytes", before, after)
	require.Equal(t, 1, logs.FilterMessage("compacted the outbox: most of it was free space left by an earlier backlog").Len())
	require.Equal(t, 1, logs.FilterMessage("removed an outbox compaction left unfinished").Len())
	require.NoFileExists(t, path+compactSuffix)
	ns, found, err := d.LoadState("cpu", "n")
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, "state", ns.Groups[0].Group)
	require.Equal(t, uint64(1003), d.NextSeq(), "sequence numbers go on from where they were")
	l, err := d.LoadStart(10)
	require.NoError(t, err)
	require.Len(t, l.Events, 2)
	require.Equal(t, []uint64{1001, 1002}, []uint64{l.Events[0].Seq, l.Events[1].Seq})

	// A file that is mostly in use is left alone.
	core, logs = observer.New(zap.InfoLevel)
	d, err = CompactIfSparse(d, zap.New(core))
	require.NoError(t, err)
	defer d.Close()
	require.Zero(t, logs.Len())
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fi.Size()
}
