package squadcast

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// TestDeadLetters: a 400 dead-letters the incident's head at once, and its
// later events are still delivered, in order; the dead letter is logged,
// counted, and kept in the outbox, where RetryDead and Drop work on it.
func TestDeadLetters(t *testing.T) {
	rec := newRecorder(t)
	flushed := make(chan struct{})
	rec.answer = func(id string, w http.ResponseWriter) bool {
		if id == "x/0" {
			<-flushed // the later events are queued behind it
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, "bad key "+secretKey)
			return true
		}
		return false
	}
	s, logs, _ := newTestSender(t, Config{
		Endpoints: []Endpoint{{Name: "default", URL: rec.URL + "/v2/incidents/api/" + secretKey, Format: FormatIncidentWebhook}},
		Workers:   1,
	})
	p, err := s.Open(udf.Destination{})
	require.NoError(t, err)
	for n := range 3 {
		require.NoError(t, p.Publish(webhookEvent("x", n)))
	}
	require.NoError(t, flushNow(p))
	close(flushed)
	closeAndWait(t, s)
	require.Equal(t, []string{"x/0", "x/1", "x/2"}, rec.got())
	st := s.Stats()
	require.Equal(t, uint64(1), st.DeadLettered)
	require.Equal(t, uint64(2), st.Delivered)
	dead := entriesWith(logs, "squadcast event dead-lettered")
	require.Len(t, dead, 1)
	f := dead[0].ContextMap()
	require.Equal(t, "error", dead[0].Level.String())
	require.Equal(t, "default", f["endpoint"])
	require.Equal(t, "x", f["incident"])
	require.Equal(t, "permanent failure", f["reason"])
	require.Equal(t, int64(1), f["attempts"])
	require.Equal(t, int64(2), f["later_events"])
	require.Equal(t, "bad key [redacted]", f["response"])
	assertNoSecret(t, logs, secretKey, secretPath)

	o, err := OpenOutbox(OutboxPath(s.cfg.DataDir), false)
	require.NoError(t, err)
	defer o.Close()
	l := listOutbox(t, o)
	require.Len(t, l, 1)
	e := l[0]
	require.Equal(t, StateDead, e.State)
	require.Equal(t, uint64(1), e.Seq)
	require.Equal(t, "permanent failure", e.DeadReason)
	require.Equal(t, "http status 400 Bad Request: bad key [redacted]", e.LastError)
	require.False(t, e.DeadAt.IsZero())

	n, err := o.RetryDead()
	require.NoError(t, err)
	require.Equal(t, 1, n)
	l = listOutbox(t, o)
	require.Len(t, l, 1)
	require.Equal(t, OutboxEntry{State: StatePending, Seq: 1, Endpoint: "default", Incident: "x", Level: "CRITICAL",
		Format: FormatIncidentWebhook, Created: e.Created, Size: e.Size}, l[0], "attempts, error and reason cleared")
	n, err = o.RetryDead()
	require.NoError(t, err)
	require.Zero(t, n)

	dropped, err := o.Drop(7, 1, 1)
	require.NoError(t, err)
	require.Equal(t, []uint64{1}, dropped)
	require.Empty(t, listOutbox(t, o))
}

// TestDeadLetterMaxAge: an event that keeps failing is retried until its
// max age, on a fake clock; then it is dead, and the next event goes.
func TestDeadLetterMaxAge(t *testing.T) {
	rec := newRecorder(t)
	rec.answer = func(id string, w http.ResponseWriter) bool {
		if id == "x/0" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		return false
	}
	s, logs, clk, _ := newClockSender(t, Config{
		Endpoints:    []Endpoint{{Name: "default", URL: rec.URL + "/v2/incidents/api/" + secretKey, Format: FormatIncidentWebhook}},
		RetryWaitMin: time.Minute, RetryWaitMax: 5 * time.Minute, MaxAge: 10 * time.Minute,
	})
	p, err := s.Open(udf.Destination{})
	require.NoError(t, err)
	require.NoError(t, p.Publish(webhookEvent("x", 0)))
	require.NoError(t, p.Publish(webhookEvent("x", 1)))
	require.NoError(t, flushNow(p))
	deadline := clockStart.Add(10 * time.Minute)
	var dues []time.Time
	for s.Stats().DeadLettered == 0 {
		settle(t, s)
		due := waitingDue(s)["x"]
		if due.IsZero() {
			continue // dead-lettered meanwhile
		}
		dues = append(dues, due)
		clk.Advance(due.Sub(clk.Now()))
	}
	require.Eventually(t, func() bool { return s.Stats().Delivered == 1 }, 10*time.Second, time.Millisecond)
	require.Equal(t, deadline, dues[len(dues)-1], "the last attempt is at the max age")
	for i := 1; i < len(dues); i++ {
		require.True(t, dues[i].After(dues[i-1]))
	}
	attempts := int64(len(dues) + 1)
	require.Equal(t, attempts, int64(strings.Count(strings.Join(rec.got(), " "), "x/0")))
	dead := entriesWith(logs, "squadcast event dead-lettered")
	require.Len(t, dead, 1)
	f := dead[0].ContextMap()
	require.Equal(t, "max age exceeded", f["reason"])
	require.Equal(t, attempts, f["attempts"])
	require.Equal(t, 10*time.Minute, f["age"])
	require.Equal(t, []string{"x/1"}, rec.got()[len(rec.got())-1:])
}
