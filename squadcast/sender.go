package squadcast

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"

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

// Sender delivers events to Squadcast webhooks. It implements udf.Sink; its
// publishers implement udf.Flusher.
//
// Every event is written to the outbox (Config.DataDir) and deleted only
// once Squadcast accepted it (2xx), so pending events survive a restart:
// New loads them and delivers them first. At most Config.QueueSize events
// are held in memory; beyond that, new events are kept in the outbox only
// (spilled), and loaded from it, oldest first, as room frees up (see
// spill.go). Events of one incident (same webhook URL and alert id) are
// delivered one at a time, in the order they were published; different
// incidents in parallel by Config.Workers workers, taking turns. Failed
// attempts are retried with backoff until they succeed, fail permanently
// or reach Config.MaxAge: then the event becomes a dead letter, kept in
// the outbox, and the incident's later events go on.
type Sender struct {
	cfg       Config
	log       *zap.Logger
	attempter *attempter
	transport *http.Transport
	endpoints map[string]*target
	hooks     hooks
	clock     clock
	outbox    *Outbox

	ctx    context.Context // ends when the Sender stops: aborts attempts in flight
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup // workers and scheduler
	stop   chan struct{}  // closed to stop the scheduler
	wake   chan struct{}  // the scheduler's wait got shorter

	// Scheduling state: see schedule.go.
	mu        sync.Mutex
	cond      *sync.Cond // signalled when ready gets an incident, or on stop
	incidents map[incidentKey]*incident
	peak      int // the most incidents since incidents was made
	ready     []*incident
	waiting   waitHeap
	hosts     map[string]*endpointState // by URL
	queued    int                       // events in memory, not yet delivered or dead
	// Spilled events: published when QueueSize events were in memory (or
	// after others spilled), they are written to the outbox but not kept in
	// memory; the loader reads them back, oldest first. All of them are
	// newer than every event in memory, so loading them in sequence order
	// keeps each incident's order.
	spilled   int           // spilled events not loaded yet (written or to write)
	unwritten int           // spilled events still to write (in memory until then)
	spillNext uint64        // where the loader reads from; 0 until one is written
	loadWake  chan struct{} // wakes the loader
	closed    bool          // Publish refuses
	stopping  bool          // workers and scheduler return
	drained   chan struct{} // closed when queued and spilled reach 0, while Close waits

	// Committer state: see committer.go. Lock order: mu, then cm.
	cm       sync.Mutex
	cmWork   *sync.Cond // the committer has work, or must stop
	cmDone   *sync.Cond // a batch was written (or failed)
	puts     []*job
	ops      []op
	saves    []stateSave
	putsDue  bool          // puts wait no longer (else they wait for a flush, or go with other work)
	opsDue   bool          // ops wait no longer
	opsTimer *time.Timer   // makes ops due opsDelay after the first
	cmStop   bool          // write what is queued, then return
	cmKill   bool          // return now
	cmGone   bool          // the committer returned
	cmWake   chan struct{} // closed to cut a retry pause short
	cmExited chan struct{}
	cmErr    error // the last transaction's error, nil once one succeeds

	closeOnce sync.Once
	closeErr  error

	published, delivered, retried, deadLettered, dropped atomic.Uint64
	stored, commits                                      atomic.Int64
}

var (
	_ udf.Sink         = (*Sender)(nil)
	_ udf.Flusher      = (*publisher)(nil)
	_ udf.StateFlusher = (*publisher)(nil)
)

// hooks are the Sender's clock, randomness and retry wait, replaced in tests.
type hooks struct {
	clock clock
	randN func(n int64) int64 // uniform in [0, n)
	// wait, when set, gets each computed retry wait and returns the one to use.
	wait func(time.Duration) time.Duration
	// beforeCommit, when set, runs before each outbox transaction; an error fails it.
	beforeCommit func() error
}

// target is a resolved destination.
type target struct {
	name     string // endpoint name, or "inline:<host>"
	settings string // the configured endpoint whose timeout and rate apply, "" for none
	url      string
	format   string
	timeout  time.Duration
	rate     RateLimit
	headers  map[string]string
	label    string   // the name an Observer hears
	secrets  []string // parts of url never to show
}

