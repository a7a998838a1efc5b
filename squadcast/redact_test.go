package squadcast

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

const querySecret = "q5ecretT0ken987654"

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://api.squadcast.com/v2/incidents/api/" + secretKey: "https://api.squadcast.com/[redacted]",
		"http://127.0.0.1:9/x?token=" + querySecret:               "http://127.0.0.1:9/[redacted]",
		"https://user:" + querySecret + "@h.example/":             "https://h.example/[redacted]",
		"https://h.example":                          "https://h.example",
		"https://h.example#" + querySecret:           "https://h.example/[redacted]",
		"not a url " + secretKey:                     "[redacted url]",
		"https://api.squadcast.com/%zz/" + secretKey: "[redacted url]",
		"/v2/incidents/api/" + secretKey:             "[redacted url]",
	} {
		require.Equal(t, want, RedactURL(in), in)
	}
}

func TestRedactError(t *testing.T) {
	raw := "https://api.squadcast.com/v2/incidents/api/" + secretKey + "?token=" + querySecret
	secrets := urlSecrets(raw)
	inner := errors.New("dial tcp 1.2.3.4:443: connect: connection refused")
	ue := &url.Error{Op: "Post", URL: raw, Err: inner}

	got := redactError(ue, secrets)
	var gotUE *url.Error
	require.True(t, errors.As(got, &gotUE), "stays a *url.Error")
	require.Equal(t, "https://api.squadcast.com/[redacted]", gotUE.URL)
	require.True(t, errors.Is(got, inner), "keeps its cause")
	require.Equal(t, raw, ue.URL, "the original is not modified")

	// Errors that quote the URL, or just the key, in their text.
	for _, err := range []error{
		fmt.Errorf("wrapped: %w", ue),
		errors.New("server said: no service for key " + secretKey),
		errors.New("path " + url.PathEscape("/v2/incidents/api/"+secretKey) + " token=" + querySecret),
		&DeliveryError{Attempts: 2, Body: "bad key " + secretKey, Err: ue},
	} {
		got := redactError(err, secrets)
		require.NotContains(t, got.Error(), secretKey)
		require.NotContains(t, got.Error(), querySecret)
		if de, ok := got.(*DeliveryError); ok {
			require.NotContains(t, de.Body, secretKey)
		}
		// What it unwraps to must be clean too.
		for e := errors.Unwrap(got); e != nil; e = errors.Unwrap(e) {
			require.NotContains(t, e.Error(), secretKey)
		}
	}
	require.Nil(t, redactError(nil, secrets))
	plain := errors.New("plain")
	require.Same(t, plain, redactError(plain, secrets))
}

// TestNoSecretLeaks runs deliveries into every kind of failure, with a secret
// key in the URL path and query, and checks every log entry and every
// returned error.
func TestNoSecretLeaks(t *testing.T) {
	// A port with nothing listening: connection refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	refused := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())

	// A server that echoes the URL back in its error bodies, and one that never answers.
	echo := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		code := http.StatusBadRequest
		if strings.HasPrefix(r.URL.Path, "/500/") {
			code = http.StatusInternalServerError
		}
		w.WriteHeader(code)
		_, _ = fmt.Fprintf(w, "no service for %s (key %s)", r.URL.String(), secretKey)
	})
	release := make(chan struct{})
	stuck := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // runs before the server's Close

	cases := []struct {
		name, base, path string
		wantErr          string
	}{
		{name: "connection refused", base: refused, path: "/refused/", wantErr: "connection refused"},
		{name: "timeout", base: stuck.URL, path: "/timeout/", wantErr: "attempt timed out after 50ms"},
		{name: "500 with retries", base: echo.URL, path: "/500/", wantErr: "http status 500"},
		{name: "400 permanent", base: echo.URL, path: "/400/", wantErr: "http status 400"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			checkNoLeak(t, tt.base+tt.path+"api/"+secretKey+"?token="+querySecret, tt.path, tt.wantErr)
		})
	}
}

// checkNoLeak delivers an event to raw, which fails with wantErr, through
// the queue and directly, and checks that the error, the logs and the
// outbox's listing show neither the key, nor the query's secret, nor the
// URL's path (path).
func checkNoLeak(t *testing.T, raw, path, wantErr string) {
	// Every event is older than this max age: its first failed attempt is its last.
	s, logs, _ := newTestSender(t, Config{
		Endpoints: []Endpoint{{Name: "leaky", URL: raw, Timeout: 50 * time.Millisecond}},
		MaxAge:    time.Nanosecond,
	})
	secrets := []string{secretKey, querySecret, path + "api"}

	// Through the queue: everything ends up in the logs.
	p, err := s.Open(udf.Destination{Endpoint: "leaky"})
	require.NoError(t, err)
	require.NoError(t, p.Publish(udf.Event{ID: "leak", Level: udf.Critical}))
	// Directly: the error of the attempt send makes.
	j := &job{target: p.(*publisher).t, id: "direct", level: udf.Critical, body: []byte(`{}`)}
	res := s.send(j)
	require.NotNil(t, res.err)
	sendErr := error(res.err)
	closeAndWait(t, s)

	require.Error(t, sendErr)
	require.ErrorContains(t, sendErr, wantErr)
	for e := error(sendErr); e != nil; e = errors.Unwrap(e) {
		for _, sec := range secrets {
			require.NotContains(t, e.Error(), sec)
		}
	}
	var de *DeliveryError
	require.True(t, errors.As(sendErr, &de))
	for _, sec := range secrets {
		require.NotContains(t, de.Body, sec)
	}

	failed := entriesWith(logs, "squadcast event dead-lettered")
	require.Len(t, failed, 1)
	require.Contains(t, failed[0].ContextMap()["error"], wantErr)
	assertNoSecret(t, logs, secrets...)
	require.Equal(t, uint64(1), s.Stats().DeadLettered)

	// The outbox stores the URL, but its listing never shows it.
	o, err := OpenOutbox(OutboxPath(s.cfg.DataDir), true)
	require.NoError(t, err)
	defer o.Close()
	l := listOutbox(t, o)
	require.Len(t, l, 1)
	require.Contains(t, l[0].LastError, wantErr)
	text := fmt.Sprintf("%+v", l)
	for _, sec := range secrets {
		require.NotContains(t, text, sec)
	}
}

// TestCloseErrorHasNoSecret aborts an attempt in flight.
func TestCloseErrorHasNoSecret(t *testing.T) {
	arrived := make(chan struct{}, 1)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // so that the server notices the client going away
		arrived <- struct{}{}
		<-r.Context().Done()
	})
	s, logs, _ := newTestSender(t, Config{Endpoints: []Endpoint{{Name: "default", URL: srv.URL + "/v2/incidents/api/" + secretKey}}})
	p, err := s.Open(udf.Destination{})
	require.NoError(t, err)
	require.NoError(t, p.Publish(udf.Event{ID: "a", Level: udf.Critical}))
	<-arrived

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = s.Close(ctx)
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorContains(t, err, "1 event(s) still pending")
	require.NotContains(t, err.Error(), secretKey)
	require.Len(t, entriesWith(logs, "squadcast delivery aborted by shutdown; the event stays in the outbox"), 1)
	assertNoSecret(t, logs, secretKey, secretPath)
}
