package squadcast

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// publishOne opens the endpoint named name and publishes one event.
func publishOne(t *testing.T, s *Sender, name, id string) {
	t.Helper()
	p, err := s.Open(udf.Destination{Endpoint: name})
	require.NoError(t, err)
	require.NoError(t, p.Publish(udf.Event{ID: id, Message: "m", Details: "d", Level: udf.Critical}))
}

// TestSlowEndpoint: an answer slower than the endpoint's timeout is an
// attempt that timed out, retried; an answer within it is delivered.
func TestSlowEndpoint(t *testing.T) {
	var n atomic.Int64
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if n.Add(1) <= 2 {
			// Too slow for the first two attempts: the client gives up first.
			select {
			case <-r.Context().Done():
			case <-time.After(30 * time.Second):
			}
			return
		}
		time.Sleep(20 * time.Millisecond) // slow, but in time
		w.WriteHeader(http.StatusAccepted)
	})
	s, logs, _ := newTestSender(t, Config{Endpoints: []Endpoint{{Name: "slow", URL: srv.URL + "/v2/incidents/api/" + secretKey, Timeout: 200 * time.Millisecond}}})
	publishOne(t, s, "slow", "a")
	require.Eventually(t, func() bool { return s.Stats().Delivered == 1 }, 30*time.Second, 5*time.Millisecond)
	closeAndWait(t, s)

	require.Equal(t, int64(3), srv.requests.Load())
	retries := entriesWith(logs, "squadcast delivery attempt failed, will retry")
	require.Len(t, retries, 2)
	for _, e := range retries {
		require.Contains(t, e.ContextMap()["error"], "attempt timed out after 200ms")
	}
	require.Equal(t, uint64(2), s.Stats().Retried)
	assertNoSecret(t, logs, secretKey, secretPath)
}

// TestHangingEndpoint: a server that accepts connections and never
// answers, and one that sends its headers and then never ends its body,
// hold no worker beyond the endpoint's timeout.
func TestHangingEndpoint(t *testing.T) {
	// Accepts, then neither reads nor writes.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var held []net.Conn
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-accepted
		for _, c := range held {
			c.Close()
		}
	})
	// Headers at once, then a body that never ends.
	release := make(chan struct{})
	trickle := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "{")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) })

	s, logs, _ := newTestSender(t, Config{
		Endpoints: []Endpoint{
			{Name: "silent", URL: "http://" + ln.Addr().String() + "/v2/incidents/api/" + secretKey, Timeout: 100 * time.Millisecond},
			{Name: "trickle", URL: trickle.URL + "/v2/incidents/api/" + secretKey, Timeout: 100 * time.Millisecond},
		},
		Workers: 1, // one stuck worker would stop everything
		MaxAge:  time.Nanosecond,
	})
	publishOne(t, s, "silent", "a")
	publishOne(t, s, "trickle", "b")
	publishOne(t, s, "silent", "c")
	require.Eventually(t, func() bool { st := s.Stats(); return st.Delivered+st.DeadLettered == 3 }, 30*time.Second, 5*time.Millisecond)
	closeAndWait(t, s)

	st := s.Stats()
	require.Equal(t, uint64(1), st.Delivered, "a 200 whose body never ends is delivered; its body is given up at the timeout")
	require.Equal(t, uint64(2), st.DeadLettered)
	for _, e := range entriesWith(logs, "squadcast event dead-lettered") {
		require.Equal(t, "silent", e.ContextMap()["endpoint"])
		require.Contains(t, e.ContextMap()["error"], "attempt timed out after 100ms")
	}
	assertNoSecret(t, logs, secretKey, secretPath)
}

// TestHugeResponseBodies: response bodies are read through a cap, whether
// the answer is a success or an error, and the log keeps only their start.
func TestHugeResponseBodies(t *testing.T) {
	const huge = 1 << 30
	chunk := []byte(strings.Repeat("x", 32<<10))
	var written atomic.Int64
	handlerDone := make(chan struct{}, 2)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		defer func() { handlerDone <- struct{}{} }()
		if strings.HasPrefix(r.URL.Path, "/500/") {
			w.WriteHeader(http.StatusInternalServerError)
		}
		for written.Load() < huge {
			n, err := w.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return // the client hung up
			}
		}
	})
	s, logs, _ := newTestSender(t, Config{
		Endpoints: []Endpoint{
			{Name: "ok", URL: srv.URL + "/200/" + secretKey, Timeout: 10 * time.Second},
			{Name: "err", URL: srv.URL + "/500/" + secretKey, Timeout: 10 * time.Second},
		},
		MaxAge: time.Nanosecond,
	})
	publishOne(t, s, "ok", "a")
	publishOne(t, s, "err", "b")
	require.Eventually(t, func() bool { st := s.Stats(); return st.Delivered+st.DeadLettered == 2 }, 60*time.Second, 5*time.Millisecond)
	closeAndWait(t, s)

	st := s.Stats()
	require.Equal(t, uint64(1), st.Delivered)
	require.Equal(t, uint64(1), st.DeadLettered)
	// Both handlers stop writing: the client closed their connections.
	for range 2 {
		select {
		case <-handlerDone:
		case <-time.After(60 * time.Second):
			t.Fatalf("the server is still writing: %d bytes so far", written.Load())
		}
	}
	require.Less(t, written.Load(), int64(64<<20), "the client read far less than the 1 GiB on offer")
	dead := entriesWith(logs, "squadcast event dead-lettered")
	require.Len(t, dead, 1)
	resp := dead[0].ContextMap()["response"].(string)
	require.Equal(t, strings.Repeat("x", maxErrorBody), resp, "the log keeps the start of the body, capped")
}

// TestUntrustedCertificate: a TLS error is permanent (no retry, at once a
// dead letter) and logged as what it is.
func TestUntrustedCertificate(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { n.Add(1) }))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // its "TLS handshake error" lines
	srv.StartTLS()
	t.Cleanup(srv.Close)

	s, logs, _ := newTestSender(t, Config{Endpoints: []Endpoint{{Name: "tls", URL: srv.URL + "/v2/incidents/api/" + secretKey}}})
	publishOne(t, s, "tls", "a")
	require.Eventually(t, func() bool { return s.Stats().DeadLettered == 1 }, 30*time.Second, 5*time.Millisecond)
	closeAndWait(t, s)

	require.Zero(t, n.Load(), "no request got through")
	require.Zero(t, s.Stats().Retried)
	require.Empty(t, entriesWith(logs, "squadcast delivery attempt failed, will retry"))
	dead := entriesWith(logs, "squadcast event dead-lettered")
	require.Len(t, dead, 1)
	f := dead[0].ContextMap()
	require.Equal(t, "permanent failure", f["reason"])
	require.Equal(t, int64(1), f["attempts"])
	require.Contains(t, f["error"], "tls: failed to verify certificate: x509: certificate signed by unknown authority")
	require.Contains(t, f["error"], "https://127.0.0.1:")
	assertNoSecret(t, logs, secretKey, secretPath)
}