// job is one event to deliver. Its delivery state is touched only by the
// worker delivering it, and next also under Sender.mu; seq, gone, released
// and rec belong to the committer.
type job struct {
	target  *target
	id      string
	level   udf.Level
	task    string
	created time.Time
	body    []byte
	pub     *publisher // nil for events loaded from the outbox

	attempts int
	lastErr  string
	next     time.Time // not before

	seq      uint64 // in the outbox; 0 until written
	gone     bool   // delivered or dead before it could be written
	released bool   // handed to the scheduler (or, spilled, left on disk)
	rec      []byte // the encoded record, until written
	spill    bool   // kept in the outbox only, until the loader reads it back
}

func (j *job) fields() []zap.Field {
	return []zap.Field{
		zap.String("endpoint", j.target.name),
		zap.String("incident", udf.LoggedID(j.id)),
		zap.String("level", j.level.String()),
		zap.String("task", j.task),
	}
}

// record returns the job as stored.
func (j *job) record() *record {
	return &record{
		Endpoint:    j.target.name,
		Settings:    j.target.settings,
		URL:         j.target.url,
		Format:      j.target.format,
		Incident:    j.id,
		Level:       j.level,
		Task:        j.task,
		Created:     j.created,
		Attempts:    j.attempts,
		LastError:   j.lastErr,
		NextAttempt: j.next,
		Body:        j.body,
	}
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
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	ob, err := OpenOutbox(OutboxPath(cfg.DataDir), false)
	if err != nil {
		return nil, err
	}
	if ob, err = compactIfSparse(ob, cfg.Logger); err != nil {
		return nil, err
	}
	stored, total, dead, next, err := ob.loadPending(cfg.QueueSize)
	if err != nil {
		ob.Close()
		return nil, err
	}

	s := &Sender{
		cfg:       cfg,
		log:       cfg.Logger,
		endpoints: make(map[string]*target, len(cfg.Endpoints)),
		hooks:     h,
		clock:     h.clock,
		outbox:    ob,
		stop:      make(chan struct{}),
		wake:      make(chan struct{}, 1),
		loadWake:  make(chan struct{}, 1),
		incidents: make(map[incidentKey]*incident),
		hosts:     make(map[string]*endpointState),
		cmWake:    make(chan struct{}),
		cmExited:  make(chan struct{}),
	}
	s.cond = sync.NewCond(&s.mu)
	s.cmWork = sync.NewCond(&s.cm)
	s.cmDone = sync.NewCond(&s.cm)
	s.opsTimer = time.AfterFunc(time.Hour, s.opsTimerFired)
	s.opsTimer.Stop()
	for _, e := range cfg.Endpoints {
		s.endpoints[e.Name] = &target{name: e.Name, settings: e.Name, url: e.URL, format: e.Format,
			timeout: e.Timeout, rate: e.RateLimit, headers: e.Headers, label: observerLabel(e.Name), secrets: urlSecrets(e.URL)}
	}

	s.transport = http.DefaultTransport.(*http.Transport).Clone()
	s.transport.MaxIdleConnsPerHost = cfg.Workers
	s.attempter = newAttempter(s.transport, cfg, h)

	s.ctx, s.cancel = context.WithCancelCause(context.Background())
	s.stored.Store(int64(total))
	s.queued = len(stored)
	s.spilled, s.spillNext = total-len(stored), next
	s.enqueue(s.restore(stored))
	if total > 0 || dead > 0 {
		s.log.Info("loaded the outbox", zap.Int("pending", total), zap.Int("pending_left_on_disk", s.spilled), zap.Int("dead_letters", dead))
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.loadLoop()
	}()
	s.wakeLoader()
	for range cfg.Workers {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.work()
		}()
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.scheduleLoop()
	}()
	go s.commitLoop()
	return s, nil
}

