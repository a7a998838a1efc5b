package squadcast

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf/relay"
)

// kapacitorPost is a body as Kapacitor's .post() sends it: json.Encode of
// alert.Data, with the trailing newline and Kapacitor's own HTML escaping.
const kapacitorPost = `{"id":"cpu:host=a","message":"cpu:host=a is CRITICAL","details":"\u003cb\u003ebusy\u003c/b\u003e","time":"2024-01-01T00:00:00Z","duration":10000000000,"level":"CRITICAL","data":{"series":[{"name":"cpu","tags":{"host":"a"},"columns":["time","usage_idle"],"values":[["2024-01-01T00:00:00Z",5.5]]}]},"previousLevel":"WARNING","recoverable":true}` + "\n"

// bodies records the bodies a server receives, in order.
type bodies struct {
	*server
	mu  sync.Mutex
	got []string
}

func newBodies(t *testing.T) *bodies {
	b := &bodies{}
	b.server = newServer(t, func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.got = append(b.got, string(data))
		b.mu.Unlock()
	})
	return b
}

func (b *bodies) all() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.got...)
}

// TestRelay: a relayed alert is on disk when Relay returns, then goes out
// byte for byte to a kapacitor endpoint and converted to an Incident
// Webhook one; an unknown endpoint and a closed Sender are not taken.
func TestRelay(t *testing.T) {
	srv := newBodies(t)
	obs := &recordingObserver{}
	s, _, _ := newTestSender(t, Config{Endpoints: []Endpoint{
		{Name: "default", URL: srv.URL + "/v1/incidents/kapacitor/" + secretKey},
		{Name: "iw", URL: srv.URL + "/v2/incidents/api/" + secretKey, Format: FormatIncidentWebhook},
	}, Observer: obs})
	require.True(t, s.HasEndpoint("iw"))
	require.False(t, s.HasEndpoint("nope"))
	a, err := relay.ParseAlert([]byte(kapacitorPost))
	require.NoError(t, err)

	before := s.cm.Commits()
	require.NoError(t, s.Relay("default", a, []byte(kapacitorPost)))
	require.Greater(t, s.cm.Commits(), before, "written before Relay returns")
	require.NoError(t, s.Relay("iw", a, []byte(kapacitorPost)))
	require.Eventually(t, func() bool { return s.Stats().Delivered == 2 }, 10*time.Second, time.Millisecond)

	got := srv.all()
	require.Len(t, got, 2)
	var kap, iw string
	for _, b := range got {
		if strings.Contains(b, `"event_id"`) {
			iw = b
		} else {
			kap = b
		}
	}
	assert.Equal(t, kapacitorPost, kap, "byte for byte")
	assert.Equal(t, webhookBody{Message: "cpu:host=a is CRITICAL", Description: "<b>busy</b>", Status: "trigger", EventID: "cpu:host=a",
		Tags: map[string]string{"host": "a", "level": "CRITICAL"}, Priority: "P1"}, decodeWebhook(t, []byte(iw)))
	obs.mu.Lock()
	assert.Equal(t, []string{"default relay", "iw relay"}, obs.accepted)
	obs.mu.Unlock()

	err = s.Relay("nope", a, []byte(kapacitorPost))
	assert.ErrorIs(t, err, relay.ErrNotTaken)
	closeAndWait(t, s)
	err = s.Relay("default", a, []byte(kapacitorPost))
	assert.ErrorIs(t, err, relay.ErrNotTaken)
	assert.ErrorIs(t, err, ErrClosed)
	assert.NotContains(t, err.Error(), secretKey)
}

// TestRelayOverSizeLimit: a body over MaxBody is rendered again from the
// alert and cut, to a kapacitor endpoint too.
func TestRelayOverSizeLimit(t *testing.T) {
	srv := newBodies(t)
	s, _, _ := newTestSender(t, Config{Endpoints: []Endpoint{{Name: "default", URL: srv.URL + "/k/" + secretKey}}})
	big := strings.Replace(kapacitorPost, `\u003cb\u003ebusy\u003c/b\u003e`, strings.Repeat("x", 2*MaxBody), 1)
	a, err := relay.ParseAlert([]byte(big))
	require.NoError(t, err)
	require.NoError(t, s.Relay("default", a, []byte(big)))
	closeAndWait(t, s)
	got := srv.all()
	require.Len(t, got, 1)
	assert.LessOrEqual(t, len(got[0]), MaxBody)
	d := decodeAny(t, FormatKapacitor, []byte(got[0]))
	assert.Equal(t, "cpu:host=a", d.ID)
	assert.True(t, strings.HasSuffix(d.Details, TruncationMarker))
	assert.Contains(t, got[0], `"columns":["time","usage_idle"],"values":[["2024-01-01T00:00:00Z",5.5]]`, "the data as Kapacitor sent it")
}
