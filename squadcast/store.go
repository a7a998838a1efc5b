package squadcast

import (
	"container/heap"
	"fmt"

	"go.uber.org/zap"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast/outbox"
	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// The Sender keeps its events and the tasks' alert state in one file of
// the data dir, the outbox (package outbox). This file converts between
// the Sender's and udf's types and the outbox's values.

// OutboxFile is the name of the outbox file in the data dir.
const OutboxFile = outbox.File

// OutboxPath returns the path of the outbox file in dataDir.
func OutboxPath(dataDir string) string { return outbox.Path(dataDir) }

// ErrOutboxInUse means another process (a running daemon) holds the outbox file.
var ErrOutboxInUse = outbox.ErrInUse

// The states of an OutboxEntry.
const (
	// StatePending is an event still to deliver.
	StatePending = outbox.StatePending
	// StateDead is a dead letter: given up after a permanent failure or MaxAge.
	StateDead = outbox.StateDead
	// StateCorrupt is a record that cannot be decoded; drop it (Outbox.Drop).
	StateCorrupt = outbox.StateCorrupt
)

// OutboxEntry describes one event of the outbox, for listing: see outbox.Entry.
type OutboxEntry = outbox.Entry

// RecordError reports a stored record that cannot be decoded.
type RecordError = outbox.RecordError

// Outbox is the outbox file, for the outbox commands, which open it while
// the daemon is stopped (read-only to list).
type Outbox struct{ db *outbox.DB }

// OpenOutbox opens the outbox file at path. A writable open creates the
// file (0600) when it is missing; a read-only one fails with an error
// wrapping fs.ErrNotExist. When another process holds the file, it fails
// after a second with an error wrapping ErrOutboxInUse. A file that is not
// an outbox, or is corrupt, gives an error naming the file.
func OpenOutbox(path string, readOnly bool) (*Outbox, error) {
	db, err := openOutbox(path, readOnly)
	if err != nil {
		return nil, err
	}
	return &Outbox{db: db}, nil
}

func openOutbox(path string, readOnly bool) (*outbox.DB, error) {
	return outbox.Open(path, outbox.Options{ReadOnly: readOnly, Check: checkRecord})
}

// checkRecord refuses a stored record whose format or URL this package
// cannot deliver. Its errors never contain the URL.
func checkRecord(r *outbox.Record) error {
	if !validFormat(r.Format) {
		return fmt.Errorf("format %q is unknown", r.Format)
	}
	if _, err := parseWebhookURL(r.URL); err != nil {
		return fmt.Errorf("url %w", err)
	}
	return nil
}

// Close closes the file.
func (o *Outbox) Close() error { return o.db.Close() }

// List returns every event of the outbox: the pending ones, then the dead
// letters, each oldest first. A record that cannot be decoded is listed
// with State StateCorrupt and the reason in LastError. No entry holds a
// URL: LastError is redacted.
func (o *Outbox) List() ([]OutboxEntry, error) {
	entries, err := o.db.List()
	if err != nil {
		return nil, err
	}
	sendOrder(entries)
	for i := range entries {
		e := &entries[i]
		e.LastError = redactText(e.LastError, urlSecrets(e.URL))
		e.URL = ""
	}
	return entries, nil
}

// sendOrder puts the pending entries (which List gives first, in sequence
// order) in the order they will be sent when the endpoints' events wait
// (a rate limit, a pause): each incident's (URL and id) events in sequence
// order, and, at each step, the incident whose next event matters most
// (see rank). Dead and corrupt entries stay after them, as they are.
func sendOrder(entries []OutboxEntry) {
	n := 0
	for n < len(entries) && entries[n].State == StatePending {
		n++
	}
	type key struct{ url, id string }
	queues := map[key]*entryQueue{}
	var h entryHeap
	for _, e := range entries[:n] {
		k := key{e.URL, e.Incident}
		q := queues[k]
		if q == nil {
			q = &entryQueue{}
			queues[k] = q
			h = append(h, q)
		}
		q.entries = append(q.entries, e)
	}
	heap.Init(&h)
	for i := 0; i < n; i++ {
		q := h[0]
		entries[i] = q.entries[0]
		q.entries = q.entries[1:]
		if len(q.entries) == 0 {
			heap.Pop(&h)
		} else {
			heap.Fix(&h, 0)
		}
	}
}

// entryQueue is one incident's pending entries, in sequence order.
type entryQueue struct{ entries []OutboxEntry }

// entryHeap orders incidents by their next entry, as rank does.
type entryHeap []*entryQueue

func (h entryHeap) Len() int { return len(h) }
func (h entryHeap) Less(i, j int) bool {
	a, b := h[i].entries[0], h[j].entries[0]
	la, _ := udf.ParseLevel(a.Level)
	lb, _ := udf.ParseLevel(b.Level)
	if ca, cb := levelClass(la), levelClass(lb); ca != cb {
		return ca < cb
	}
	return a.Seq < b.Seq
}
func (h entryHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *entryHeap) Push(x any)   { *h = append(*h, x.(*entryQueue)) }
func (h *entryHeap) Pop() any {
	old := *h
	q := old[len(old)-1]
	*h = old[:len(old)-1]
	return q
}

// RetryDead moves every dead letter back to the pending events: see
// outbox.DB.RetryDead.
func (o *Outbox) RetryDead() (int, error) { return o.db.RetryDead() }

// Drop deletes the events with the given sequence numbers, pending, dead
// or corrupt, and returns the ones it found, in the order given.
func (o *Outbox) Drop(seqs ...uint64) ([]uint64, error) { return o.db.Drop(seqs...) }

// record returns the job as stored.
func (j *job) record() *outbox.Record {
	return &outbox.Record{
		Endpoint:    j.target.name,
		Settings:    j.target.settings,
		URL:         j.target.url,
		Format:      j.target.format,
		Incident:    j.id,
		Level:       j.level.String(),
		Task:        j.task,
		Created:     j.created,
		Attempts:    j.attempts,
		LastError:   j.lastErr,
		NextAttempt: j.next,
		Body:        j.body,
		Source:      string(j.source),
	}
}

// LoadState returns the alert state a task node saved (udf.Sink).
func (s *Sender) LoadState(task, node string) (udf.NodeState, bool, error) {
	ns, found, err := s.outbox.LoadState(task, node)
	if err != nil || !found {
		return udf.NodeState{}, found, err
	}
	out := udf.NodeState{AsOf: ns.AsOf, Groups: make([]udf.SavedGroup, len(ns.Groups)), Options: ns.Options}
	for i, g := range ns.Groups {
		out.Groups[i] = udf.SavedGroup{Group: g.Group, Level: udf.Level(g.Level),
			FirstTriggered: g.FirstTriggered, LastTriggered: g.LastTriggered, ID: g.ID}
	}
	return out, true, nil
}

// stateChange converts a node's state change for the outbox. A group whose
// name is too long for the file cannot be saved: it is left out (after a
// restart it starts from OK), with a warning.
func (s *Sender) stateChange(c *udf.StateChange) *outbox.StateChange {
	if c == nil {
		return nil
	}
	oc := &outbox.StateChange{Task: c.TaskID, Node: c.NodeID, AsOf: c.AsOf, Options: c.Options,
		Put: make([]outbox.GroupState, 0, len(c.Put)), Delete: make([]string, 0, len(c.Delete))}
	tooLong := 0
	for _, g := range c.Put {
		if len(g.Group) > outbox.MaxGroupLen {
			tooLong++
			continue
		}
		oc.Put = append(oc.Put, outbox.GroupState{Group: g.Group, Level: int8(g.Level),
			FirstTriggered: g.FirstTriggered, LastTriggered: g.LastTriggered, ID: g.ID})
	}
	for _, g := range c.Delete {
		if len(g) > outbox.MaxGroupLen {
			tooLong++
			continue
		}
		oc.Delete = append(oc.Delete, g)
	}
	if tooLong > 0 {
		s.log.Warn("alert state not saved for groups whose names are over 32 KiB: after a restart they start from OK",
			zap.String("task", c.TaskID), zap.String("node", c.NodeID), zap.Int("groups", tooLong))
	}
	return oc
}
