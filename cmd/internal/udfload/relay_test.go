package main

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf/relay"
)

// TestRelayBodies: the bodies are alerts the relay takes, Kapacitor's
// JSON with its default id, message and HTML-escaped details, each host
// CRITICAL and OK in turn.
func TestRelayBodies(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	bodies := relayBodies(relayHosts+2, t0)
	for i, want := range []struct {
		host  string
		level udf.Level
	}{{hostName(0), udf.Critical}, {hostName(1), udf.Critical}} {
		a, err := relay.ParseAlert(bodies[i])
		require.NoError(t, err)
		assert.Equal(t, "cpu:host="+want.host, a.ID)
		assert.Equal(t, want.level, a.Level)
		assert.Equal(t, "cpu:host="+want.host+" is CRITICAL", a.Message)
		assert.Equal(t, t0.Add(time.Duration(i)*time.Millisecond), a.Time)
		assert.True(t, strings.HasPrefix(a.Details, "{&#34;Name&#34;:&#34;cpu&#34;"), a.Details)
		require.Len(t, a.Series, 1)
		assert.Equal(t, map[string]string{"cpu": "cpu-total", "host": want.host}, a.Series[0].Tags)
		assert.Equal(t, []string{"time", "usage_idle", "usage_iowait", "usage_system", "usage_user"}, a.Series[0].Columns)
	}
	again, err := relay.ParseAlert(bodies[relayHosts])
	require.NoError(t, err)
	assert.Equal(t, "cpu:host="+hostName(0), again.ID)
	assert.Equal(t, udf.OK, again.Level, "a host's second alert is its recovery")
	assert.Equal(t, udf.Critical, again.PreviousLevel)

	var raw map[string]any
	require.NoError(t, json.Unmarshal(bodies[0], &raw))
	assert.ElementsMatch(t, []string{"id", "message", "details", "time", "duration", "level", "data", "previousLevel", "recoverable"},
		keys(raw), "the fields of Kapacitor's alert.Data")
	assert.True(t, strings.HasSuffix(string(bodies[0]), "}\n"), "json.Encoder's newline")
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// TestPosters drives the relay that stores nothing with the serial and
// the concurrent posters: every alert is answered 200, on a connection of
// its own; a refused alert is an error that says why.
func TestPosters(t *testing.T) {
	var mu sync.Mutex
	conns := 0
	srv := httptest.NewUnstartedServer(newNoStoreServer().Handler)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			conns++
			mu.Unlock()
		}
	}
	srv.Start()
	defer srv.Close()
	bodies := relayBodies(40, time.Now())

	p := newPoster(srv.URL + "/relay/default")
	defer p.close()
	took, err := p.serially(bodies)
	require.NoError(t, err)
	assert.Len(t, took, len(bodies))
	rate, err := postConcurrently(srv.URL+"/relay/default", bodies, posters)
	require.NoError(t, err)
	assert.Greater(t, rate, 0.0)
	mu.Lock()
	assert.Equal(t, 2*len(bodies), conns, "one connection per alert, as kapacitord's .post()")
	mu.Unlock()

	_, err = postConcurrently(srv.URL+"/relay/nope", bodies[:3], 2)
	assert.ErrorContains(t, err, `404 Not Found: unknown endpoint "nope"`)
	_, err = newPoster(srv.URL + "/relay/default").serially([][]byte{[]byte(`{"level":"OK"}`)})
	assert.ErrorContains(t, err, "400 Bad Request")
}
