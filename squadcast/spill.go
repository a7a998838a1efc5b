package squadcast

import (
	"time"

	"go.uber.org/zap"
)

// Spilling. At most Config.QueueSize events are held in memory. Beyond
// that, Publish still takes every event and the committer writes it to the
// outbox as usual, but it is not kept in memory: it is spilled. The loader
// reads spilled events back from the outbox, oldest first, as deliveries
// make room. While any event is spilled, every new one is spilled too, so
// the spilled events are always the newest pending ones: reading them in
// sequence order keeps each incident's events in order. An outage then
// fills the disk, not the memory, and loses nothing. Until it is written,
// a spilled event is in memory too: while the outbox's writes fail, at
// most QueueSize of them wait, and Publish refuses more (ErrOutboxBehind),
// so that memory stays bounded even then.

// loadBatch bounds the events one read transaction loads.
const loadBatch = 1000

// loadRetry is the pause after the loader failed to read the outbox.
const loadRetry = time.Second

// wakeLoader wakes the loader, if it is not already due to run.
func (s *Sender) wakeLoader() {
	select {
	case s.loadWake <- struct{}{}:
	default:
	}
}

// spillWritten tells the loader that n spilled events were written. (Where
// it reads from was set when the first of them was published: their
// sequence numbers are known then. Setting it here instead would race
// with a loader that read them from disk before this call.)
func (s *Sender) spillWritten(n int) {
	s.mu.Lock()
	s.unwritten -= n
	room := s.queued < s.cfg.QueueSize
	s.mu.Unlock()
	if room {
		s.wakeLoader()
	}
}

// loadLoop runs the loader until the Sender stops.
func (s *Sender) loadLoop() {
	for {
		select {
		case <-s.stop:
			return
		case <-s.loadWake:
		}
		for s.loadSome() {
		}
	}
}

// loadSome loads spilled events while there is room for them in memory,
// up to loadBatch, and reports whether to try again at once.
func (s *Sender) loadSome() bool {
	s.mu.Lock()
	from, room := s.spillNext, min(s.cfg.QueueSize-s.queued, s.spilled, loadBatch)
	stopping := s.stopping
	s.mu.Unlock()
	if stopping || from == 0 || room <= 0 {
		return false
	}
	loaded, err := s.outbox.LoadFrom(from, room)
	if err != nil {
		s.log.Error("cannot read spilled events from the outbox; retrying", zap.Duration("retry_in", loadRetry), zap.Error(err))
		select {
		case <-s.stop:
		case <-time.After(loadRetry):
			s.wakeLoader()
		}
		return false
	}
	bad, next := loaded.Bad, loaded.Next
	if bad > 0 {
		s.log.Error("outbox records that cannot be read are left in the outbox, not delivered (see 'outbox list' and 'outbox drop')",
			zap.Int("records", bad), zap.Error(loaded.BadErr))
	}
	jobs := s.restore(loaded.Events)

	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(jobs) + bad; n > 0 {
		s.spilled -= n
		s.queued += len(jobs)
	}
	if s.spilled == 0 {
		s.spillNext = 0
	} else {
		s.spillNext = next
	}
	// In the same critical section as the counts: an event published once
	// none is spilled must be queued after these.
	s.enqueueLocked(jobs)
	s.checkDrained()
	return len(jobs)+bad > 0 && s.spilled > 0
}
