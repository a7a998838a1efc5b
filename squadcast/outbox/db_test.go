package outbox

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

func openTest(t *testing.T, path string) *DB {
	t.Helper()
	d, err := Open(path, Options{})
	require.NoError(t, err)
	t.Cleanup(func() { d.Close() })
	return d
}

// record returns an encoded pending record for incident id, its body of
// about size bytes.
func record(t testing.TB, id string, size int) []byte {
	r := &Record{Endpoint: "default", URL: secretURL, Format: "kapacitor", Incident: id, Level: "CRITICAL",
		Created: start, Body: []byte(`{"d":"` + strings.Repeat("d", size) + `"}`)}
	b, err := r.Encode()
	require.NoError(t, err)
	return b
}

// appendN appends n records in one transaction and returns their sequence numbers.
func appendN(t testing.TB, d *DB, n, size int) []uint64 {
	var b Batch
	var seqs []uint64
	for i := range n {
		seq := d.NextSeq()
		seqs = append(seqs, seq)
		b.Ops = append(b.Ops, Op{Kind: OpAppend, Seq: seq, Data: record(t, fmt.Sprint("incident-", i), size)})
	}
	require.NoError(t, d.Commit(&b))
	return seqs
}

// TestCommitOps: appends, updates, deletions and dead letters in one
// batch, applied in order; the counts and the sequence numbers follow, and
// a reopened file carries on from its last sequence number.
func TestCommitOps(t *testing.T) {
	path := filepath.Join(t.TempDir(), File)
	d := openTest(t, path)
	seqs := appendN(t, d, 4, 10)
	require.Equal(t, []uint64{1, 2, 3, 4}, seqs)
	updated := record(t, "updated", 10)
	require.NoError(t, d.Commit(&Batch{Ops: []Op{
		{Kind: OpUpdate, Seq: 1, Data: updated},
		{Kind: OpDelete, Seq: 2},
		{Kind: OpDead, Seq: 3, Data: record(t, "dead", 10)},
		{Kind: OpAppend, Seq: d.NextSeq(), Data: record(t, "new", 10)},
		{Kind: OpDelete, Seq: 5},
	}}))
	assert.Equal(t, 2, d.Pending())
	assert.Equal(t, 1, d.Dead())
	l, err := d.List()
	require.NoError(t, err)
	var got []string
	for _, e := range l {
		got = append(got, fmt.Sprint(e.State, ":", e.Seq, ":", e.Incident))
	}
	assert.Equal(t, []string{"pending:1:updated", "pending:4:incident-3", "dead:3:dead"}, got)
	require.NoError(t, d.Close())

	d = openTest(t, path)
	assert.Equal(t, 2, d.Pending())
	assert.Equal(t, 1, d.Dead())
	assert.Equal(t, uint64(6), d.NextSeq(), "sequence numbers go on, past the last one given")
}

// TestPendingLeavesFull: the pending bucket's keys are appended in order,
// so its leaves are filled before they split (appendFill), not half empty
// as with bbolt's default: the file, and the pages of it the daemon maps,
// are about half as large. Records of about 700 bytes, a few per commit.
func TestPendingLeavesFull(t *testing.T) {
	d := openTest(t, filepath.Join(t.TempDir(), File))
	for range 30 {
		appendN(t, d, 10, 400)
	}
	var st bolt.BucketStats
	require.NoError(t, d.view(func(tx *bolt.Tx) error {
		st = tx.Bucket(bucketPending).Stats()
		return nil
	}))
	require.Equal(t, 300, st.KeyN)
	fill := float64(st.LeafInuse) / float64(st.LeafAlloc)
	t.Logf("%d leaf pages, %.0f%% used", st.LeafPageN, 100*fill)
	require.Greater(t, fill, 0.7, "pending leaves are filled")
}

// TestCommitCostIndependentOfFreePages: what a commit allocates does not
// grow with the outbox's free pages (thousands after a burst was
// delivered): bbolt neither writes nor merges a list of them per commit.
func TestCommitCostIndependentOfFreePages(t *testing.T) {
	d := openTest(t, filepath.Join(t.TempDir(), File))
	rec := make([]byte, 1400)
	putDelete := func(n int, del bool) {
		var b Batch
		for range n {
			seq := d.NextSeq()
			b.Ops = append(b.Ops, Op{Kind: OpAppend, Seq: seq, Data: rec})
			if del {
				b.Ops = append(b.Ops, Op{Kind: OpDelete, Seq: seq})
			}
		}
		require.NoError(t, d.Commit(&b))
	}
	for range 10 {
		putDelete(1000, false) // a burst
	}
	var b Batch
	for seq := uint64(1); seq <= 10000; seq++ { // delivered
		b.Ops = append(b.Ops, Op{Kind: OpDelete, Seq: seq})
	}
	require.NoError(t, d.Commit(&b))
	putDelete(1, true)
	free := d.db.Stats().FreePageN
	require.Greater(t, free, 4000)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const commits = 50
	for range commits {
		putDelete(1, true)
	}
	runtime.ReadMemStats(&after)
	perCommit := (after.TotalAlloc - before.TotalAlloc) / commits
	t.Logf("%d free pages: %d bytes allocated per commit", free, perCommit)
	require.Less(t, perCommit, uint64(32<<10), "bytes allocated per commit with %d free pages", free)
}