// restore turns loaded records into jobs, re-resolving their settings by
// endpoint name: the stored URL and format stay (they are what the event
// was published for); timeout and rate limit are the configured ones.
func (s *Sender) restore(stored []storedEvent) []*job {
	type targetKey struct{ name, settings, url, format string }
	targets := make(map[targetKey]*target)
	jobs := make([]*job, 0, len(stored))
	for _, ev := range stored {
		r := ev.rec
		key := targetKey{r.Endpoint, r.Settings, r.URL, r.Format}
		t := targets[key]
		if t == nil {
			t = &target{name: r.Endpoint, settings: r.Settings, url: r.URL, format: r.Format,
				timeout: DefaultTimeout, label: observerLabel(r.Endpoint), secrets: urlSecrets(r.URL)}
			if ep, ok := s.endpoints[r.Settings]; ok {
				t.timeout, t.rate, t.headers = ep.timeout, ep.rate, ep.headers
			} else {
				t.settings = ""
			}
			targets[key] = t
		}
		jobs = append(jobs, &job{
			target: t, id: r.Incident, level: r.Level, task: r.Task, created: r.Created, body: r.Body,
			attempts: r.Attempts, lastErr: r.LastError, next: r.NextAttempt,
			seq: ev.seq, released: true,
		})
	}
	return jobs
}

// Open resolves a task's destination: the named endpoint (DefaultEndpoint
// when empty), or an inline URL, which overrides the endpoint and takes its
// format, timeout and rate limit from it when it is configured; then the
// format, if given, overrides the endpoint's. Errors are *udf.OptionError
// and never contain a URL.
func (s *Sender) Open(d udf.Destination) (udf.Publisher, error) {
	t, err := s.resolve(d)
	if err != nil {
		return nil, err
	}
	return &publisher{s: s, t: t}, nil
}

func (s *Sender) resolve(d udf.Destination) (*target, error) {
	name := d.Endpoint
	if name == "" {
		name = DefaultEndpoint
	}
	ep, known := s.endpoints[name]
	var t target
	switch {
	case d.URL != "":
		if !known && name != DefaultEndpoint {
			return nil, s.unknownEndpoint(name)
		}
		u, err := parseWebhookURL(d.URL)
		if err != nil {
			return nil, &udf.OptionError{Option: "url", Reason: "url " + err.Error()}
		}
		t = target{name: "inline:" + u.Host, url: d.URL, format: FormatKapacitor, timeout: DefaultTimeout,
			label: InlineLabel, secrets: urlSecrets(d.URL)}
		if known {
			t.settings, t.format, t.timeout, t.rate, t.headers = ep.settings, ep.format, ep.timeout, ep.rate, ep.headers
		}
	case known:
		t = *ep
	default:
		return nil, s.unknownEndpoint(name)
	}
	if d.Format != "" {
		if !validFormat(d.Format) {
			return nil, &udf.OptionError{Option: "format", Value: "'" + d.Format + "'",
				Reason: fmt.Sprintf("unknown format (want '%s' or '%s')", FormatKapacitor, FormatIncidentWebhook)}
		}
		t.format = d.Format
	}
	if len(d.IncidentOnly) > 0 && t.format != FormatIncidentWebhook {
		return nil, &udf.OptionError{Option: d.IncidentOnly[0],
			Reason: fmt.Sprintf("only the %s format has tags and priorities, and this task sends the %s format (endpoint %s): add .format('%s') or remove .%s()",
				FormatIncidentWebhook, t.format, t.name, FormatIncidentWebhook, d.IncidentOnly[0])}
	}
	return &t, nil
}

func (s *Sender) unknownEndpoint(name string) error {
	e := &udf.OptionError{Option: "endpoint", Value: "'" + name + "'"}
	switch {
	case len(s.endpoints) == 0 && name == DefaultEndpoint:
		e.Reason = "no endpoint is configured: start the daemon with --url, SQUADCAST_WEBHOOK_URL or a config file's [[endpoint]] name = \"default\", or give .url(...)"
	case len(s.endpoints) == 0:
		e.Reason = "unknown endpoint (none is configured)"
	default:
		names := make([]string, 0, len(s.endpoints))
		for n := range s.endpoints {
			names = append(names, n)
		}
		sort.Strings(names)
		e.Reason = "unknown endpoint (configured: " + strings.Join(names, ", ") + ")"
	}
	return e
}

