package squadcast

import (
	"container/heap"
	"sync"
	"time"
)

// The scheduler holds the incidents. An incident (webhook URL and alert id)
// is a queue of events delivered strictly one at a time, in order. An
// incident whose head event may go now is in the ready queue, which the
// workers take from in turn (take); one that must wait (a retry's backoff,
// a paused endpoint, a rate limit) is in the waiting heap, ordered by when
// it may go, and the scheduler's goroutine (run) moves it to the ready
// queue then. A worker makes one HTTP attempt and gives the incident back
// (retry, done or abort), so a long backoff never holds a worker.
// Everything here is guarded by scheduler.mu, which no other lock is taken
// under.
type scheduler struct {
	clock clock

	mu        sync.Mutex
	cond      *sync.Cond // signalled when ready gets an incident, or on stop
	incidents map[incidentKey]*incident
	peak      int // the most incidents since incidents was made
	ready     []*incident
	waiting   waitHeap
	throttles map[string]*throttle // by URL
	stopping  bool                 // take returns, run returns
	fifo      bool                 // Config.FirstInFirstOut: no priority

	wake chan struct{} // the wait of run got shorter
	stop chan struct{} // closed to stop run
}

func newScheduler(c clock) *scheduler {
	sc := &scheduler{
		clock:     c,
		incidents: make(map[incidentKey]*incident),
		throttles: make(map[string]*throttle),
		wake:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
	}
	sc.cond = sync.NewCond(&sc.mu)
	return sc
}

// throttle returns the throttle of a URL, creating it. When a URL is shared
// by endpoints with different rate limits, the strictest applies. Called
// with sc.mu held.
func (sc *scheduler) throttle(url string, limit RateLimit) *throttle {
	th := sc.throttles[url]
	if th == nil {
		th = &throttle{fifo: sc.fifo}
		sc.throttles[url] = th
	}
	th.setLimit(limit)
	return th
}

type incidentKey struct{ url, id string }

// maxKeptIncidents is the most incidents the incidents map may have held
// and still be kept once it is empty: after a burst of more (a million
// groups alerting at once), it is made anew, as a map keeps its capacity
// (40 bytes an incident).
const maxKeptIncidents = 4096

// incident is the queue of one incident's events.
type incident struct {
	key  incidentKey
	ep   *throttle // its URL's
	qIdx int       // index in its throttle's queue, -1 when not in it
	jobs []*job
	busy bool // its head is in flight

	queued   bool      // in the ready queue
	heapIdx  int       // index in the waiting heap, -1 when not in it
	due      time.Time // when it may go, while in the waiting heap
	reserved bool      // its head holds a rate-limit slot
}

// waitHeap orders waiting incidents by due time: a container/heap.Interface
// whose methods also keep each incident's heapIdx.
type waitHeap []*incident

func (h waitHeap) Len() int           { return len(h) }
func (h waitHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h waitHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}
func (h *waitHeap) Push(x any) {
	inc := x.(*incident)
	inc.heapIdx = len(*h)
	*h = append(*h, inc)
}
func (h *waitHeap) Pop() any {
	old := *h
	inc := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	inc.heapIdx = -1
	return inc
}

