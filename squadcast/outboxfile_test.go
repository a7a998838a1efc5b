package squadcast

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast/outbox"
	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// TestOutboxFileErrors: a missing file is created, and a corrupt file, a
// file that is not an outbox, a newer layout and a locked file give clear
// errors, never a panic.
func TestOutboxFileErrors(t *testing.T) {
	t.Run("missing file is created", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a", "b")
		_, err := OpenOutbox(OutboxPath(dir), true)
		require.ErrorIs(t, err, fs.ErrNotExist)
		require.ErrorContains(t, err, "has the daemon run with this data dir?")
		s, _, _ := newTestSender(t, Config{DataDir: dir})
		closeAndWait(t, s)
		fi, err := os.Stat(OutboxPath(dir))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
		o, err := OpenOutbox(OutboxPath(dir), true)
		require.NoError(t, err)
		require.Empty(t, listOutbox(t, o))
		require.NoError(t, o.Close())
	})
	t.Run("garbage", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(OutboxPath(dir), []byte(strings.Repeat("not a bbolt file\n", 1000)), 0o600))
		_, err := New(Config{DataDir: dir})
		require.ErrorContains(t, err, "open outbox "+OutboxPath(dir)+": the file is corrupt or not an outbox")
		_, err = OpenOutbox(OutboxPath(dir), true)
		require.ErrorContains(t, err, "corrupt or not an outbox")
	})
	t.Run("truncated", func(t *testing.T) {
		dir := t.TempDir()
		s, _, _ := newTestSender(t, Config{DataDir: dir})
		closeAndWait(t, s)
		b, err := os.ReadFile(OutboxPath(dir))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(OutboxPath(dir), b[:100], 0o600))
		_, err = New(Config{DataDir: dir})
		require.ErrorContains(t, err, "open outbox "+OutboxPath(dir))
	})
	t.Run("another bbolt file", func(t *testing.T) {
		dir := t.TempDir()
		db, err := bolt.Open(OutboxPath(dir), 0o600, nil)
		require.NoError(t, err)
		require.NoError(t, db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("nodes")); return err }))
		require.NoError(t, db.Close())
		_, err = New(Config{DataDir: dir})
		require.ErrorContains(t, err, "the file is not an outbox (it has no meta bucket)")
	})
	t.Run("newer layout", func(t *testing.T) {
		dir := t.TempDir()
		db, err := bolt.Open(OutboxPath(dir), 0o600, nil)
		require.NoError(t, err)
		require.NoError(t, db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucket(bucketMeta)
			if err != nil {
				return err
			}
			return b.Put(keyVersion, []byte("2"))
		}))
		require.NoError(t, db.Close())
		_, err = New(Config{DataDir: dir})
		require.ErrorContains(t, err, "the file's layout version 2 is not supported (want 1)")
	})
	t.Run("in use", func(t *testing.T) {
		s, _, _ := newTestSender(t, Config{})
		for _, ro := range []bool{true, false} {
			_, err := OpenOutbox(OutboxPath(s.cfg.DataDir), ro)
			require.ErrorIs(t, err, ErrOutboxInUse)
			require.ErrorContains(t, err, "the data dir is in use by a running daemon; stop it first")
		}
	})
}