// publisher publishes a task node's events to one target.
type publisher struct {
	s *Sender
	t *target

	// Guarded by s.cm.
	unstored int   // events and state saves queued and not yet written
	err      error // the last failed write of one of them, until Flush reports it
	held     bool  // FlushState was called: Publish leaves the write to it
}

// Publish renders ev and queues it for the outbox and delivery; it never
// waits on the disk or the network. See Flush.
func (p *publisher) Publish(ev udf.Event) error {
	s := p.s
	// drop counts the event as dropped and says why.
	drop := func(err error) error {
		s.dropped.Add(1)
		return fmt.Errorf("drop event for incident %q (endpoint %s): %w", udf.LoggedID(ev.ID), p.t.name, err)
	}
	body, err := Render(p.t.format, ev)
	if err != nil {
		return drop(err)
	}
	j := &job{target: p.t, id: ev.ID, level: ev.Level, task: ev.TaskID, created: s.clock.Now(), body: body, pub: p}
	if j.rec, err = encodeRecord(j.record()); err != nil {
		return drop(err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return drop(ErrClosed)
	}
	if s.spilled > 0 || s.queued >= s.cfg.QueueSize {
		// Memory is full, or was: the outbox keeps the event until the
		// loader reads it back. Until it is written it is in memory: while
		// writes fail, that too is bounded.
		if s.unwritten >= s.cfg.QueueSize && s.writesFail() {
			return drop(fmt.Errorf("%w (%d events wait to be written)", ErrOutboxBehind, s.unwritten))
		}
		j.spill = true
		s.spilled++
		s.unwritten++
	} else {
		s.queued++
	}
	s.published.Add(1)
	s.cm.Lock()
	p.unstored++
	s.puts = append(s.puts, j)
	if !p.held || len(s.puts) >= maxHeldPuts {
		s.putsDue = true
		s.cmWork.Signal()
	}
	s.cm.Unlock()
	return nil
}

// writesFail reports whether the outbox's last transaction failed.
func (s *Sender) writesFail() bool {
	s.cm.Lock()
	defer s.cm.Unlock()
	return s.cmErr != nil
}

// maxHeldPuts bounds the events a flush may hold back for its transaction
// (a huge batch task's burst): beyond it they are written at once.
const maxHeldPuts = 4096

// Flush waits until every event this publisher published is written to
// the outbox (committed and synced to disk): the committer writes whatever
// is waiting in one transaction, so concurrent Flush calls share it. It
// returns an error when the write that covered some of them failed; those
// events are still being delivered (from memory) and their write retried,
// which a later Flush waits for.
func (p *publisher) Flush() error { return p.flush(nil, false) }

// FlushState is Flush, with save (the alert state's changes, see
// udf.StateFlusher) written after the events, in the same transaction
// unless the committer took some of them before save was queued. From the
// first call on, Publish no longer wakes the committer: the events of a
// read burst wait for its FlushState, and go to disk with its state in one
// transaction, one sync.
func (p *publisher) FlushState(save func(*bolt.Tx) error) error { return p.flush(save, true) }

func (p *publisher) flush(save func(*bolt.Tx) error, hold bool) error {
	s := p.s
	s.cm.Lock()
	defer s.cm.Unlock()
	p.held = p.held || hold
	if save != nil && !s.cmGone {
		p.unstored++
		s.saves = append(s.saves, stateSave{pub: p, write: save})
	}
	if p.unstored > 0 {
		s.putsDue = true
		s.cmWork.Signal()
	}
	for p.unstored > 0 && p.err == nil && !s.cmGone {
		s.cmDone.Wait()
	}
	if p.unstored == 0 {
		return nil
	}
	err := p.err
	p.err = nil
	if err == nil {
		err = ErrClosed
	}
	return fmt.Errorf("make %d event(s) or state change(s) of endpoint %s durable: %w", p.unstored, p.t.name, err)
}

// StateStore returns the alert state store kept in the outbox's file, for
// udf.HandlerConfig.State: the publishers write its changes in their
// transactions (udf.StateFlusher). It is valid until Close.
func (s *Sender) StateStore() (*udf.StateStore, error) {
	st, err := udf.NewStateStore(s.outbox.db)
	if err != nil {
		return nil, fmt.Errorf("outbox %s: %w", s.outbox.path, err)
	}
	return st, nil
}

// send makes the next attempt of j: it counts it (and a retry), and
// returns its result.
func (s *Sender) send(j *job) attemptResult {
	j.attempts++
	if j.attempts > 1 {
		s.retried.Add(1)
	}
	if ce := s.log.Check(zap.DebugLevel, "squadcast delivery attempt"); ce != nil {
		ce.Write(append(j.fields(), zap.Int("attempt", j.attempts), zap.Int("bytes", len(j.body)))...)
	}
	return s.attempter.attempt(s.ctx, attemptRequest{url: j.target.url, headers: j.target.headers, body: j.body,
		timeout: j.target.timeout, attempt: j.attempts, secrets: j.target.secrets})
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
	s.mu.Lock()
	queued, spilled := s.queued, s.spilled
	s.mu.Unlock()
	return Stats{
		Published:    s.published.Load(),
		Delivered:    s.delivered.Load(),
		Retried:      s.retried.Load(),
		DeadLettered: s.deadLettered.Load(),
		Dropped:      s.dropped.Load(),
		Queued:       queued,
		Spilled:      spilled,
		Pending:      int(s.stored.Load()),
	}
}

// Ready reports whether the Sender can take events durably: it is not
// closed, the committer's last outbox transaction succeeded, and an empty
// write transaction commits (and syncs) now. It is meant for a readiness
// probe: each call writes the outbox file's meta page.
func (s *Sender) Ready() error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return ErrClosed
	}
	s.cm.Lock()
	err := s.cmErr
	s.cm.Unlock()
	if err != nil {
		return fmt.Errorf("the last outbox write failed: %w", err)
	}
	if err := s.outbox.update(func(*bolt.Tx) error { return nil }); err != nil {
		return fmt.Errorf("write the outbox: %w", err)
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
	s.mu.Lock()
	s.closed = true
	// Events a publisher still holds for its FlushState are written now.
	s.cm.Lock()
	s.putsDue = true
	s.cmWork.Signal()
	s.cm.Unlock()
	var drained chan struct{}
	if s.queued > 0 || s.spilled > 0 {
		s.drained = make(chan struct{})
		drained = s.drained
	}
	s.mu.Unlock()
	if drained != nil {
		select {
		case <-drained:
		case <-ctx.Done():
		}
	}
	s.shutdown(false)

	s.mu.Lock()
	n := s.queued + s.spilled
	s.mu.Unlock()
	if n == 0 {
		return nil
	}
	return fmt.Errorf("close squadcast sender: %d event(s) still pending, kept in the outbox for the next start: %w", n, context.Cause(ctx))
}

// shutdown stops the workers (aborting attempts in flight) and the
// scheduler, then the committer (at once when kill, which simulates a
// crash in tests; else after writing what is queued), and closes the outbox.
func (s *Sender) shutdown(kill bool) {
	s.mu.Lock()
	s.stopping = true
	s.cond.Broadcast()
	s.mu.Unlock()
	s.cancel(ErrAborted)
	close(s.stop)
	s.wg.Wait()

	s.cm.Lock()
	if kill {
		s.cmKill = true
	}
	s.cmStop = true
	s.cmWork.Broadcast()
	s.cm.Unlock()
	close(s.cmWake)
	<-s.cmExited

	if err := s.outbox.Close(); err != nil {
		s.log.Error("cannot close the outbox", zap.Error(err))
	}
	s.transport.CloseIdleConnections()
}
