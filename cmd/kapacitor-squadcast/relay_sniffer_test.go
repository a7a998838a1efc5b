package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"
)

// relaySniffer is an HTTP proxy between Kapacitor and the relay that
// records every request it forwards and the relay's answer: which events
// the relay acknowledged (200), and which it never answered (the daemon
// was down: Kapacitor's loss, answered 502 here).
type relaySniffer struct {
	// URL is the proxy's base URL, http://127.0.0.1:PORT.
	URL string

	target string // the relay's base URL
	srv    *httptest.Server
	client *http.Client

	mu       sync.Mutex
	seen     []sniffed
	acked    int
	afterAck func(acked int)
}

// sniffed is one request through the proxy: its body, and the relay's
// status (0 when it did not answer).
type sniffed struct {
	body   string
	status int
}

// newRelaySniffer starts a proxy to the relay at relayAddr (host:port).
// Close it when done.
func newRelaySniffer(relayAddr string) *relaySniffer {
	s := &relaySniffer{
		target: "http://" + relayAddr,
		// A new connection per request: after a SIGKILL no request goes
		// out on a dead connection, and each refusal is immediate.
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close stops the proxy.
func (s *relaySniffer) Close() { s.srv.Close() }

func (s *relaySniffer) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, s.target+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	req.Header = r.Header.Clone()
	resp, err := s.client.Do(req)
	var answer []byte
	status := 0
	if err == nil {
		answer, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			status = resp.StatusCode
		}
	}
	s.mu.Lock()
	s.seen = append(s.seen, sniffed{body: string(body), status: status})
	if status == http.StatusOK {
		s.acked++
	}
	acked, afterAck := s.acked, s.afterAck
	s.mu.Unlock()
	if status == http.StatusOK && afterAck != nil {
		afterAck(acked)
	}
	if status == 0 {
		http.Error(w, "the relay did not answer", http.StatusBadGateway)
		return
	}
	w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
	w.WriteHeader(status)
	_, _ = w.Write(answer)
}

// AfterAck sets a function called with the number of requests the relay
// has answered 200 so far, after each such answer and before it is passed
// on to Kapacitor (which sends nothing more meanwhile: one request at a
// time per handler).
func (s *relaySniffer) AfterAck(f func(acked int)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.afterAck = f
}

// Seen returns the requests forwarded so far, in order.
func (s *relaySniffer) Seen() []sniffed {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sniffed(nil), s.seen...)
}

// counts returns how many requests were forwarded and how many of them
// the relay answered 200.
func (s *relaySniffer) counts() (seen, acked int) {
	for _, r := range s.Seen() {
		if r.status == http.StatusOK {
			acked++
		}
		seen++
	}
	return seen, acked
}
