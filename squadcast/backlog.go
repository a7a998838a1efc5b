package squadcast

import (
	"fmt"
	"sync"
)

// The backlog counts the events the Sender holds, and decides where a new
// one waits. At most Config.QueueSize events are held in memory (queued).
// Beyond that, Publish still takes every event and the committer writes it
// to the outbox as usual, but it is not kept in memory: it is spilled. The
// loader reads spilled events back from the outbox, oldest first, as
// deliveries make room. While any event is spilled, every new one is
// spilled too, so the spilled events are always the newest pending ones:
// reading them in sequence order keeps each incident's events in order.
// An outage then fills the disk, not the memory, and loses nothing. Until
// it is written, a spilled event is in memory too: while the outbox's
// writes fail, at most QueueSize of them wait, and Publish refuses more
// (ErrOutboxBehind), so that memory stays bounded even then.
//
// Everything here is guarded by backlog.mu. Lock order: backlog.mu, then
// the scheduler's or the committer's.
type backlog struct {
	size int // Config.QueueSize

	mu        sync.Mutex
	queued    int    // events in memory, not yet delivered or dead
	spilled   int    // spilled events not loaded yet (written or to write)
	unwritten int    // spilled events still to write (in memory until then)
	spillNext uint64 // where the loader reads from; 0 while none is spilled
	closed    bool   // admit refuses
	drained   chan struct{}
}

// admit takes a new event, held in memory or spilled (j.spill), unless the
// backlog is closed (ErrClosed), or memory is full while the outbox's
// writes fail (writesFail; ErrOutboxBehind). seq gives the event its
// sequence number, and write queues it for the outbox; both run under the
// backlog's lock, so that events are written in the order admitted.
func (b *backlog) admit(j *job, writesFail func() bool, seq func() uint64, write func()) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	if b.spilled > 0 || b.queued >= b.size {
		// Memory is full, or was: the outbox keeps the event until the
		// loader reads it back.
		if b.unwritten >= b.size && writesFail() {
			return fmt.Errorf("%w (%d events wait to be written)", ErrOutboxBehind, b.unwritten)
		}
		j.spill = true
		b.spilled++
		b.unwritten++
	} else {
		b.queued++
	}
	j.seq = seq()
	if j.spill && b.spillNext == 0 {
		// The loader reads from here once it is written. (Set now, when the
		// sequence number is known: set when it is written, it would race
		// with a loader that read it from disk before.)
		b.spillNext = j.seq
	}
	write()
	return nil
}

// written counts n spilled events as written, and reports whether there
// is room to load them.
func (b *backlog) written(n int) (room bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.unwritten -= n
	return b.queued < b.size
}

// toLoad returns where the loader reads from and how many events it may
// load (at most max); ok is false when there is nothing to load or no room.
// Only spilled events counted written are loaded: a transaction is on disk
// before its onCommit has handed its events held in memory to the
// scheduler, and a spilled event of it read back meanwhile would be
// scheduled ahead of an older event of its incident held in memory.
// (onCommit counts the spilled ones written after it handed those.)
func (b *backlog) toLoad(max int) (from uint64, room int, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	room = min(b.size-b.queued, b.spilled-b.unwritten, max)
	return b.spillNext, room, b.spillNext != 0 && room > 0
}

// loaded counts what the loader read (n events, and bad records that
// cannot be), up to next, and hands the events to add in the same
// critical section: an event admitted once none is spilled must be
// scheduled after these. It reports whether spilled events are left.
func (b *backlog) loaded(n, bad int, next uint64, add func()) (more bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.spilled -= n + bad
	b.queued += n
	if b.spilled == 0 {
		b.spillNext = 0
	} else {
		b.spillNext = next
	}
	add()
	b.checkDrained()
	return b.spilled > 0
}

// release counts an event delivered or given up, and reports whether
// spilled events wait for the room it made.
func (b *backlog) release() (spilled bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.queued--
	b.checkDrained()
	return b.spilled > 0
}

// checkDrained ends close's wait once no event is pending. Called with b.mu held.
func (b *backlog) checkDrained() {
	if b.queued == 0 && b.spilled == 0 && b.drained != nil {
		close(b.drained)
		b.drained = nil
	}
}

// close makes admit refuse, runs then (under the lock: nothing is admitted
// after it), and returns a channel closed once no event is pending, or nil
// when none is.
func (b *backlog) close(then func()) <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	then()
	if b.queued == 0 && b.spilled == 0 {
		return nil
	}
	if b.drained == nil {
		b.drained = make(chan struct{})
	}
	return b.drained
}

// counts returns the events in memory and the spilled ones.
func (b *backlog) counts() (queued, spilled int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.queued, b.spilled
}

// isClosed reports whether close was called.
func (b *backlog) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}
