package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// TestNewDaemonUndoesOnError: when a step of NewDaemon fails (here the
// batch socket, the last listener), the steps before it are undone, in
// reverse: the socket is removed, the outbox closed (a daemon opens it
// again at once), the metrics port freed.
func TestNewDaemonUndoesOnError(t *testing.T) {
	dir := t.TempDir()
	notSocket := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(notSocket, []byte("keep me"), 0o600))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().String()
	require.NoError(t, ln.Close())

	cfg := DefaultConfig()
	cfg.Socket, cfg.BatchSocket = filepath.Join(dir, "s.sock"), notSocket
	cfg.DataDir, cfg.Listen = filepath.Join(dir, "data"), port
	_, err = NewDaemon(cfg, zap.NewNop())
	require.ErrorContains(t, err, "--batch-socket: socket path")

	_, err = os.Lstat(cfg.Socket)
	assert.True(t, os.IsNotExist(err), "the socket is removed")
	b, err := os.ReadFile(notSocket)
	require.NoError(t, err)
	assert.Equal(t, "keep me", string(b))
	ln, err = net.Listen("tcp", port)
	require.NoError(t, err, "the metrics port is free")
	require.NoError(t, ln.Close())

	cfg.BatchSocket = ""
	start := time.Now()
	d, err := NewDaemon(cfg, zap.NewNop())
	require.NoError(t, err, "the outbox is free")
	assert.Less(t, time.Since(start), 5*time.Second)
	fi, err := os.Lstat(cfg.Socket)
	require.NoError(t, err)
	assert.NotZero(t, fi.Mode()&os.ModeSocket)

	// Close, without Run, undoes it all; a second Close does nothing.
	require.NoError(t, d.Close(context.Background()))
	require.NoError(t, d.Close(context.Background()))
	_, err = os.Lstat(cfg.Socket)
	assert.True(t, os.IsNotExist(err), "the socket is removed")
	ln, err = net.Listen("tcp", port)
	require.NoError(t, err, "the metrics port is free")
	require.NoError(t, ln.Close())
}

// TestNewDaemonValidates: NewDaemon refuses a configuration Validate
// refuses, before it creates anything.
func TestNewDaemonValidates(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Socket, cfg.DataDir = filepath.Join(dir, "s.sock"), filepath.Join(dir, "data")
	cfg.Workers = 0
	_, err := NewDaemon(cfg, zap.NewNop())
	require.EqualError(t, err, "--workers must be at least 1, got 0")
	_, err = os.Lstat(cfg.DataDir)
	assert.True(t, os.IsNotExist(err), "no data dir is created")
}