// add adds written (or memory-only) events to their incidents, in order,
// coalescing on the endpoints that do (see coalesce.go); it returns the
// events that coalescing removed, for Sender.dropCoalesced.
func (sc *scheduler) add(jobs []*job) (removed []coalesced) {
	if len(jobs) == 0 {
		return nil
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	now := sc.clock.Now()
	for _, j := range jobs {
		key := incidentKey{url: j.target.url, id: j.id}
		inc := sc.incidents[key]
		if inc == nil {
			inc = &incident{key: key, ep: sc.throttle(j.target.url, j.target.rate), heapIdx: -1, qIdx: -1}
			sc.incidents[key] = inc
			sc.peak = max(sc.peak, len(sc.incidents))
		}
		idle := len(inc.jobs) == 0 && !inc.busy
		inc.jobs = append(inc.jobs, j)
		if j.target.coalesce {
			var gone bool
			if removed, gone = sc.coalesce(inc, removed); gone {
				continue
			}
		}
		if idle {
			sc.schedule(inc, now)
		}
	}
	return removed
}

// schedule puts an idle incident with events in the ready queue, or in the
// waiting heap until its head may go: not before the head's next attempt,
// nor while its endpoint is paused; under a rate limit, in its throttle's
// queue until it gets a slot. Called with sc.mu held.
func (sc *scheduler) schedule(inc *incident, now time.Time) {
	due := inc.jobs[0].next
	if inc.ep.pausedUntil.After(due) {
		due = inc.ep.pausedUntil
	}
	if due.After(now) {
		sc.wait(inc, due)
		return
	}
	if inc.ep.interval > 0 && !inc.reserved {
		sc.queue(inc, now)
		return
	}
	sc.makeReady(inc)
}

// makeReady puts inc in the ready queue, for a worker. Called with sc.mu held.
func (sc *scheduler) makeReady(inc *incident) {
	inc.queued = true
	sc.ready = append(sc.ready, inc)
	sc.cond.Signal()
}

// wait puts inc in the waiting heap until due, waking run when that is
// sooner than what it waits for. Called with sc.mu held.
func (sc *scheduler) wait(inc *incident, due time.Time) {
	inc.due = due
	heap.Push(&sc.waiting, inc)
	if sc.waiting[0] == inc {
		select {
		case sc.wake <- struct{}{}:
		default:
		}
	}
}

// run moves waiting incidents on when they are due (most important first:
// see rank), and gives the throttles' slots, until close.
func (sc *scheduler) run() {
	for {
		sc.mu.Lock()
		if sc.stopping {
			sc.mu.Unlock()
			return
		}
		now := sc.clock.Now()
		var due []*incident
		for len(sc.waiting) > 0 && !sc.waiting[0].due.After(now) {
			due = append(due, heap.Pop(&sc.waiting).(*incident))
		}
		sortByRank(due)
		for _, inc := range due {
			sc.schedule(inc, now)
		}
		next := sc.pumpThrottles(now)
		if len(sc.waiting) > 0 && (next.IsZero() || sc.waiting[0].due.Before(next)) {
			next = sc.waiting[0].due
		}
		sc.mu.Unlock()

		var fire <-chan time.Time
		release := func() {}
		if !next.IsZero() {
			fire, release = sc.clock.At(next)
		}
		select {
		case <-sc.wake:
		case <-fire:
		case <-sc.stop:
		}
		release()
	}
}

// take waits for an incident whose head may go now, and marks it busy; ok
// is false once the scheduler is closed. The incident is the caller's
// until it gives it back with retry, done or abort.
func (sc *scheduler) take() (inc *incident, j *job, ok bool) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for {
		for len(sc.ready) == 0 && !sc.stopping {
			sc.cond.Wait()
		}
		if sc.stopping {
			return nil, nil, false
		}
		inc = sc.ready[0]
		sc.ready[0] = nil
		sc.ready = sc.ready[1:]
		inc.queued = false
		if len(inc.jobs) == 0 {
			continue // coalesced away
		}
		now := sc.clock.Now()
		if inc.ep.pausedUntil.After(now) {
			// Its endpoint was throttled since it became ready.
			sc.schedule(inc, now)
			continue
		}
		inc.busy, inc.reserved = true, false
		return inc, inc.jobs[0], true
	}
}

// retry gives back an incident whose head is to be tried again (at its
// next), pausing the incident's endpoint until pauseUntil when that is
// later than its pause (zero: no pause).
func (sc *scheduler) retry(inc *incident, pauseUntil time.Time) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	inc.busy = false
	if pauseUntil.After(inc.ep.pausedUntil) {
		inc.ep.pausedUntil = pauseUntil
	}
	sc.schedule(inc, sc.clock.Now())
}

// done gives back an incident whose head is delivered or given up: the
// next event goes next. It returns how many events the incident has left.
func (sc *scheduler) done(inc *incident) (later int) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	inc.busy = false
	inc.jobs[0] = nil
	inc.jobs = inc.jobs[1:]
	if len(inc.jobs) > 0 {
		sc.schedule(inc, sc.clock.Now())
		return len(inc.jobs)
	}
	sc.forget(inc)
	return 0
}

// forget deletes an incident left without events. Called with sc.mu held.
func (sc *scheduler) forget(inc *incident) {
	delete(sc.incidents, inc.key)
	if len(sc.incidents) == 0 && sc.peak > maxKeptIncidents {
		// A map keeps its capacity: let a burst's go.
		sc.incidents, sc.peak = make(map[incidentKey]*incident), 0
	}
}

// abort gives back an incident whose attempt was cut short by shutdown:
// its head stays as it is.
func (sc *scheduler) abort(inc *incident) {
	sc.mu.Lock()
	inc.busy = false
	sc.mu.Unlock()
}

// close makes take and run return.
func (sc *scheduler) close() {
	sc.mu.Lock()
	sc.stopping = true
	sc.cond.Broadcast()
	sc.mu.Unlock()
	close(sc.stop)
}
