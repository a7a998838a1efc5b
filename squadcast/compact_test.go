package squadcast

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// TestCompactAtStart: an outbox left mostly free by a delivered backlog is
// compacted when the next Sender starts: the file shrinks, and the pending
// events, the other buckets and the sequence numbers are kept (a new
// event gets a higher one, so that order holds).
func TestCompactAtStart(t *testing.T) {
	h := newHoldServer(t)
	h.hold.Store(false)
	dir := t.TempDir()
	s, _, _ := newTestSender(t, holdConfig(h, dir, 4))
	p, err := s.Open(udf.Destination{})
	require.NoError(t, err)
	big := strings.Repeat("x", 4000)
	for n := range 1000 {
		ev := webhookEvent("burst", n)
		ev.Details = big
		require.NoError(t, p.Publish(ev))
	}
	require.NoError(t, p.(udf.Flusher).Flush())
	closeAndWait(t, s)

	// Two events left pending, and a bucket of another kind (alert state).
	h.hold.Store(true)
	s, _, _ = newTestSender(t, holdConfig(h, dir, 1))
	p, err = s.Open(udf.Destination{})
	require.NoError(t, err)
	require.NoError(t, p.Publish(webhookEvent("a", 0)))
	require.NoError(t, p.(udf.StateFlusher).FlushState(marker("state", nil)))
	require.NoError(t, p.Publish(webhookEvent("a", 1)))
	require.NoError(t, p.(udf.Flusher).Flush())
	<-h.arrived
	kill(s)
	before := fileSize(t, OutboxPath(dir))
	require.Greater(t, before, int64(2<<20), "the burst grew the file")
	require.NoError(t, os.WriteFile(OutboxPath(dir)+compactSuffix, []byte("left by a crash"), 0o600))
	old := compactMinFree
	compactMinFree = 1 << 20 // the default, 64 MiB, is for real backlogs
	t.Cleanup(func() { compactMinFree = old })

	s, logs, _ := newTestSender(t, holdConfig(h, dir, 1))
	after := fileSize(t, OutboxPath(dir))
	require.Less(t, after, before/4, "compacted from %d to %d bytes", before, after)
	require.Len(t, entriesWith(logs, "compacted the outbox: most of it was free space left by an earlier backlog"), 1)
	require.Len(t, entriesWith(logs, "removed an outbox compaction left unfinished"), 1)
	require.NoFileExists(t, OutboxPath(dir)+compactSuffix)
	require.Equal(t, []string{"state"}, markers(t, s))
	p, err = s.Open(udf.Destination{})
	require.NoError(t, err)
	require.NoError(t, p.Publish(webhookEvent("a", 2)))
	require.NoError(t, p.(udf.Flusher).Flush())
	var seqs []uint64
	require.NoError(t, s.outbox.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPending).ForEach(func(k, _ []byte) error {
			seq, _ := keySeq(k)
			seqs = append(seqs, seq)
			return nil
		})
	}))
	require.Len(t, seqs, 3)
	require.Equal(t, []uint64{1001, 1002, 1003}, seqs, "sequence numbers go on from where they were")
	closeNow(s)

	// A file that is mostly in use is left alone; the events go out in order.
	h.hold.Store(false)
	s, logs, _ = newTestSender(t, holdConfig(h, dir, 1))
	closeAndWait(t, s)
	require.Empty(t, entriesWith(logs, "compacted the outbox: most of it was free space left by an earlier backlog"))
	require.Equal(t, []string{"a/0", "a/1", "a/2"}, h.got()[1000:])
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fi.Size()
}
