package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// relayBody is an alert as Kapacitor's .post() sends it.
const relayBody = `{"id":"cpu:host=a","message":"cpu:host=a is CRITICAL","details":"{\u0026#34;x\u0026#34;:1}","time":"2024-01-01T00:00:00Z","duration":0,"level":"CRITICAL","data":{"series":[{"name":"cpu","tags":{"host":"a"},"columns":["time","value"],"values":[["2024-01-01T00:00:00Z",95]]}]},"previousLevel":"OK","recoverable":true}` + "\n"

// freeAddr returns a loopback host:port nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// postRelay posts body to the relay and returns the status and answer.
func postRelay(t *testing.T, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServeRelay: serve --relay-listen with a token: a request without it
// is refused, one with it is answered once written, and its body reaches
// the endpoint byte for byte; metrics count both, and no secret is logged.
func TestServeRelay(t *testing.T) {
	var mu sync.Mutex
	var got []string
	echo := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, string(b))
		mu.Unlock()
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = echo.Serve(ln) }()
	t.Cleanup(func() { echo.Close() })

	const token = "relay-t0ken-5ecret"
	tokenFile := filepath.Join(t.TempDir(), "relay.token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(token+"\n"), 0o600))
	relayAddr, metricsAddr := freeAddr(t), freeAddr(t)
	d := startTestDaemon(t, "--url", "http://"+ln.Addr().String()+"/v1/incidents/kapacitor/"+cfgSecret,
		"--relay-listen", relayAddr, "--relay-token-file", tokenFile, "--listen", metricsAddr)
	url := "http://" + relayAddr + "/relay/default"

	code, answer := postRelay(t, url, "", relayBody)
	assert.Equal(t, http.StatusUnauthorized, code, answer)
	code, answer = postRelay(t, url, "wrong", relayBody)
	assert.Equal(t, http.StatusUnauthorized, code, answer)
	code, answer = postRelay(t, "http://"+relayAddr+"/relay/other", token, relayBody)
	assert.Equal(t, http.StatusNotFound, code)
	assert.Contains(t, answer, "other")
	code, answer = postRelay(t, url, token, relayBody)
	assert.Equal(t, http.StatusOK, code, answer)
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 1 }, 10*time.Second, 5*time.Millisecond)
	mu.Lock()
	assert.Equal(t, relayBody, got[0], "byte for byte")
	mu.Unlock()

	_, metrics := scrape(t, "http://"+metricsAddr, "/metrics")
	assert.Contains(t, metrics, `kapacitor_squadcast_relay_requests_total{result="accepted"} 1`)
	assert.Contains(t, metrics, `kapacitor_squadcast_relay_requests_total{result="unauthorized"} 2`)
	assert.Contains(t, metrics, `kapacitor_squadcast_relay_requests_total{result="unknown_endpoint"} 1`)
	assert.Contains(t, metrics, `kapacitor_squadcast_events_accepted_total{endpoint="default",source="relay"} 1`)
	assert.Equal(t, 0, d.stop())
	logs := d.logs.String()
	assert.Contains(t, logs, "serving the relay")
	for _, secret := range []string{token, cfgSecret} {
		assert.NotContains(t, logs, secret)
		assert.NotContains(t, metrics, secret)
	}
}

// TestServeRelayErrors: a relay on an address that is not loopback needs a
// token, and a token file must hold one; the daemon refuses to start and
// says why, without showing a token.
func TestServeRelayErrors(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "s.sock")
	empty := filepath.Join(dir, "empty.token")
	require.NoError(t, os.WriteFile(empty, []byte(" \n"), 0o600))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--relay-listen", ":9095"}, `--relay-listen: ":9095" is not a loopback address, and the relay has no token: give --relay-token-file`},
		{[]string{"--relay-listen", "0.0.0.0:9095"}, `is not a loopback address`},
		{[]string{"--relay-listen", "nope"}, `--relay-listen: "nope" is not host:port`},
		{[]string{"--relay-listen", "127.0.0.1:9095", "--relay-token-file", empty}, "--relay-token-file: " + empty + " holds no token"},
		{[]string{"--relay-listen", "127.0.0.1:9095", "--relay-token-file", filepath.Join(dir, "missing")}, "--relay-token-file: read the token"},
		{[]string{"--relay-max-body", "10"}, "--relay-max-body must be at least 1KiB"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var errb bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			args := append([]string{"--socket", sock, "--data-dir", dir}, tc.args...)
			assert.Equal(t, 1, runServe(ctx, args, &errb))
			out := errb.String()
			assert.True(t, strings.Contains(out, tc.want) || strings.Contains(out, strings.ReplaceAll(tc.want, `"`, `\"`)),
				"%q does not contain %q", out, tc.want)
			_, err := os.Lstat(sock)
			assert.True(t, os.IsNotExist(err), "no socket is created")
		})
	}
	assert.True(t, loopback("localhost:1"))
	assert.True(t, loopback("[::1]:1"))
	assert.False(t, loopback("[::]:1"))
	assert.False(t, loopback("example.com:1"))
}
