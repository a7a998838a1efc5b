package udf

import (
	"errors"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Server serves Kapacitor's UDF connections on a listener (a unix socket):
// one Handler per connection, any number at once. Its accept loop is its
// own (the agent library's can hang on Stop): a failing connection ends only
// itself, and a failing Accept is retried with a backoff.
type Server struct {
	cfg HandlerConfig

	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]struct{}
	tasks  map[string]int // initialized connections per Kapacitor task ID
	closed bool
	wg     sync.WaitGroup
}

// NewServer returns a Server whose handlers share cfg.
func NewServer(cfg HandlerConfig) *Server {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return &Server{cfg: cfg, conns: make(map[net.Conn]struct{}), tasks: make(map[string]int)}
}

// Serve accepts connections on ln until Close is called; it then returns nil.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ln.Close()
	}
	s.ln = ln
	s.mu.Unlock()

	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return nil
			}
			// Out of file descriptors and the like: wait and try again.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.cfg.Logger.Error("accept failed; retrying", zap.Error(err), zap.Duration("backoff", backoff))
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if !s.track(conn) {
			conn.Close()
			return nil
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.untrack(conn)
			s.serveConn(conn)
		}()
	}
}

// Connections returns the number of open connections.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// ConnectedTasks returns the IDs of the Kapacitor tasks that have a node
// connected and initialized now.
func (s *Server) ConnectedTasks() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]bool, len(s.tasks))
	for t := range s.tasks {
		out[t] = true
	}
	return out
}

func (s *Server) taskUp(task string, up bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if up {
		s.tasks[task]++
	} else if s.tasks[task]--; s.tasks[task] <= 0 {
		delete(s.tasks, task)
	}
}

// Close stops accepting, closes every connection (Kapacitor then stops their
// tasks) and waits for their handlers to end.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	var err error
	if s.ln != nil {
		err = s.ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

func (s *Server) serveConn(nc net.Conn) {
	h := NewHandler(s.cfg)
	h.onInit = func(task string) { s.taskUp(task, true) }
	defer func() {
		if h.opts != nil {
			s.taskUp(h.taskID, false)
		}
	}()
	defer h.Close()
	if err := newConn(nc, h, s.cfg.MaxFrame).serve(); err != nil && !s.isClosed() {
		h.log.Warn("connection ended with an error", zap.Error(err))
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.Close()
}
