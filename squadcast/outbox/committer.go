package outbox

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// The Committer is the one goroutine that writes the file while the daemon
// runs: group commit. Publishers append new events (already encoded) and
// the delivery workers queue the outcomes of their attempts; the committer
// takes whatever is waiting and writes it in one transaction (one fsync
// for many events), then hands the new events' items to OnCommit and wakes
// the Flush calls waiting for it.
//
// New events and state changes are written as soon as a flush asks (or at
// once, for a Source that never flushed). Outcomes (a delivered event's
// deletion, a retry's bookkeeping, a dead letter) are not urgent: a crash
// that loses one only repeats a delivery, which the outbox promises
// anyway. They go with the next transaction, or after opsDelay, or once
// opsBatch are waiting: under a steady flow of alerts, each delivery then
// costs no fsync of its own.
//
// A failed transaction is retried as a whole, with whatever arrived since,
// after a short pause; Flush reports the failure to the sources whose
// writes it held. A state change that bbolt refuses is the exception: it
// is logged and left out at once, as it would fail every retry.

// Commit retry pauses after a failed transaction.
const (
	commitRetryMin = 100 * time.Millisecond
	commitRetryMax = 2 * time.Second
)

// Outcomes wait at most opsDelay, or until opsBatch wait, for a transaction.
const (
	opsDelay = 500 * time.Millisecond
	opsBatch = 1000
)

// MaxHeld bounds the appends a held Source's flush may hold back for its
// transaction (a huge batch task's burst): beyond it they are written at
// once.
const MaxHeld = 4096

// Source is one writer's share of the group commit (a task node's
// publisher): the Committer counts its writes not yet on disk, so that its
// Flush waits for exactly those. Its fields are guarded by the Committer.
type Source struct {
	// Name names the source in logs and errors (an endpoint's name).
	Name string

	unwritten int   // appends and state changes queued and not yet written
	err       error // the last failed write of one of them, until Flush reports it
	held      bool  // Flush was called: Append leaves the write to it
}

// written counts one of the source's writes as done. Called with c.mu held.
func (s *Source) written() {
	s.unwritten--
	if s.unwritten == 0 {
		s.err = nil
	}
}

// CommitterConfig configures a Committer of items of type T.
type CommitterConfig[T any] struct {
	// Logger logs failed and refused writes.
	Logger *zap.Logger
	// OnCommit runs on the committer's goroutine after each transaction,
	// before the flushes waiting for it return: items are those of the
	// appends it wrote (err nil) or failed to write (they are written
	// again, with later work, after a pause). An item may so come more
	// than once.
	OnCommit func(items []T, err error)
	// Stopped is the error Flush returns once the Committer has stopped.
	Stopped error
	// BeforeCommit, when set, runs before each transaction; an error
	// fails it (tests inject disk failures with it).
	BeforeCommit func() error
	// OnShrink, when set, runs (on a goroutine of the Committer's) after
	// the file was shrunk (see DB.Shrink): the daemon then gives the memory the
	// backlog took back to the system.
	OnShrink func()
}

type appendOp[T any] struct {
	src  *Source
	op   Op
	item T
}

type stateOp struct {
	src *Source
	c   *StateChange
}

// Committer group-commits writes to a DB. See the comment above.
type Committer[T any] struct {
	db  *DB
	cfg CommitterConfig[T]

	mu         sync.Mutex
	work       *sync.Cond // there is work, or the committer must stop
	done       *sync.Cond // a batch was written (or failed)
	appends    []appendOp[T]
	ops        []Op
	states     []stateOp
	appendsDue bool        // appends wait no longer (else they wait for a flush, or go with other work)
	opsDue     bool        // ops wait no longer
	opsTimer   *time.Timer // makes ops due opsDelay after the first
	stop       bool        // write what is queued, then return
	kill       bool        // return now
	gone       bool        // the goroutine returned
	err        error       // the last transaction's error, nil once one succeeds

	wake      chan struct{} // closed to cut a retry pause short
	exited    chan struct{}
	commits   atomic.Int64
	shrinks   atomic.Int64
	shrinking atomic.Bool    // a Shrink runs
	shrinkWG  sync.WaitGroup // Stop waits for it

	shrinkChecked time.Time // when maybeShrink last checked; the goroutine's
}