// TestCorruptRecord: a record that does not decode stops the start with an
// error naming it (and how to drop it); the outbox lists it as corrupt,
// and once it is dropped the Sender starts and delivers the rest.
func TestCorruptRecord(t *testing.T) {
	for name, value := range map[string]string{
		"bad json":          `{"v":1,"endpoint":`,
		"newer record":      `{"v":3}`,
		"wrong field type":  `{"v":1,"attempts":"many"}`,
		"unknown level":     `{"v":1,"endpoint":"default","url":"https://h.example/k","format":"kapacitor","level":"LOUD","created":"2024-01-01T00:00:00Z","body":"e30="}`,
		"url without host":  `{"v":1,"endpoint":"default","url":"https:///k/` + secretKey + `","format":"kapacitor","level":"OK","created":"2024-01-01T00:00:00Z","body":"e30="}`,
		"missing body":      `{"v":1,"endpoint":"default","url":"https://h.example/k","format":"kapacitor","level":"OK","created":"2024-01-01T00:00:00Z"}`,
		"not json":          "\x00\x01",
		"missing endpoint ": `{"v":1,"url":"https://h.example/k","format":"kapacitor","level":"OK","created":"2024-01-01T00:00:00Z","body":"e30="}`,
	} {
		t.Run(name, func(t *testing.T) {
			h := newHoldServer(t)
			dir := t.TempDir()
			s, _, _ := newTestSender(t, holdConfig(h, dir, 1))
			p, err := s.Open(udf.Destination{})
			require.NoError(t, err)
			require.NoError(t, p.Publish(webhookEvent("a", 0)))
			require.NoError(t, p.Publish(webhookEvent("a", 1)))
			require.NoError(t, flushNow(p))
			kill(s)

			db, err := bolt.Open(OutboxPath(dir), 0o600, nil)
			require.NoError(t, err)
			require.NoError(t, db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketPending).Put(seqKey(2), []byte(value)) }))
			require.NoError(t, db.Close())

			_, err = New(holdConfig(h, dir, 1))
			var re *RecordError
			require.True(t, errors.As(err, &re), "%v", err)
			require.Equal(t, uint64(2), re.Seq)
			require.Equal(t, StatePending, re.State)
			require.ErrorContains(t, err, "outbox "+OutboxPath(dir)+": pending event 2 is corrupt: ")
			require.ErrorContains(t, err, "drop it with 'kapacitor-squadcast outbox drop --data-dir "+dir+" 2'")
			require.NotContains(t, err.Error(), secretKey)

			o, err := OpenOutbox(OutboxPath(dir), false)
			require.NoError(t, err)
			l := listOutbox(t, o)
			require.Equal(t, []string{"pending:a", "corrupt:"}, states(l))
			require.Equal(t, uint64(2), l[1].Seq)
			require.NotContains(t, l[1].LastError, secretKey)
			dropped, err := o.Drop(2)
			require.NoError(t, err)
			require.Equal(t, []uint64{2}, dropped)
			require.NoError(t, o.Close())

			h.hold.Store(false)
			s2, _, _ := newTestSender(t, holdConfig(h, dir, 1))
			closeAndWait(t, s2)
			require.Equal(t, []string{"a/0"}, h.got())
		})
	}
}

// TestRenderedBodiesStoredAsJSON: rendered bodies, of both formats, are
// stored as JSON text (a third smaller than base64), and read back byte
// for byte.
func TestRenderedBodiesStoredAsJSON(t *testing.T) {
	for _, format := range []string{FormatKapacitor, FormatIncidentWebhook} {
		body, err := Render(format, udf.Event{ID: "cpu:host=a", Message: "<b>", Level: udf.Critical, Tags: map[string]string{"host": "a"}})
		require.NoError(t, err)
		b, err := (&outbox.Record{Endpoint: "default", URL: secretURL, Format: format, Level: "CRITICAL", Created: clockStart, Body: body}).Encode()
		require.NoError(t, err)
		require.Contains(t, string(b), `"payload":{`, format)
		require.NotContains(t, string(b), `"body":`, format)
		got, err := outbox.Decode(b)
		require.NoError(t, err)
		require.NoError(t, checkRecord(got))
		require.Equal(t, string(body), string(got.Body), "%s: byte for byte", format)
	}
}

// TestListInSendOrder: outbox list shows the pending events in the order
// they will be sent when they wait: each incident's in order, and at each
// step the incident whose next event matters most (CRITICAL, resolve,
// WARNING, INFO; oldest first); dead letters after them.
func TestListInSendOrder(t *testing.T) {
	h := newHoldServer(t)
	dir := t.TempDir()
	s, _, _ := newTestSender(t, holdConfig(h, dir, 1))
	p, err := s.Open(udf.Destination{})
	require.NoError(t, err)
	for _, e := range []struct {
		id    string
		level udf.Level
	}{{"held", udf.Critical}, {"w", udf.Warning}, {"i", udf.Info}, {"x", udf.Info}, {"x", udf.Critical}, {"r", udf.OK}, {"c", udf.Critical}, {"w", udf.OK}} {
		ev := webhookEvent(e.id, 0)
		ev.Level = e.level
		require.NoError(t, p.Publish(ev))
	}
	require.NoError(t, flushNow(p))
	<-h.arrived // "held" is in flight, the others wait
	kill(s)

	o, err := OpenOutbox(OutboxPath(dir), true)
	require.NoError(t, err)
	defer o.Close()
	var got []string
	for _, e := range listOutbox(t, o) {
		got = append(got, e.Incident+":"+e.Level)
	}
	require.Equal(t, []string{"held:CRITICAL", "c:CRITICAL", "r:OK", "w:WARNING", "w:OK", "i:INFO", "x:INFO", "x:CRITICAL"}, got)
}
