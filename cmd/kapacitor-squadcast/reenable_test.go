package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// fakeKapacitor serves /kapacitor/v1/tasks like Kapacitor 1.5 and records PATCHes.
type fakeKapacitor struct {
	mu      sync.Mutex
	tasks   []kapacitorTask
	patches []string // "id=status"
	failGet int      // answer 503 to this many GETs first
}

func (f *fakeKapacitor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if u, p, ok := r.BasicAuth(); !ok || u != "admin" || p != "hunter2" {
		http.Error(w, `{"error":"authentication required"}`, http.StatusUnauthorized)
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/kapacitor/v1/tasks":
		if f.failGet > 0 {
			f.failGet--
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		off, _ := strconv.Atoi(r.URL.Query().Get("offset"))
		lim, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		end := min(off+lim, len(f.tasks))
		page := []kapacitorTask{}
		if off < len(f.tasks) {
			page = f.tasks[off:end]
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"tasks": page})
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/kapacitor/v1/tasks/"):
		id := r.URL.Path[len("/kapacitor/v1/tasks/"):]
		f.patches = append(f.patches, id+"?")
		for _, t := range f.tasks {
			if t.ID == id {
				_ = json.NewEncoder(w).Encode(t)
				return
			}
		}
		http.NotFound(w, r)
	case r.Method == http.MethodPatch:
		var body map[string]string
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &body)
		id := r.URL.Path[len("/kapacitor/v1/tasks/"):]
		f.patches = append(f.patches, id+"="+body["status"])
		for i, t := range f.tasks {
			if t.ID == id && t.Executing && body["status"] == "disabled" {
				// Like Kapacitor 1.5: the run on the dead connection ends
				// with an error, saved by the run's goroutine.
				f.tasks[i].Executing, f.tasks[i].Error = false, "squadcast2: stopping UDF server: node aborted"
			}
		}
		w.WriteHeader(http.StatusOK)
	default:
		http.NotFound(w, r)
	}
}

func TestReenabler(t *testing.T) {
	const sq = "stream|from()@squadcast().crit('\"v\" > 1')"
	fk := &fakeKapacitor{failGet: 2, tasks: []kapacitorTask{
		{ID: "dead_conn", Status: "enabled", Executing: true, Script: sq},
		{ID: "broke", Status: "enabled", Error: "squadcast2: write error: broken pipe", Script: "stream @squadcast ()"},
		{ID: "connected_now", Status: "enabled", Executing: true, Script: sq},
		{ID: "bad_option", Status: "enabled", Error: "squadcast2: failed to initialize processes option .crit('x'): parse error", Script: sq},
		{ID: "disabled", Status: "disabled", Script: sq},
		{ID: "starting", Status: "enabled", Script: sq},
		{ID: "other_udf", Status: "enabled", Executing: true, Script: "stream @squadcastle()"},
		{ID: "builtin", Status: "enabled", Executing: true, Script: "stream|alert().post()"},
	}}
	for i := range 150 { // more than one page
		fk.tasks = append(fk.tasks, kapacitorTask{ID: fmt.Sprintf("plain%03d", i), Status: "enabled", Executing: true, Script: "stream|log()"})
	}
	fk.tasks = append(fk.tasks, kapacitorTask{ID: "last_page", Status: "enabled", Executing: true, Script: sq})
	srv := httptest.NewServer(fk)
	defer srv.Close()

	base, err := parseKapacitorURL("http://admin:hunter2@" + srv.Listener.Addr().String())
	require.NoError(t, err)
	var waits []time.Duration
	r := &reenabler{
		base: base, udf: "squadcast", client: srv.Client(), log: zap.NewNop(),
		connected: func() map[string]bool { return map[string]bool{"connected_now": true} },
		retryFor:  time.Minute,
		wait:      func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil },
		settleFor: time.Minute, // the fake saves the error at once: one look is enough (see the patches below)
	}
	restarted, err := r.run(context.Background())
	require.NoError(t, err)
	assert.Equal(t, []string{"dead_conn", "broke", "last_page"}, restarted)
	assert.Equal(t, []string{
		"dead_conn=disabled", "dead_conn?", "dead_conn=enabled", // executing: waits for the old run's error
		"broke=disabled", "broke=enabled", // already stopped: nothing to wait for
		"last_page=disabled", "last_page?", "last_page=enabled",
	}, fk.patches)
	assert.Len(t, waits, 2, "waited for Kapacitor's API twice")
}

func TestReenablerErrorsHideThePassword(t *testing.T) {
	fk := &fakeKapacitor{}
	srv := httptest.NewServer(fk)
	defer srv.Close()
	base, err := parseKapacitorURL("http://admin:wrongpass@" + srv.Listener.Addr().String())
	require.NoError(t, err)
	r := &reenabler{base: base, udf: "squadcast", client: srv.Client(), log: zap.NewNop(),
		connected: func() map[string]bool { return nil }, retryFor: 0, wait: sleepCtx}
	_, err = r.run(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "401")
	assert.NotContains(t, err.Error(), "wrongpass")

	// Unreachable: the url.Error would print the whole URL; it must not.
	srv.Close()
	_, err = r.run(context.Background())
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "wrongpass")
	assert.Contains(t, err.Error(), "GET /kapacitor/v1/tasks")

	_, err = parseKapacitorURL("ftp://admin:wrongpass@h")
	assert.ErrorContains(t, err, `scheme "ftp"`)
	assert.NotContains(t, err.Error(), "wrongpass")
}

func TestUsesUDF(t *testing.T) {
	for script, want := range map[string]bool{
		"@squadcast()":          true,
		"@squadcast ()":         true,
		"@squadcast\n\t()":      true,
		"@squadcast_batch()":    false,
		"@squad()":              false,
		"// squadcast() only":   false,
		"x|y()\n@squadcast(  )": true,
	} {
		assert.Equal(t, want, usesUDF(script, "squadcast"), script)
	}
}
