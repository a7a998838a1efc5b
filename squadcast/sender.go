package squadcast

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast/outbox"
	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// DefaultEndpoint is the endpoint a task uses when it names none (udf.DefaultEndpoint).
const DefaultEndpoint = udf.DefaultEndpoint

// Errors Publish returns (wrapped) when it cannot take an event.
var (
	// ErrClosed means Close was called.
	ErrClosed = errors.New("sender is closed")
	// ErrOutboxBehind means Config.QueueSize events are in memory, and as
	// many spilled ones wait to be written while the outbox's writes fail.
	ErrOutboxBehind = errors.New("the memory queue is full and the outbox is not being written")
)

// Sender delivers events to Squadcast webhooks. It implements udf.Sink:
// it takes the tasks' events and keeps their alert state.
//
// Every event is written to the outbox (Config.DataDir) and deleted only
// once Squadcast accepted it (2xx) or coalescing saved it
// (Endpoint.Coalesce), so pending events survive a restart:
// New loads them and delivers them first. At most Config.QueueSize events
// are held in memory; beyond that, new events are kept in the outbox only
// (spilled), and loaded from it, oldest first, as room frees up (see
// backlog.go). Events of one incident (same webhook URL and alert id) are
// delivered one at a time, in the order they were published; different
// incidents in parallel by Config.Workers workers, taking turns. Failed
// attempts are retried with backoff until they succeed, fail permanently
// or reach Config.MaxAge: then the event becomes a dead letter, kept in
// the outbox, and the incident's later events go on.
type Sender struct {
	cfg       Config
	log       *zap.Logger
	clock     clock
	endpoints endpoints
	outbox    *outbox.DB
	cm        *outbox.Committer[*job] // writes the outbox (see publisher.go)
	backlog   *backlog                // counts what is held, decides what spills
	sched     *scheduler              // the incidents and their order
	loader    *loader                 // reads spilled events back
	attempter *attempter              // makes HTTP attempts
	transport *http.Transport
	live      liveTasks // the connected nodes' tasks (see ResolveTask)

	ctx    context.Context // ends when the Sender stops: aborts attempts in flight
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup // workers, scheduler and loader

	closeOnce sync.Once
	closeErr  error

	published, delivered, retried, deadLettered, dropped, coalesced atomic.Uint64
}

var (
	_ udf.Sink      = (*Sender)(nil)
	_ udf.Publisher = (*publisher)(nil)
)

// hooks are the Sender's clock, randomness and retry wait, replaced in tests.
type hooks struct {
	clock clock
	randN func(n int64) int64 // uniform in [0, n)
	// wait, when set, gets each computed retry wait and returns the one to use.
	wait func(time.Duration) time.Duration
	// beforeCommit, when set, runs before each outbox transaction; an error fails it.
	beforeCommit func() error
	// committed, when set, runs after each outbox transaction, before its
	// events are handed on (onCommit).
	committed func()
}

// New validates cfg, opens the outbox in cfg.DataDir (creating both if
// needed), loads its pending events and starts delivering them. Call Close
// to stop. A corrupt outbox, or one another process holds, is an error.
func New(cfg Config) (*Sender, error) {
	return newSender(cfg, hooks{clock: realClock{}, randN: rand.Int64N})
}

func newSender(cfg Config, h hooks) (*Sender, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("squadcast config: %w", err)
	}
	ob, loaded, err := openDataDir(cfg)
	if err != nil {
		return nil, err
	}
	s := &Sender{
		cfg:       cfg,
		log:       cfg.Logger,
		clock:     h.clock,
		endpoints: newEndpoints(cfg.Endpoints),
		outbox:    ob,
		sched:     newScheduler(h.clock),
	}
	s.sched.fifo = cfg.FirstInFirstOut
	s.backlog = &backlog{size: cfg.QueueSize, queued: len(loaded.Events),
		spilled: ob.Pending() - len(loaded.Events), spillNext: loaded.Next}
	s.loader = &loader{db: ob, backlog: s.backlog, sched: s.sched, restore: s.endpoints.restore, log: s.log, coalesced: s.dropCoalesced,
		wakeCh: make(chan struct{}, 1), stop: make(chan struct{})}
	onCommit := s.onCommit
	if h.committed != nil {
		onCommit = func(jobs []*job, err error) { h.committed(); s.onCommit(jobs, err) }
	}
	s.cm = outbox.NewCommitter(ob, outbox.CommitterConfig[*job]{
		Logger: s.log, OnCommit: onCommit, Stopped: ErrClosed, BeforeCommit: h.beforeCommit,
		// The backlog drained and its file pages are unmapped: give the
		// memory its events took back to the system now, not over minutes.
		OnShrink: debug.FreeOSMemory})
	s.transport = http.DefaultTransport.(*http.Transport).Clone()
	s.transport.MaxIdleConnsPerHost = cfg.Workers
	s.attempter = newAttempter(s.transport, cfg, h)
	s.ctx, s.cancel = context.WithCancelCause(context.Background())

	removed := s.sched.add(s.endpoints.restore(loaded.Events))
	if total, dead := ob.Pending(), ob.Dead(); total > 0 || dead > 0 {
		s.log.Info("loaded the outbox", zap.Int("pending", total), zap.Int("pending_left_on_disk", total-len(loaded.Events)), zap.Int("dead_letters", dead))
	}
	s.goRun(s.loader.run)
	s.dropCoalesced(removed)
	s.loader.wake()
	for range cfg.Workers {
		s.goRun(s.work)
	}
	s.goRun(s.sched.run)
	return s, nil
}

