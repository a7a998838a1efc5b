package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast"
	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

const outboxKey = "0utb0xS3cretKey9876543210"

// runCLI runs the binary's run function and returns its exit code and output.
func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestOutboxCommands fills a data dir through the squadcast API (a dead
// letter after a 400, pending events after 503s), then lists, retries and
// drops them with the CLI, checking that no output shows the URL or key.
func TestOutboxCommands(t *testing.T) {
	srv, requests := outboxStandIn()
	defer srv.Close()
	url := srv.URL + "/v1/incidents/kapacitor/" + outboxKey
	secrets := []string{outboxKey, "/v1/incidents", srv.URL + "/"}
	noSecret := func(t *testing.T, texts ...string) {
		t.Helper()
		for _, text := range texts {
			for _, sec := range secrets {
				assert.NotContains(t, text, sec)
			}
		}
	}

	dir := filepath.Join(t.TempDir(), "data")
	code, out, errOut := runCLI("outbox", "list", "--data-dir", dir)
	assert.Equal(t, 1, code)
	assert.Empty(t, out)
	assert.Contains(t, errOut, "has the daemon run with this data dir?")

	fillOutbox(t, url, dir, requests)
	checkOutboxList(t, dir, noSecret)
	checkOutboxRetry(t, dir, noSecret)
	checkOutboxDrop(t, dir)
}

// outboxStandIn answers 400 to the event "bad" (its body echoing the key
// and URL) and 503 with Retry-After: 3600 to every other; requests counts
// the requests.
func outboxStandIn() (srv *httptest.Server, requests *atomic.Int64) {
	requests = new(atomic.Int64)
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			ID string `json:"id"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		requests.Add(1)
		if body.ID == "bad" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, "unknown key "+outboxKey+" at "+r.URL.String())
			return
		}
		w.Header().Set("Retry-After", "3600")
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	return srv, requests
}

// fillOutbox publishes three events through a squadcast sender on dir,
// waits until "bad" is dead-lettered, checks that the CLI refuses the data
// dir while the sender holds it, then closes the sender with the two
// others still pending.
func fillOutbox(t *testing.T, url, dir string, requests *atomic.Int64) {
	t.Helper()
	s, err := squadcast.New(squadcast.Config{Endpoints: []squadcast.Endpoint{{Name: "default", URL: url}}, DataDir: dir, Workers: 1})
	require.NoError(t, err)
	p, err := s.Open(udf.Destination{})
	require.NoError(t, err)
	for _, id := range []string{"bad", "good1", "cpu:host=a\tb"} {
		require.NoError(t, p.Publish(udf.Event{ID: id, Message: "m", Level: udf.Critical, TaskID: "t"}))
	}
	require.NoError(t, p.Flush(nil))
	require.Eventually(t, func() bool { return s.Stats().DeadLettered == 1 && requests.Load() >= 2 }, 10*time.Second, time.Millisecond)

	code, _, errOut := runCLI("outbox", "list", "--data-dir", dir)
	assert.Equal(t, 1, code, "the running daemon holds the outbox")
	assert.Contains(t, errOut, "the data dir is in use by a running daemon; stop it first")
	code, _, errOut = runCLI("outbox", "drop", "--data-dir", dir, "1")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "the data dir is in use by a running daemon; stop it first")

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err = s.Close(ctx) // the 503s keep two events pending
	require.ErrorContains(t, err, "2 event(s) still pending")
}

// checkOutboxList: `outbox list` shows the two pending events and the dead
// letter, the last error redacted.
func checkOutboxList(t *testing.T, dir string, noSecret func(*testing.T, ...string)) {
	t.Helper()
	code, out, errOut := runCLI("outbox", "list", "--data-dir", dir)
	require.Equal(t, 0, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 6, out)
	assert.Regexp(t, `^STATE +SEQ +ENDPOINT +INCIDENT +LEVEL +AGE +ATTEMPTS +LAST ERROR$`, lines[0])
	assert.Regexp(t, `^pending +2 +default +good1 +CRITICAL +\d+s +[01] +`, lines[1])
	assert.Regexp(t, `^pending +3 +default +"cpu:host=a\\tb" +CRITICAL +`, lines[2])
	assert.Regexp(t, `^dead +1 +default +bad +CRITICAL +\d+s +1 +permanent failure: http status 400 Bad Request: unknown key \[redacted\] at \[redacted\]$`, lines[3])
	assert.Equal(t, "2 pending, 1 dead", lines[5])
	noSecret(t, out, errOut)
}

// checkOutboxRetry: `outbox retry` moves the dead letter back to pending,
// once.
func checkOutboxRetry(t *testing.T, dir string, noSecret func(*testing.T, ...string)) {
	t.Helper()
	code, out, errOut := runCLI("outbox", "retry", "--data-dir", dir)
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, "moved 1 dead letter(s) back to pending; the daemon sends them when it starts\n", out)
	code, out, _ = runCLI("outbox", "retry", "--data-dir", dir)
	require.Equal(t, 0, code)
	assert.Equal(t, "no dead letters\n", out)
	code, out, _ = runCLI("outbox", "list", "--data-dir", dir)
	require.Equal(t, 0, code)
	assert.Regexp(t, `\npending +1 +default +bad +CRITICAL +\d+s +0 +-\n`, out)
	assert.Contains(t, out, "3 pending, 0 dead")
	noSecret(t, out)
}

// checkOutboxDrop: `outbox drop` drops the events it is given, names a
// sequence number it does not know, and empties the outbox.
func checkOutboxDrop(t *testing.T, dir string) {
	t.Helper()
	code, out, errOut := runCLI("outbox", "drop", "1", "--data-dir", dir, "3", "99")
	assert.Equal(t, 1, code)
	assert.Equal(t, "dropped 2 event(s)\n", out)
	assert.Contains(t, errOut, "no event with sequence number 99")
	code, out, _ = runCLI("outbox", "list", "--data-dir", dir)
	require.Equal(t, 0, code)
	assert.Contains(t, out, "good1")
	assert.NotContains(t, out, "bad")
	assert.Contains(t, out, "1 pending, 0 dead")
	code, _, _ = runCLI("outbox", "drop", "--data-dir", dir, "2")
	require.Equal(t, 0, code)
	code, out, _ = runCLI("outbox", "list", "--data-dir", dir)
	require.Equal(t, 0, code)
	assert.Equal(t, "the outbox is empty\n", out)
}

func TestOutboxUsage(t *testing.T) {
	dir := t.TempDir()
	noDataDir := filepath.Join(dir, "nodir.toml")
	require.NoError(t, os.WriteFile(noDataDir, []byte("workers = 2\n"), 0o600))
	withDataDir := filepath.Join(dir, "dir.toml")
	require.NoError(t, os.WriteFile(withDataDir, []byte(`data-dir = "`+filepath.Join(dir, "from-config")+`"`+"\n"), 0o600))
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"outbox"}, 2, "kapacitor-squadcast outbox list  (--data-dir DIR | --config FILE)"},
		{[]string{"outbox", "--help"}, 0, "move every dead letter back to pending"},
		{[]string{"outbox", "frob"}, 2, `unknown command "frob"`},
		{[]string{"outbox", "list", "--help"}, 0, "-data-dir directory"},
		{[]string{"outbox", "retry", "-h"}, 0, "Usage: kapacitor-squadcast outbox retry (--data-dir DIR | --config FILE)"},
		{[]string{"outbox", "drop", "--help"}, 0, "Usage: kapacitor-squadcast outbox drop (--data-dir DIR | --config FILE) SEQ..."},
		{[]string{"outbox", "list"}, 2, "--data-dir (or --config) is required"},
		{[]string{"outbox", "list", "--config", noDataDir}, 2, "sets no data-dir: give --data-dir"},
		{[]string{"outbox", "list", "--config", filepath.Join(dir, "missing.toml")}, 1, "read config file"},
		{[]string{"outbox", "list", "--config", withDataDir}, 1, "open outbox " + filepath.Join(dir, "from-config", "outbox.db")},
		{[]string{"outbox", "list", "--data-dir", dir, "extra"}, 2, "unexpected arguments: [extra]"},
		{[]string{"outbox", "list", "--bogus"}, 2, "flag provided but not defined"},
		{[]string{"outbox", "drop", "--data-dir", dir}, 2, "give the sequence numbers"},
		{[]string{"outbox", "drop", "--data-dir", dir, "x1"}, 2, `"x1" is not a sequence number`},
		{[]string{"outbox", "drop", "--data-dir", dir, "0"}, 2, `"0" is not a sequence number`},
		{[]string{"help"}, 0, "kapacitor-squadcast outbox list|retry|drop"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, errOut := runCLI(tc.args...)
			assert.Equal(t, tc.code, code)
			assert.Contains(t, out+errOut, tc.want)
		})
	}
}

func TestAge(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second:                                "0s",
		42*time.Second + time.Millisecond:           "42s",
		3*time.Minute + 12*time.Second:              "3m12s",
		5*time.Hour + 2*time.Minute + 9*time.Second: "5h2m",
		3*24*time.Hour + 4*time.Hour + time.Minute:  "3d4h",
	} {
		assert.Equal(t, want, age(d), d.String())
	}
}

// TestServeDeliveryFlags: serve documents and checks --rate-limit,
// --retry-max-wait and --max-age, and keeps its outbox in --data-dir.
func TestServeDeliveryFlags(t *testing.T) {
	code, _, errOut := runCLI("serve", "--help")
	assert.Equal(t, 0, code)
	for _, want := range []string{"-rate-limit rate", "300/m", "(default none)", "-retry-max-wait wait", "(default 5m0s)", "-max-age duration", "(default 24h0m0s)"} {
		assert.Contains(t, errOut, want)
	}

	dir := t.TempDir()
	sock := filepath.Join(dir, "s.sock")
	url := "http://127.0.0.1:1/v1/incidents/kapacitor/" + outboxKey
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--rate-limit", "5/d"}, 2, `invalid value "5/d" for flag -rate-limit: rate limit "5/d": unknown unit "d"`},
		{[]string{"--rate-limit", "5/s"}, 1, "--rate-limit limits the default endpoint: it needs --url or SQUADCAST_WEBHOOK_URL"},
		{[]string{"--url", url, "--retry-max-wait", "500ms"}, 1, "--retry-max-wait must be at least 1s, got 500ms"},
		{[]string{"--url", url, "--max-age", "0s"}, 1, "--max-age must be positive, got 0s"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Setenv("SQUADCAST_WEBHOOK_URL", "")
			var errb bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			args := append([]string{"--socket", sock, "--data-dir", dir}, tc.args...)
			assert.Equal(t, tc.code, runServe(ctx, args, &errb))
			assert.Contains(t, errb.String(), tc.want)
			assert.NotContains(t, errb.String(), outboxKey)
		})
	}

	data := filepath.Join(dir, "data")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var logs bytes.Buffer
	go func() {
		done <- runServe(ctx, []string{"--socket", sock, "--data-dir", data, "--url", url,
			"--rate-limit", "15/m", "--retry-max-wait", "1m", "--max-age", "1h"}, &logs)
	}()
	require.Eventually(t, func() bool {
		code, _, errOut := runCLI("outbox", "list", "--data-dir", data)
		return code == 1 && strings.Contains(errOut, "in use by a running daemon")
	}, 20*time.Second, 10*time.Millisecond, "the daemon holds its outbox")
	cancel()
	select {
	case code := <-done:
		assert.Equal(t, 0, code, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	code, out, errOut := runCLI("outbox", "list", "--data-dir", data)
	assert.Equal(t, 0, code, errOut)
	assert.Equal(t, "the outbox is empty\n", out)
}
