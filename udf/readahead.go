package udf

import (
	"errors"
	"io"
	"os"
	"sync/atomic"
	"time"
)

// maxReadAhead bounds the input a connection reads ahead while its handler
// waits for the disk: beyond it Kapacitor waits, as it would on the socket.
const maxReadAhead = 4 << 20

// source is what a connection's bufio.Reader reads from: input read ahead
// during a flush first, then the connection itself.
//
// Kapacitor writes each point to the socket with its own writes, so the
// socket holds only a hundred or so points: while the handler waits for
// the disk before it handles more input (Handler.Flush), Kapacitor would
// soon block on the full socket, and its whole task with it. So while
// Flush waits, a goroutine moves the waiting input into memory (up to
// maxReadAhead): Kapacitor carries on, and the input is handled once
// Flush returns, in order, exactly as if it had stayed in the socket.
type source struct {
	rw io.Reader
	// deadline is rw's SetReadDeadline; nil if it has none (no read-ahead).
	deadline func(time.Time) error

	pending []byte // read ahead, not yet consumed from off
	off     int
	err     error // the error that ended a read-ahead, returned after pending
}

// newSource returns a source reading rw, with read-ahead when rw has a
// read deadline.
func newSource(rw io.Reader) *source {
	s := &source{rw: rw}
	if d, ok := rw.(interface{ SetReadDeadline(time.Time) error }); ok {
		s.deadline = d.SetReadDeadline
	}
	return s
}

// Read reads what was read ahead first, then the error that ended the
// read-ahead, if any, and then from rw.
func (s *source) Read(p []byte) (int, error) {
	if s.off < len(s.pending) {
		n := copy(p, s.pending[s.off:])
		s.off += n
		return n, nil
	}
	if s.err != nil {
		return 0, s.err
	}
	return s.rw.Read(p)
}

// hasPending reports whether input read ahead is still to be consumed.
func (s *source) hasPending() bool { return s.off < len(s.pending) }

// during runs wait (a flush) while reading input ahead into memory, and
// returns once both are done. Without deadlines, or with input read ahead
// still pending, or after a read error, it just runs wait.
func (s *source) during(wait func()) {
	if s.deadline == nil || s.hasPending() || s.err != nil {
		wait()
		return
	}
	s.pending, s.off = s.pending[:0], 0
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() && len(s.pending) < maxReadAhead {
			if cap(s.pending)-len(s.pending) < 32<<10 {
				s.pending = append(s.pending, make([]byte, 64<<10)...)[:len(s.pending)]
			}
			n, err := s.rw.Read(s.pending[len(s.pending):cap(s.pending)])
			s.pending = s.pending[:len(s.pending)+n]
			if err != nil {
				if !(stop.Load() && errors.Is(err, os.ErrDeadlineExceeded)) {
					s.err = err // EOF or a broken connection: after the pending input
				}
				return
			}
		}
	}()
	wait()
	stop.Store(true)
	// Wake a Read that waits for input; it returns at once. s.err is
	// the reader's until it is done.
	werr := s.deadline(time.Now())
	<-done
	if werr != nil && s.err == nil {
		s.err = werr
	}
	if err := s.deadline(time.Time{}); err != nil && s.err == nil {
		s.err = err
	}
}

// flushPending reports whether Flush has something to make durable or save.
func (h *Handler) flushPending() bool { return h.unflushed || len(h.dirty) > 0 }

// maxBurstChanges bounds the groups one burst of input may change before
// the connection stops reading to make the burst's events durable (a
// Flush), even with more input waiting: a storm that turns a million
// groups CRITICAL at once is then written a few thousand events per
// transaction, and the events rendered but not yet written, the
// transaction's dirty pages and the state change stay bounded; meanwhile
// Kapacitor waits on the socket (and the read-ahead). Ordinary bursts
// change far fewer groups and never reach it.
const maxBurstChanges = 4096

// flushDue reports whether the burst changed so many groups that Flush
// must run before more input is handled: maxBurstChanges more than after
// the last flush (after, 0 unless that flush failed and kept them, so
// that a failing disk does not make every point wait for a flush).
func (h *Handler) flushDue(after int) bool { return len(h.dirty)-after >= maxBurstChanges }
