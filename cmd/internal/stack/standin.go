package stack

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Request is one HTTP request received by a StandIn, as it arrived.
type Request struct {
	Method string
	// Path is the request's URL path (without query).
	Path string
	// Query is the raw query string, if any.
	Query  string
	Header http.Header
	Body   []byte
	// Received is when the request's body had been read.
	Received time.Time
	// Status is the status code the StandIn answered with.
	Status int
}

// StandIn is an HTTP server on 127.0.0.1 standing in for Squadcast: it
// records every request in arrival order and answers 200 with a small JSON
// body, unless told to fail or delay. It is safe for concurrent use.
type StandIn struct {
	// URL is the server's base URL, http://127.0.0.1:PORT, without a trailing slash.
	URL string

	srv     *httptest.Server
	closing chan struct{}

	mu         sync.Mutex
	reqs       []Request
	arrived    chan struct{} // closed and replaced whenever a request is recorded
	failN      int
	failStatus int
	retryAfter string
	delay      time.Duration
	onRequest  func(Request)
	closeOnce  sync.Once
}

// NewStandIn starts a StandIn on a free loopback port. Close it when done.
func NewStandIn() *StandIn {
	s := &StandIn{closing: make(chan struct{}), arrived: make(chan struct{})}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve)) // listens on 127.0.0.1
	s.URL = s.srv.URL
	return s
}

// Close stops the server; requests being delayed are answered at once with 503.
// It is safe to call more than once.
func (s *StandIn) Close() {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.srv.CloseClientConnections()
		s.srv.Close()
	})
}

// FailFirst makes the next n requests (counted from now) fail with status;
// retryAfter, when not empty, is sent as the Retry-After header of those
// answers. FailFirst(0, 0, "") stops failing.
func (s *StandIn) FailFirst(n, status int, retryAfter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN, s.failStatus, s.retryAfter = n, status, retryAfter
}

// SetDelay makes every later response wait d before it is written (the
// request is recorded when it arrives, not after the delay).
func (s *StandIn) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// OnRequest sets a function called, in its own handler goroutine, with each
// recorded request (e.g. to print it). Calls may overlap.
func (s *StandIn) OnRequest(f func(Request)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onRequest = f
}

// Requests returns a copy of all requests recorded so far, in arrival order.
func (s *StandIn) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.reqs))
	copy(out, s.reqs)
	return out
}

// Count returns how many requests have been recorded.
func (s *StandIn) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reqs)
}

// RequestsTo returns the recorded requests whose path starts with prefix, in arrival order.
func (s *StandIn) RequestsTo(prefix string) []Request {
	var out []Request
	for _, r := range s.Requests() {
		if strings.HasPrefix(r.Path, prefix) {
			out = append(out, r)
		}
	}
	return out
}

// WaitFor waits until at least n requests have been recorded and returns
// them all, or fails after timeout saying how many arrived.
func (s *StandIn) WaitFor(n int, timeout time.Duration) ([]Request, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		got, arrived := len(s.reqs), s.arrived
		s.mu.Unlock()
		if got >= n {
			return s.Requests(), nil
		}
		select {
		case <-arrived:
		case <-deadline.C:
			return s.Requests(), fmt.Errorf("stand-in: got %d requests, want at least %d within %s", got, n, timeout)
		}
	}
}

func (s *StandIn) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
		return
	}
	req := Request{
		Method:   r.Method,
		Path:     r.URL.Path,
		Query:    r.URL.RawQuery,
		Header:   r.Header.Clone(),
		Body:     body,
		Received: time.Now(),
		Status:   http.StatusOK,
	}

	s.mu.Lock()
	retryAfter := ""
	if s.failN > 0 {
		s.failN--
		req.Status, retryAfter = s.failStatus, s.retryAfter
	}
	delay, onRequest := s.delay, s.onRequest
	s.reqs = append(s.reqs, req)
	close(s.arrived)
	s.arrived = make(chan struct{})
	s.mu.Unlock()

	if onRequest != nil {
		onRequest(req)
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		case <-s.closing:
			t.Stop()
			http.Error(w, "stand-in closing", http.StatusServiceUnavailable)
			return
		}
	}
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(req.Status)
	if req.Status/100 == 2 {
		io.WriteString(w, `{"status":"ok"}`)
	} else {
		fmt.Fprintf(w, `{"error":"stand-in failing on purpose with %d"}`, req.Status)
	}
}
