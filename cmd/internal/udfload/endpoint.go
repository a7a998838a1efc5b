package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// endpoint is a local HTTP server standing in for Squadcast under load: it
// counts requests per path without keeping their bodies (a memory run sends
// a million), optionally takes delay per request, and tells waiters when a
// count is reached.
type endpoint struct {
	URL string
	srv *httptest.Server

	mu       sync.Mutex
	delay    time.Duration
	arrived  map[string]int // requests arrived, by first path segment
	done     map[string]int // requests answered, by first path segment
	lastDone map[string]time.Time
	onArrive func(path string, t time.Time)
	onBody   func(path string, body []byte, t time.Time)
	changed  chan struct{} // closed and replaced on every change
}

func newEndpoint() *endpoint {
	e := &endpoint{arrived: map[string]int{}, done: map[string]int{}, lastDone: map[string]time.Time{}, changed: make(chan struct{})}
	e.srv = httptest.NewServer(http.HandlerFunc(e.serve))
	e.URL = e.srv.URL
	return e
}

func (e *endpoint) close() { e.srv.Close() }

// setDelay makes every later request take d before it is answered.
func (e *endpoint) setDelay(d time.Duration) {
	e.mu.Lock()
	e.delay = d
	e.mu.Unlock()
}

// setOnArrive sets a function called with each request's path and arrival time.
func (e *endpoint) setOnArrive(f func(path string, t time.Time)) {
	e.mu.Lock()
	e.onArrive = f
	e.mu.Unlock()
}

// setOnBody sets a function called with each request's path, body and
// arrival time (nil: bodies are not read).
func (e *endpoint) setOnBody(f func(path string, body []byte, t time.Time)) {
	e.mu.Lock()
	e.onBody = f
	e.mu.Unlock()
}

func (e *endpoint) bodyHook() func(path string, body []byte, t time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.onBody
}

func segment(path string) string {
	s := strings.TrimPrefix(path, "/")
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	return s
}

func (e *endpoint) serve(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	seg := segment(r.URL.Path)
	e.mu.Lock()
	e.arrived[seg]++
	delay, onArrive := e.delay, e.onArrive
	e.notifyLocked()
	e.mu.Unlock()
	if onArrive != nil {
		onArrive(r.URL.Path, now)
	}
	if onBody := e.bodyHook(); onBody != nil {
		body, _ := io.ReadAll(r.Body)
		onBody(r.URL.Path, body, now)
	}
	_, _ = io.Copy(io.Discard, r.Body)
	if delay > 0 {
		time.Sleep(delay)
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"status":"ok"}`)
	e.mu.Lock()
	e.done[seg]++
	e.lastDone[seg] = time.Now()
	e.notifyLocked()
	e.mu.Unlock()
}

func (e *endpoint) notifyLocked() {
	close(e.changed)
	e.changed = make(chan struct{})
}

// counts returns the requests arrived at and answered for path segment seg.
func (e *endpoint) counts(seg string) (arrived, done int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.arrived[seg], e.done[seg]
}

// waitDone waits until n requests for seg have been answered and returns
// when the last was, or false after timeout.
func (e *endpoint) waitDone(seg string, n int, timeout time.Duration) (time.Time, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		e.mu.Lock()
		got, last, ch := e.done[seg], e.lastDone[seg], e.changed
		e.mu.Unlock()
		if got >= n {
			return last, true
		}
		select {
		case <-ch:
		case <-deadline.C:
			return time.Time{}, false
		}
	}
}
