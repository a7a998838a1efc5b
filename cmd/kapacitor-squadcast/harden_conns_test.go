package main

import (
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDaemonManyConnections: many task connections open, initialize, send
// points, read their events and close, all at once, while deliveries run;
// the daemon stays healthy, delivers every event, and keeps no goroutine or
// file descriptor of the connections afterwards.
func TestDaemonManyConnections(t *testing.T) {
	const conns, points = 50, 10
	srv, count := recordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		time.Sleep(2 * time.Millisecond)
	})
	d := startTestDaemon(t, "--url", srv.URL+"/ok/v1/incidents/kapacitor/KEY0123456789", "--workers", "4")
	goroutinesBefore, fdsBefore := runtime.NumGoroutine(), openFDs(t)

	errs := make(chan error, conns)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- runManyConnectionsTask(t, d.socket, i, points)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return count("/ok") == conns*points }, 120*time.Second, 20*time.Millisecond,
		"every event delivered: %d of %d", count("/ok"), conns*points)

	// Healthy: a new task works.
	checkNewTaskDelivers(t, d.socket, count, conns*points+1)

	// No connection goroutine is left, and once the stand-in drops its
	// keep-alive connections, goroutines and file descriptors are back
	// where they were.
	srv.CloseClientConnections()
	checkConnectionsReleased(t, goroutinesBefore, fdsBefore)
	require.Equal(t, 0, d.stop())
	assert.NotContains(t, d.logs.String(), `"level":"error"`)
}

// runManyConnectionsTask is connection i of TestDaemonManyConnections: it
// initializes task i, sends points alternating CRITICAL and OK (an event
// each), reads one point back per event, and closes.
func runManyConnectionsTask(t *testing.T, socket string, i, points int) error {
	k, err := dialUDF(t, socket)
	if err != nil {
		return err
	}
	defer k.conn.Close()
	res, err := k.init(fmt.Sprintf("task%d", i), strOpt("crit", `"v" > 90`))
	if err != nil {
		return err
	}
	if !res.Success {
		return fmt.Errorf("init: %s", res.Error)
	}
	for p := range points {
		v := 95.0 // CRITICAL, then OK, and so on: an event each
		if p%2 == 1 {
			v = 50
		}
		if err := k.point(fmt.Sprintf("h%d", i), int64(p+1), v); err != nil {
			return err
		}
	}
	pts, es, err := k.sync(99)
	if err != nil {
		return err
	}
	if len(pts) != points || len(es) > 0 {
		return fmt.Errorf("connection %d: %d events, errors %v", i, len(pts), es)
	}
	return nil
}

// checkNewTaskDelivers runs one more task whose event must be delivered,
// the stand-in's count of /ok reaching want.
func checkNewTaskDelivers(t *testing.T, socket string, count func(prefix string) int, want int) {
	t.Helper()
	k, err := dialUDF(t, socket)
	require.NoError(t, err)
	res, err := k.init("after", strOpt("crit", `"v" > 90`))
	require.NoError(t, err)
	require.True(t, res.Success)
	require.NoError(t, k.point("after", 1, 95))
	pts, _, err := k.sync(1)
	require.NoError(t, err)
	require.Len(t, pts, 1)
	require.NoError(t, k.conn.Close())
	require.Eventually(t, func() bool { return count("/ok") == want }, 30*time.Second, 10*time.Millisecond)
}

// checkConnectionsReleased waits up to 30s until no connection goroutine
// is left and the goroutines and file descriptors are back to where they
// were, then checks each.
func checkConnectionsReleased(t *testing.T, goroutinesBefore, fdsBefore int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for (connGoroutines() > 0 || runtime.NumGoroutine() > goroutinesBefore+2 || openFDs(t) > fdsBefore) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	require.Zero(t, connGoroutines(), "connection goroutines left")
	if n := runtime.NumGoroutine(); n > goroutinesBefore+2 {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutines leaked: before %d, now %d\n%s", goroutinesBefore, n, buf[:runtime.Stack(buf, true)])
	}
	require.LessOrEqual(t, openFDs(t), fdsBefore, "file descriptors leaked")
}
