package outbox

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

const (
	listerA = "c33e93cc-a007-4cf7-af6f-84e7c50a9b6a"
	listerB = "0b7c2f55-6f0e-4c43-9d0a-3c1d5e2f7a10"
)

// TestListers: the records are written, replaced and deleted in one
// call; a file without them (an older daemon's, or one opened read-only
// before any was written) reads as none.
func TestListers(t *testing.T) {
	path := filepath.Join(t.TempDir(), File)
	d, err := Open(path, Options{})
	require.NoError(t, err)
	got, err := d.Listers()
	require.NoError(t, err)
	assert.Empty(t, got)
	require.NoError(t, d.Close())
	ro, err := Open(path, Options{ReadOnly: true})
	require.NoError(t, err)
	got, err = ro.Listers()
	require.NoError(t, err)
	assert.Empty(t, got, "a file without the bucket")
	require.NoError(t, ro.Close())

	d, err = Open(path, Options{})
	require.NoError(t, err)
	defer d.Close()
	require.NoError(t, d.SetListers(map[string]string{"cpu": listerA, "mem": listerA, "disk": listerA}, nil))
	require.NoError(t, d.SetListers(map[string]string{"cpu": listerB}, []string{"mem", "never"}))
	require.NoError(t, d.SetListers(nil, nil))
	got, err = d.Listers()
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"cpu": listerB, "disk": listerA}, got)
}

// TestListersDroppedWithState: dropping the state of a task's last node
// (by DropState, or a StateChange with Drop) drops its record; dropping
// one of two nodes keeps it, as does dropping another task whose name
// starts the same.
func TestListersDroppedWithState(t *testing.T) {
	d, err := Open(filepath.Join(t.TempDir(), File), Options{})
	require.NoError(t, err)
	defer d.Close()
	var put []*StateChange
	for _, tn := range [][2]string{{"cpu", "n1"}, {"cpu", "n2"}, {"cpu2", "n1"}, {"mem", "n1"}} {
		put = append(put, &StateChange{Task: tn[0], Node: tn[1], AsOf: 1})
	}
	require.NoError(t, d.Commit(&Batch{State: put}))
	require.NoError(t, d.SetListers(map[string]string{"cpu": listerA, "cpu2": listerA, "mem": listerA}, nil))

	require.NoError(t, d.Commit(&Batch{State: []*StateChange{{Task: "cpu", Node: "n1", Drop: true}}}))
	assertListed(t, d, "cpu", "cpu2", "mem")
	require.NoError(t, d.Commit(&Batch{State: []*StateChange{{Task: "cpu", Node: "n2", Drop: true}}}))
	assertListed(t, d, "cpu2", "mem")
	n, err := d.DropState("mem", "")
	require.NoError(t, err)
	require.Equal(t, 1, n)
	assertListed(t, d, "cpu2")
}

// TestListersSurviveCompaction: a compacted copy of the file (every
// bucket, as CompactIfSparse writes it) keeps the records.
func TestListersSurviveCompaction(t *testing.T) {
	dir := t.TempDir()
	d, err := Open(filepath.Join(dir, File), Options{})
	require.NoError(t, err)
	require.NoError(t, d.SetListers(map[string]string{"cpu": listerA}, nil))
	copyPath := filepath.Join(dir, "copy.db")
	require.NoError(t, compactTo(d.db, copyPath))
	require.NoError(t, d.Close())
	c, err := Open(copyPath, Options{})
	require.NoError(t, err)
	defer c.Close()
	got, err := c.Listers()
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"cpu": listerA}, got)
	// And it is a bucket of its own, beside the others.
	require.NoError(t, c.view(func(tx *bolt.Tx) error {
		assert.NotNil(t, tx.Bucket(bucketListers))
		return nil
	}))
}

func assertListed(t *testing.T, d *DB, tasks ...string) {
	t.Helper()
	got, err := d.Listers()
	require.NoError(t, err)
	want := map[string]string{}
	for _, task := range tasks {
		want[task] = listerA
	}
	assert.Equal(t, want, got)
}

// TestListersWrittenDuringShrink: a record written while Shrink copies
// the file is not lost with the old file (such writes are not in the
// Commit journal, so they wait for the swap), and those written before
// are copied.
func TestListersWrittenDuringShrink(t *testing.T) {
	smallShrinks(t)
	path := filepath.Join(t.TempDir(), File)
	d := openTest(t, path)
	require.NoError(t, d.SetListers(map[string]string{"before": listerA}, nil))
	deliverAll(t, d, appendN(t, d, 1000, 4000))
	appendN(t, d, 1, 10) // a later transaction: the delivered pages are free
	written := make(chan error, 1)
	afterShrinkCopy = func() {
		go func() { written <- d.SetListers(map[string]string{"during": listerA}, nil) }()
		// Give the write its chance to land in the old file before the
		// swap (as it would if it did not wait for the Shrink).
		select {
		case err := <-written:
			written <- err
		case <-time.After(200 * time.Millisecond):
		}
	}
	t.Cleanup(func() { afterShrinkCopy = nil })
	s, err := d.Shrink()
	require.NoError(t, err)
	require.NotNil(t, s, "the file was sparse: it was shrunk")
	require.NoError(t, <-written)
	assertListed(t, d, "before", "during")
	require.NoError(t, d.Close())
	assertListed(t, openTest(t, path), "before", "during")
}