// NewCommitter starts a Committer on db. Stop it with Stop.
func NewCommitter[T any](db *DB, cfg CommitterConfig[T]) *Committer[T] {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Stopped == nil {
		cfg.Stopped = errors.New("the outbox is closed")
	}
	c := &Committer[T]{db: db, cfg: cfg, wake: make(chan struct{}), exited: make(chan struct{})}
	c.work = sync.NewCond(&c.mu)
	c.done = sync.NewCond(&c.mu)
	c.opsTimer = time.AfterFunc(time.Hour, c.opsTimerFired)
	c.opsTimer.Stop()
	go c.loop()
	return c
}

// Append queues a new pending record for src, with its item for OnCommit.
// It is written at once unless src is held (see Flush), then with src's
// next flush (or with other work, or once MaxHeld appends wait).
func (c *Committer[T]) Append(src *Source, seq uint64, data []byte, item T) {
	c.mu.Lock()
	src.unwritten++
	c.appends = append(c.appends, appendOp[T]{src: src, op: Op{Kind: OpAppend, Seq: seq, Data: data}, item: item})
	if !src.held || len(c.appends) >= MaxHeld {
		c.appendsDue = true
		c.work.Signal()
	}
	c.mu.Unlock()
}

// Outcome queues an outcome (OpUpdate, OpDelete or OpDead) of a record.
func (c *Committer[T]) Outcome(o Op) {
	c.mu.Lock()
	c.ops = append(c.ops, o)
	switch {
	case len(c.ops) >= opsBatch:
		c.opsDue = true
		c.work.Signal()
	case len(c.ops) == 1 && !c.opsDue:
		c.opsTimer.Reset(opsDelay)
	}
	c.mu.Unlock()
}

func (c *Committer[T]) opsTimerFired() {
	c.mu.Lock()
	if len(c.ops) > 0 {
		c.opsDue = true
		c.work.Signal()
	}
	c.mu.Unlock()
}

// Flush waits until every record src appended is written (committed and
// synced), with change (nil for none) after them, in the same transaction
// unless the committer took some of them before change was queued:
// concurrent flushes share transactions. With hold, from now on src's
// appends wait for its flushes (one transaction, one sync, per burst).
// It returns an error when the write that covered some of them failed;
// that write is retried, and a later Flush waits for it.
func (c *Committer[T]) Flush(src *Source, change *StateChange, hold bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	src.held = src.held || hold
	if change != nil && !c.gone {
		src.unwritten++
		c.states = append(c.states, stateOp{src: src, c: change})
	}
	if src.unwritten > 0 {
		c.appendsDue = true
		c.work.Signal()
	}
	for src.unwritten > 0 && src.err == nil && !c.gone {
		c.done.Wait()
	}
	if src.unwritten == 0 {
		return nil
	}
	err := src.err
	src.err = nil
	if err == nil {
		err = c.cfg.Stopped
	}
	return fmt.Errorf("make %d event(s) or state change(s) of endpoint %s durable: %w", src.unwritten, src.Name, err)
}

// WriteHeld makes the appends that wait for a flush due now.
func (c *Committer[T]) WriteHeld() {
	c.mu.Lock()
	c.appendsDue = true
	c.work.Signal()
	c.mu.Unlock()
}

// Err returns the last transaction's error, nil once one succeeded.
func (c *Committer[T]) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Done is closed once the committer's goroutine returned (after Stop).
func (c *Committer[T]) Done() <-chan struct{} { return c.exited }

// Commits returns the number of transactions written.
func (c *Committer[T]) Commits() int64 { return c.commits.Load() }

// Stop stops the committer after it wrote what is queued, or at once with
// kill (which simulates a crash in tests), and waits until it returned.
func (c *Committer[T]) Stop(kill bool) {
	c.mu.Lock()
	c.kill = c.kill || kill
	c.stop = true
	c.work.Broadcast()
	c.mu.Unlock()
	close(c.wake)
	<-c.exited
	c.shrinkWG.Wait()
	c.opsTimer.Stop()
}

// hasWork reports whether there is something to write now. Called with c.mu held.
func (c *Committer[T]) hasWork() bool {
	return len(c.appends) > 0 && (c.appendsDue || c.stop) || len(c.states) > 0 || len(c.ops) > 0 && (c.opsDue || c.stop)
}
