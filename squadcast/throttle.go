package squadcast

import (
	"container/heap"
	"sort"
	"time"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// throttle is what the incidents of one webhook URL share: its rate limit
// and a pause after Squadcast throttled it (429, or 503 with Retry-After).
// (Endpoints are configured by name; several may share a URL, and so a
// throttle.) Its fields are guarded by the scheduler's lock.
//
// Under a rate limit, requests go one per interval. An incident whose head
// may go waits in the throttle's queue, and each slot goes to the queued
// incident whose next event matters most (see rank), not to the one that
// waited longest: a new CRITICAL trigger does not wait behind a backlog of
// warnings. Slots accrue while the queue is not empty (as reservations
// made when each incident became due would), so a clock that jumps gives
// the same count of requests as one that runs; an idle throttle gives one
// request at once (a burst of one).
type throttle struct {
	limit       RateLimit
	interval    time.Duration // between two requests; 0 without a limit
	nextSlot    time.Time     // the earliest the next request may go
	since       time.Time     // when the queue last became non-empty
	queue       rankQueue     // due incidents waiting for a slot
	pumpAt      time.Time     // when the queue's head gets its slot; zero when the queue is empty
	pausedUntil time.Time
	fifo        bool // Config.FirstInFirstOut: by age only
}

// setLimit makes limit the throttle's when it is stricter than its own.
func (th *throttle) setLimit(limit RateLimit) {
	if limit.stricter(th.limit) {
		th.limit = limit
		th.interval = limit.Per / time.Duration(limit.Events)
	}
}

// queue puts a due incident in its throttle's queue, and gives the slots
// that are due. Called with sc.mu held.
func (sc *scheduler) queue(inc *incident, now time.Time) {
	th := inc.ep
	if th.queue.Len() == 0 {
		th.since = now
	}
	heap.Push(&th.queue, inc)
	sc.pump(th, now)
}

// pump gives the throttle's slots that are due (at now or before) to its
// queued incidents, most important first, and sets when the next one is
// due; it wakes run when that is sooner than what it waits for. Called
// with sc.mu held.
func (sc *scheduler) pump(th *throttle, now time.Time) {
	for th.queue.Len() > 0 {
		slot := th.nextSlot
		if th.since.After(slot) {
			slot = th.since
		}
		if slot.After(now) {
			if th.pumpAt.IsZero() || slot.Before(th.pumpAt) {
				select {
				case sc.wake <- struct{}{}:
				default:
				}
			}
			th.pumpAt = slot
			return
		}
		inc := heap.Pop(&th.queue).(*incident)
		inc.reserved = true
		th.nextSlot = slot.Add(th.interval)
		sc.makeReady(inc)
	}
	th.pumpAt, th.since = time.Time{}, time.Time{}
}

// pumpThrottles gives the slots that are due, and returns when the next
// one is (zero for none). Called with sc.mu held.
func (sc *scheduler) pumpThrottles(now time.Time) (next time.Time) {
	for _, th := range sc.throttles {
		if !th.pumpAt.IsZero() && !th.pumpAt.After(now) {
			sc.pump(th, now)
		}
		if !th.pumpAt.IsZero() && (next.IsZero() || th.pumpAt.Before(next)) {
			next = th.pumpAt
		}
	}
	return next
}

// rank orders incidents by what their next event means to the people
// paged, then by age: CRITICAL triggers first (a page), then resolves (an
// incident closing, which stops the paging), then WARNING, then INFO
// triggers; within a class, the oldest event first (its sequence number,
// or that of the event it replaced: see coalesce.go).
func rank(inc *incident) (class int, seq uint64) {
	j := inc.jobs[0]
	if j.place != 0 {
		return levelClass(j.level), j.place
	}
	return levelClass(j.level), j.seq
}

// levelClass is the class of an event's level in rank: 0 for CRITICAL,
// 1 for OK (a resolve), 2 for WARNING, 3 for INFO.
func levelClass(l udf.Level) int {
	switch l {
	case udf.Critical:
		return 0
	case udf.OK:
		return 1
	case udf.Warning:
		return 2
	}
	return 3
}

// before reports whether a goes before b.
func before(a, b *incident) bool {
	ca, sa := rank(a)
	cb, sb := rank(b)
	if ca != cb && !(a.ep.fifo && b.ep.fifo) {
		return ca < cb
	}
	return sa < sb
}

// sortByRank sorts incidents, most important first.
func sortByRank(incs []*incident) {
	if len(incs) > 1 {
		sort.SliceStable(incs, func(i, j int) bool { return before(incs[i], incs[j]) })
	}
}

// rankQueue is a heap of incidents, most important first (see rank).
type rankQueue []*incident

func (q rankQueue) Len() int           { return len(q) }
func (q rankQueue) Less(i, j int) bool { return before(q[i], q[j]) }
func (q rankQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].qIdx, q[j].qIdx = i, j
}
func (q *rankQueue) Push(x any) {
	inc := x.(*incident)
	inc.qIdx = len(*q)
	*q = append(*q, inc)
}
func (q *rankQueue) Pop() any {
	old := *q
	inc := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	inc.qIdx = -1
	return inc
}
