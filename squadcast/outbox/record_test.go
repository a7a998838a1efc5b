package outbox

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var start = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

const secretURL = "https://api.squadcast.com/v2/incidents/api/0123456789abcdef"

// TestRecordRoundTrip: what is stored decodes to what was written: a
// compact JSON body as JSON text, any other body in base64; and version 1
// records (base64 bodies) still decode.
func TestRecordRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		body, stored string
	}{
		{`{"event_id":"cpu:host=a","status":"trigger","message":"\u003cb\u003e"}`, `"payload":{"event_id":"cpu:host=a","status":"trigger","message":"\u003cb\u003e"}`},
		{"{}\n", `"payload":{},"payload_nl":true`},   // a rendered body ends with a newline
		{"{} \n", `"body":"e30gCg=="`},               // not compact
		{`{"m":"<b>"}`, `"body":"eyJtIjoiPGI+In0="`}, // json.Marshal would escape it
		{`{"m":"a` + "\u2028" + `"}`, `"body":`},
		{"not json", `"body":"bm90IGpzb24="`},
	} {
		r := &Record{Endpoint: "inline:h.example", Settings: "default", URL: secretURL, Format: "incident-webhook",
			Incident: "cpu:host=a", Level: "WARNING", Task: "t", Created: start, Attempts: 3,
			LastError: "http status 503 Service Unavailable", NextAttempt: start.Add(time.Minute), Body: []byte(tc.body)}
		b, err := r.Encode()
		require.NoError(t, err)
		require.Contains(t, string(b), `"v":2`)
		require.Contains(t, string(b), tc.stored)
		got, err := Decode(b)
		require.NoError(t, err)
		want := *r
		want.Version = recordVersion
		require.Equal(t, &want, got)
		require.Equal(t, tc.body, string(got.Body), "byte for byte")
	}
	v1 := `{"v":1,"endpoint":"default","url":"https://h.example/k","format":"kapacitor","incident":"x","level":"ok","created":"2024-01-01T00:00:00Z","body":"e30="}`
	got, err := Decode([]byte(v1))
	require.NoError(t, err)
	require.Equal(t, "{}", string(got.Body))
	require.Equal(t, "OK", got.Level, "levels are read case-insensitively")

	for name, value := range map[string]string{
		"bad json":          `{"v":1,"endpoint":`,
		"newer record":      `{"v":3,"level":"OK"}`,
		"unknown level":     `{"v":1,"endpoint":"default","url":"https://h.example/k","format":"kapacitor","level":"LOUD","created":"2024-01-01T00:00:00Z","body":"e30="}`,
		"missing body":      `{"v":1,"endpoint":"default","url":"https://h.example/k","format":"kapacitor","level":"OK","created":"2024-01-01T00:00:00Z"}`,
		"missing endpoint":  `{"v":1,"url":"https://h.example/k","format":"kapacitor","level":"OK","created":"2024-01-01T00:00:00Z","body":"e30="}`,
		"missing created":   `{"v":1,"endpoint":"default","url":"https://h.example/k","format":"kapacitor","level":"OK","body":"e30="}`,
		"negative attempts": `{"v":1,"endpoint":"default","url":"https://h.example/k","format":"kapacitor","level":"OK","created":"2024-01-01T00:00:00Z","body":"e30=","attempts":-1}`,
	} {
		_, err := Decode([]byte(value))
		require.Error(t, err, name)
	}

	_, ok := keySeq([]byte{1})
	require.False(t, ok)
	seq, ok := keySeq(seqKey(258))
	require.True(t, ok)
	require.Equal(t, uint64(258), seq)
}
