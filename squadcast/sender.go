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
	outbox    *outbox.DB
	cm        *outbox.Committer[*job] // writes the outbox: see publisher.go

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
	spillNext uint64        // where the loader reads from; 0 while none is spilled
	loadWake  chan struct{} // wakes the loader
	closed    bool          // Publish refuses
	stopping  bool          // workers and scheduler return
	drained   chan struct{} // closed when queued and spilled reach 0, while Close waits

	closeOnce sync.Once
	closeErr  error

	published, delivered, retried, deadLettered, dropped atomic.Uint64
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
// worker delivering it, and next also under Sender.mu; released and spill
// belong to the commit hand-off (onCommit); seq is set once, when the
// event is published or loaded.
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

	seq      uint64 // its key in the outbox
	released bool   // handed to the scheduler (or, spilled, left on disk)
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
	ob, err := openOutbox(OutboxPath(cfg.DataDir), false)
	if err != nil {
		return nil, err
	}
	if ob, err = outbox.CompactIfSparse(ob, cfg.Logger); err != nil {
		return nil, err
	}
	loaded, err := ob.LoadStart(cfg.QueueSize)
	if err != nil {
		ob.Close()
		return nil, err
	}
	total, dead := ob.Pending(), ob.Dead()

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
	}
	s.cond = sync.NewCond(&s.mu)
	s.cm = outbox.NewCommitter(ob, outbox.CommitterConfig[*job]{
		Logger: s.log, OnCommit: s.onCommit, Stopped: ErrClosed, BeforeCommit: h.beforeCommit})
	for _, e := range cfg.Endpoints {
		s.endpoints[e.Name] = &target{name: e.Name, settings: e.Name, url: e.URL, format: e.Format,
			timeout: e.Timeout, rate: e.RateLimit, headers: e.Headers, label: observerLabel(e.Name), secrets: urlSecrets(e.URL)}
	}

	s.transport = http.DefaultTransport.(*http.Transport).Clone()
	s.transport.MaxIdleConnsPerHost = cfg.Workers
	s.attempter = newAttempter(s.transport, cfg, h)

	s.ctx, s.cancel = context.WithCancelCause(context.Background())
	s.queued = len(loaded.Events)
	s.spilled, s.spillNext = total-len(loaded.Events), loaded.Next
	s.enqueue(s.restore(loaded.Events))
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
	return s, nil
}

// restore turns loaded records into jobs, re-resolving their settings by
// endpoint name: the stored URL and format stay (they are what the event
// was published for); timeout and rate limit are the configured ones.
func (s *Sender) restore(stored []outbox.Stored) []*job {
	type targetKey struct{ name, settings, url, format string }
	targets := make(map[targetKey]*target)
	jobs := make([]*job, 0, len(stored))
	for _, ev := range stored {
		r := ev.Record
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
		level, _ := udf.ParseLevel(r.Level) // outbox.Decode checked it
		jobs = append(jobs, &job{
			target: t, id: r.Incident, level: level, task: r.Task, created: r.Created, body: r.Body,
			attempts: r.Attempts, lastErr: r.LastError, next: r.NextAttempt,
			seq: ev.Seq, released: true,
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
	return &publisher{s: s, t: t, src: outbox.Source{Name: t.name}}, nil
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
		Pending:      s.outbox.Pending(),
	}
}

// Ready reports whether the Sender can take events durably: it is not
// closed, the committer's last outbox transaction succeeded, and the
// outbox can be read. It is meant for a readiness probe: it writes
// nothing, so that probes never compete with the committer.
func (s *Sender) Ready() error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
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
	s.mu.Lock()
	s.closed = true
	// Events a publisher still holds for its Flush are written now.
	s.cm.WriteHeld()
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

	s.cm.Stop(kill)
	if err := s.outbox.Close(); err != nil {
		s.log.Error("cannot close the outbox", zap.Error(err))
	}
	s.transport.CloseIdleConnections()
}
