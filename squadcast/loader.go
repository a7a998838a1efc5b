package squadcast

import (
	"time"

	"go.uber.org/zap"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast/outbox"
)

// The loader reads spilled events back from the outbox (see backlog.go),
// oldest first, as deliveries make room in memory, and hands them to the
// scheduler.
type loader struct {
	db      *outbox.DB
	backlog *backlog
	sched   *scheduler
	restore func([]outbox.Stored) []*job
	log     *zap.Logger
	// coalesced takes the events that coalescing removed (Sender.dropCoalesced).
	coalesced func([]coalesced)

	wakeCh chan struct{} // wakes run
	stop   chan struct{} // closed to stop run
}

// loadBatch bounds the events one read transaction loads.
const loadBatch = 1000

// loadRetry is the pause after the loader failed to read the outbox.
const loadRetry = time.Second

// wake wakes the loader, if it is not already due to run.
func (l *loader) wake() {
	select {
	case l.wakeCh <- struct{}{}:
	default:
	}
}

// run runs the loader until stop is closed.
func (l *loader) run() {
	for {
		select {
		case <-l.stop:
			return
		case <-l.wakeCh:
		}
		for l.loadSome() {
		}
	}
}

// loadSome loads spilled events while there is room for them in memory,
// up to loadBatch, and reports whether to try again at once.
func (l *loader) loadSome() bool {
	select {
	case <-l.stop:
		return false
	default:
	}
	from, room, ok := l.backlog.toLoad(loadBatch)
	if !ok {
		return false
	}
	loaded, err := l.db.LoadFrom(from, room)
	if err != nil {
		l.log.Error("cannot read spilled events from the outbox; retrying", zap.Duration("retry_in", loadRetry), zap.Error(err))
		select {
		case <-l.stop:
		case <-time.After(loadRetry):
			l.wake()
		}
		return false
	}
	if loaded.Bad > 0 {
		l.log.Error("outbox records that cannot be read are left in the outbox, not delivered (see 'outbox list' and 'outbox drop')",
			zap.Int("records", loaded.Bad), zap.Error(loaded.BadErr))
	}
	jobs := l.restore(loaded.Events)
	var removed []coalesced
	more := l.backlog.loaded(len(jobs), loaded.Bad, loaded.Next, func() { removed = l.sched.add(jobs) })
	l.coalesced(removed) // after loaded: it takes the backlog's lock
	return len(jobs)+loaded.Bad > 0 && more
}