// openDataDir opens (creating if needed) the data dir and its outbox,
// compacting a file left mostly free by an earlier backlog, and loads the
// oldest pending events, at most cfg.QueueSize.
func openDataDir(cfg Config) (*outbox.DB, outbox.Loaded, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, outbox.Loaded{}, fmt.Errorf("create data dir: %w", err)
	}
	ob, err := openOutbox(OutboxPath(cfg.DataDir), false)
	if err != nil {
		return nil, outbox.Loaded{}, err
	}
	if ob, err = outbox.CompactIfSparse(ob, cfg.Logger); err != nil {
		return nil, outbox.Loaded{}, err
	}
	loaded, err := ob.LoadStart(cfg.QueueSize)
	if err != nil {
		ob.Close()
		return nil, outbox.Loaded{}, err
	}
	return ob, loaded, nil
}

// goRun runs f in a goroutine that Close waits for.
func (s *Sender) goRun(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

// Open resolves a task's destination: the named endpoint (DefaultEndpoint
// when empty), or an inline URL, which overrides the endpoint and takes its
// format, timeout and rate limit from it when it is configured; then the
// format, if given, overrides the endpoint's. It validates the task's
// .tag() and .priority() calls (d.Tags, d.Priorities), which only the
// Incident Webhook format takes: its publisher adds them to every body.
// Errors are *udf.OptionError and never contain a URL.
func (s *Sender) Open(d udf.Destination) (udf.Publisher, error) {
	t, inc, err := s.endpoints.resolve(d)
	if err != nil {
		return nil, err
	}
	return &publisher{s: s, t: t, inc: inc, src: outbox.Source{Name: t.name}}, nil
}

// Stats are a Sender's counters since New, and its current backlog.
type Stats struct {
	// Published counts events accepted by Publish.
	Published uint64
	// Delivered counts events Squadcast accepted (2xx).
	Delivered uint64
	// Retried counts retry attempts (attempts after an event's first).
	Retried uint64
	// DeadLettered counts events given up: a permanent failure, or MaxAge.
	DeadLettered uint64
	// Dropped counts events Publish refused (render error, closed, or
	// ErrOutboxBehind).
	Dropped uint64
	// Coalesced counts events saved by coalescing (Endpoint.Coalesce):
	// removed unsent, never delivered.
	Coalesced uint64
	// Queued is the number of events in memory now: waiting to be written,
	// to be sent, for a retry, or in flight.
	Queued int
	// Spilled is the number of events kept in the outbox only, while
	// Config.QueueSize events are in memory: loaded as room frees up.
	Spilled int
	// Pending is the number of events in the outbox file still to deliver.
	Pending int
}

// Stats returns the Sender's counters.
func (s *Sender) Stats() Stats {
	queued, spilled := s.backlog.counts()
	return Stats{
		Published:    s.published.Load(),
		Delivered:    s.delivered.Load(),
		Retried:      s.retried.Load(),
		DeadLettered: s.deadLettered.Load(),
		Dropped:      s.dropped.Load(),
		Coalesced:    s.coalesced.Load(),
		Queued:       queued,
		Spilled:      spilled,
		Pending:      s.outbox.Pending(),
	}
}

// Ready reports whether the Sender can take events durably: it is not
// closed, the committer's last outbox transaction succeeded, and the
// outbox can be read. It is meant for a readiness probe: it writes
// nothing, so that probes never compete with the committer.
func (s *Sender) Ready() error {
	if s.backlog.isClosed() {
		return ErrClosed
	}
	if err := s.cm.Err(); err != nil {
		return fmt.Errorf("the last outbox write failed: %w", err)
	}
	if err := s.outbox.Check(); err != nil {
		return fmt.Errorf("read the outbox: %w", err)
	}
	return nil
}

// Close stops accepting events (Publish then returns ErrClosed) and waits
// until every event, spilled ones included, is delivered or dead-lettered,
// or ctx ends.
// Then it aborts the attempts in flight, writes the outbox a last time and
// closes it. Events still pending then stay in the outbox, for the next
// start: Close reports how many. Close may be called more than once; the
// later calls return what the first returned.
func (s *Sender) Close(ctx context.Context) error {
	s.closeOnce.Do(func() { s.closeErr = s.close(ctx) })
	return s.closeErr
}

func (s *Sender) close(ctx context.Context) error {
	// Events a publisher still holds for its Flush are written now.
	if drained := s.backlog.close(s.cm.WriteHeld); drained != nil {
		select {
		case <-drained:
		case <-ctx.Done():
		}
	}
	s.shutdown(false)
	queued, spilled := s.backlog.counts()
	if n := queued + spilled; n > 0 {
		return fmt.Errorf("close squadcast sender: %d event(s) still pending, kept in the outbox for the next start: %w", n, context.Cause(ctx))
	}
	return nil
}

// shutdown stops the workers (aborting attempts in flight), the scheduler
// and the loader, then the committer (at once when kill, which simulates a
// crash in tests; else after writing what is queued), and closes the outbox.
func (s *Sender) shutdown(kill bool) {
	s.sched.close()
	s.cancel(ErrAborted)
	close(s.loader.stop)
	s.wg.Wait()
	s.cm.Stop(kill)
	if err := s.outbox.Close(); err != nil {
		s.log.Error("cannot close the outbox", zap.Error(err))
	}
	s.transport.CloseIdleConnections()
}
