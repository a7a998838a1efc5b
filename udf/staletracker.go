package udf

import (
	"container/heap"
	"time"
)

// staleTracker keeps, for .resolveStale(d) only, when each alerting group
// of a node last received a point (or a batch), and finds the groups that
// have received none for d. It exists only when the option is set, so the
// groups of other tasks pay nothing (groupState stays 32 bytes).
//
// Times are durations since base on the handler's clock (monotonic with
// the wall clock). Each tracked group has exactly one entry in a min-heap
// keyed by when it may be stale: a point only updates the group's
// last-seen time (no heap work), and a sweep looks only at the entries
// that are due, arming again those whose group was seen since, so a sweep
// never scans every group. A group that stops alerting is only marked
// off, and dropped when its entry comes due, so that a group going in and
// out of alert adds no entries.
type staleTracker struct {
	d    time.Duration
	base time.Time
	seen map[string]staleGroup
	due  dueHeap
}

// staleGroup is what a tracked group's stale resolution is built from.
type staleGroup struct {
	// last is when the group last received data (since base).
	last time.Duration
	// off says the group is no longer alerting: it is dropped when its
	// entry comes due, unless it alerts again before.
	off bool
	// name is the measurement of the group's last data: the stale
	// resolution's .Name ("" for a group restored from saved state and
	// silent since). Its tags are those of its key (see groupKeyTags):
	// keeping each group's last tags would cost a map per group.
	name string
}

func newStaleTracker(d time.Duration, base time.Time) *staleTracker {
	return &staleTracker{d: d, base: base, seen: make(map[string]staleGroup)}
}

// touch records data of the alerting group key, of measurement name, at
// now ("" keeps the name known).
func (s *staleTracker) touch(key, name string, now time.Duration) {
	g, ok := s.seen[key]
	g.last, g.off = now, false
	if name != "" {
		g.name = name
	}
	if !ok {
		heap.Push(&s.due, dueEntry{key: key, at: now + s.d})
	}
	s.seen[key] = g
}

// forget stops tracking group key (it is OK again, or gone).
func (s *staleTracker) forget(key string) {
	if g, ok := s.seen[key]; ok && !g.off {
		g.off = true
		s.seen[key] = g
	}
}

// reset tracks exactly the groups keys, each seen at now.
func (s *staleTracker) reset(keys []string, now time.Duration) {
	clear(s.seen)
	s.due = s.due[:0]
	for _, k := range keys {
		s.touch(k, "", now)
	}
}

// next returns when the next group may be stale; ok is false when no
// group is tracked. (It may be early: a group seen since is armed again.)
func (s *staleTracker) next() (at time.Duration, ok bool) {
	if len(s.due) == 0 {
		return 0, false
	}
	return s.due[0].at, true
}

// maxStalePerSweep bounds the groups one expire resolves: the connection
// answers what waits (keepalives) between sweeps, however many groups
// fall silent at once (a million, when a whole Kapacitor input stops).
const maxStalePerSweep = 4096

// expire stops tracking the groups that have received no data for d at
// now, at most maxStalePerSweep of them, and calls stale for each, in the
// order they fell silent. More may be due after it (see next).
func (s *staleTracker) expire(now time.Duration, stale func(key string, g staleGroup)) {
	for n := 0; n < maxStalePerSweep && len(s.due) > 0 && s.due[0].at <= now; {
		e := heap.Pop(&s.due).(dueEntry)
		g, ok := s.seen[e.key]
		if !ok {
			continue
		}
		if g.off {
			delete(s.seen, e.key)
			continue
		}
		if at := g.last + s.d; at > now {
			e.at = at
			heap.Push(&s.due, e)
			continue
		}
		delete(s.seen, e.key)
		stale(e.key, g)
		n++
	}
}

// dueEntry says that group key may be stale at at.
type dueEntry struct {
	key string
	at  time.Duration
}

// dueHeap is a min-heap of dueEntry by at (container/heap).
type dueHeap []dueEntry

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }

// Push adds x, a dueEntry.
func (h *dueHeap) Push(x any) { *h = append(*h, x.(dueEntry)) }

// Pop removes and returns the last entry.
func (h *dueHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = dueEntry{}
	*h = old[:len(old)-1]
	return e
}
