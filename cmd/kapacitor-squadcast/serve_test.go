package main

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/kapacitor/udf/agent"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/cmd/internal/stack"
)

func TestListenUnix(t *testing.T) {
	dir := t.TempDir()

	t.Run("new socket is 0660", func(t *testing.T) {
		path := filepath.Join(dir, "new.sock")
		ln, err := listenUnix(path)
		require.NoError(t, err)
		defer ln.Close()
		fi, err := os.Stat(path)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o660), fi.Mode().Perm())
	})
	t.Run("stale socket is replaced", func(t *testing.T) {
		path := filepath.Join(dir, "stale.sock")
		ln, err := net.Listen("unix", path)
		require.NoError(t, err)
		ln.(*net.UnixListener).SetUnlinkOnClose(false)
		ln.Close() // the file stays, nobody listens: a crashed daemon's socket
		_, err = os.Lstat(path)
		require.NoError(t, err)
		ln2, err := listenUnix(path)
		require.NoError(t, err)
		ln2.Close()
	})
	t.Run("live socket is refused", func(t *testing.T) {
		path := filepath.Join(dir, "live.sock")
		ln, err := net.Listen("unix", path)
		require.NoError(t, err)
		defer ln.Close()
		_, err = listenUnix(path)
		assert.ErrorContains(t, err, "in use by another process")
	})
	t.Run("regular file is refused", func(t *testing.T) {
		path := filepath.Join(dir, "file")
		require.NoError(t, os.WriteFile(path, []byte("keep me"), 0o600))
		_, err := listenUnix(path)
		assert.ErrorContains(t, err, "is not a socket")
		b, _ := os.ReadFile(path)
		assert.Equal(t, "keep me", string(b))
	})
}

func TestRunUsage(t *testing.T) {
	var out, errb bytes.Buffer
	assert.Equal(t, 2, run(nil, &out, &errb))
	assert.Contains(t, errb.String(), "Usage:")

	out.Reset()
	assert.Equal(t, 0, run([]string{"version"}, &out, &errb))
	assert.Contains(t, out.String(), "kapacitor-squadcast ")

	errb.Reset()
	assert.Equal(t, 2, run([]string{"frobnicate"}, &out, &errb))
	assert.Contains(t, errb.String(), `unknown command "frobnicate"`)

	errb.Reset()
	assert.Equal(t, 0, run([]string{"serve", "--help"}, &out, &errb))
	for _, flag := range []string{"-socket", "-data-dir", "-url", "-format", "-workers", "-log-level", "-log-format", "-shutdown-timeout", "-kapacitor-url", "-udf-name", "-batch-socket"} {
		assert.Contains(t, errb.String(), flag)
	}
}

func TestServeBadFlags(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "file"), nil, 0o600))
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--data-dir", dir}, 1, "--socket is required"},
		{[]string{"--socket", filepath.Join(dir, "s")}, 1, "--data-dir is required"},
		{[]string{"--socket", filepath.Join(dir, "s"), "--data-dir", dir, "--workers", "0"}, 1, "--workers must be at least 1"},
		{[]string{"--socket", filepath.Join(dir, "s"), "--data-dir", dir, "--queue-size", "-5"}, 1, "--queue-size must be at least 1, got -5"},
		{[]string{"--socket", filepath.Join(dir, "s"), "--data-dir", dir, "--log-level", "loud"}, 2, "--log-level"},
		{[]string{"--socket", filepath.Join(dir, "s"), "--data-dir", dir, "--log-format", "xml"}, 2, "--log-format"},
		{[]string{"--socket", filepath.Join(dir, "s"), "--data-dir", dir, "--url", "ftp://h/SECRETKEY"}, 1, "scheme"},
		{[]string{"--socket", filepath.Join(dir, "s"), "--batch-socket", filepath.Join(dir, "s"), "--data-dir", dir}, 1, "--batch-socket must differ from --socket"},
		{[]string{"--socket", filepath.Join(dir, "s"), "--batch-socket", filepath.Join(dir, "file"), "--data-dir", dir}, 1, "--batch-socket: socket path"},
		{[]string{"--bogus"}, 2, "flag provided but not defined"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var errb bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			assert.Equal(t, tc.code, runServe(ctx, tc.args, &errb))
			assert.Contains(t, errb.String(), tc.want)
			assert.NotContains(t, errb.String(), "SECRETKEY")
		})
	}
}

// TestServeLifecycle: serve starts, creates its data dir and sockets (the
// batch socket answers Info as a batch UDF), and on cancellation removes
// the sockets and returns cleanly.
func TestServeLifecycle(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "sq.sock")
	batchSock := filepath.Join(dir, "sqb.sock")
	data := filepath.Join(dir, "data", "nested")
	ctx, cancel := context.WithCancel(context.Background())
	var logs stack.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- runServe(ctx, []string{"--socket", sock, "--batch-socket", batchSock, "--data-dir", data, "--url", "http://127.0.0.1:1/v1/incidents/kapacitor/SECRETKEY"}, &logs)
	}()
	require.Eventually(t, func() bool { _, err := os.Stat(sock); return err == nil }, 10*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { _, err := os.Stat(batchSock); return err == nil }, 10*time.Second, 10*time.Millisecond)
	for sock, want := range map[string]agent.EdgeType{sock: agent.EdgeType_STREAM, batchSock: agent.EdgeType_BATCH} {
		c, err := net.Dial("unix", sock)
		require.NoError(t, err)
		require.NoError(t, agent.WriteMessage(&agent.Request{Message: &agent.Request_Info{Info: &agent.InfoRequest{}}}, c))
		require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
		var res agent.Response
		var buf []byte
		require.NoError(t, agent.ReadMessage(&buf, bufio.NewReader(c), &res))
		assert.Equal(t, want, res.GetInfo().GetWants(), sock)
		assert.Equal(t, want, res.GetInfo().GetProvides(), sock)
		c.Close()
	}
	fi, err := os.Stat(data)
	require.NoError(t, err)
	assert.True(t, fi.IsDir())
	cancel()
	select {
	case code := <-done:
		assert.Equal(t, 0, code)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	for _, sock := range []string{sock, batchSock} {
		_, err = os.Lstat(sock)
		assert.True(t, os.IsNotExist(err), "the socket %s is removed at shutdown", sock)
	}
	assert.NotContains(t, logs.String(), "SECRETKEY")
}

// TestApplyGCPercent: without $GOGC the daemon collects at 1.5 times the
// live heap (GOGC 50); a $GOGC given stands, as the runtime read it.
func TestApplyGCPercent(t *testing.T) {
	before := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(before) })
	assert.Equal(t, "200", applyGCPercent("200"))
	assert.Equal(t, 100, debug.SetGCPercent(100), "a $GOGC given is left to the runtime")
	assert.Equal(t, "50", applyGCPercent(""))
	assert.Equal(t, 50, debug.SetGCPercent(100))
}
