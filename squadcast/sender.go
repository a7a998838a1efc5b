package squadcast

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"go.uber.org/zap"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// DefaultEndpoint is the endpoint a task uses when it names none (udf.DefaultEndpoint).
const DefaultEndpoint = udf.DefaultEndpoint

// Errors Publish returns (wrapped) when it cannot take an event.
var (
	// ErrQueueFull means Config.QueueSize events are already pending.
	ErrQueueFull = errors.New("queue is full")
	// ErrClosed means Close was called.
	ErrClosed = errors.New("sender is closed")
)

// Sender delivers events to Squadcast webhooks. It implements udf.Sink.
// Events of one incident (same webhook URL and alert ID) are delivered one at
// a time, in the order they were published; different incidents are
// delivered in parallel by Config.Workers workers, taking turns.
type Sender struct {
	cfg       Config
	log       *zap.Logger
	client    *retryablehttp.Client
	transport *http.Transport
	endpoints map[string]*target
	hooks     hooks

	ctx    context.Context // ends when Close gives up waiting
	cancel context.CancelCauseFunc
	done   chan struct{} // closed when every worker has returned

	mu        sync.Mutex
	cond      *sync.Cond // signalled when ready gets an incident, or on close
	incidents map[incidentKey]*incident
	ready     []*incident // incidents with events and none in flight, in turn order
	pending   int         // events queued or in flight
	closed    bool
	aborted   bool
	abandoned int // events dropped or aborted by Close

	published, delivered, retried, failed, dropped atomic.Uint64
}

var _ udf.Sink = (*Sender)(nil)

// hooks are the Sender's clock, randomness and retry wait, replaced in tests.
type hooks struct {
	now   func() time.Time
	randN func(n int64) int64 // uniform in [0, n)
	// wait, when set, gets each computed retry wait and returns the one to use.
	wait func(time.Duration) time.Duration
}

// target is a resolved destination.
type target struct {
	name    string // endpoint name, or "inline:<host>"
	url     string
	format  string
	timeout time.Duration
	secrets []string // parts of url never to show
}

type incidentKey struct{ url, id string }

// incident is the queue of one incident's events.
type incident struct {
	key  incidentKey
	jobs []*job
	busy bool // an event is in flight
}

// job is one event to deliver. Its delivery state is touched only by the
// worker delivering it (go-retryablehttp calls the hooks on that goroutine).
type job struct {
	target *target
	id     string
	level  udf.Level
	task   string
	body   []byte

	attempts  int
	status    int
	retryable bool
}

func (j *job) fields() []zap.Field {
	return []zap.Field{
		zap.String("endpoint", j.target.name),
		zap.String("incident", j.id),
		zap.String("level", j.level.String()),
		zap.String("task", j.task),
	}
}

type jobKey struct{}

func jobFrom(ctx context.Context) *job {
	j, _ := ctx.Value(jobKey{}).(*job)
	return j
}

// New validates cfg and starts a Sender with its workers. Call Close to stop them.
func New(cfg Config) (*Sender, error) {
	return newSender(cfg, hooks{now: time.Now, randN: rand.Int64N})
}

func newSender(cfg Config, h hooks) (*Sender, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("squadcast config: %w", err)
	}
	s := &Sender{
		cfg:       cfg,
		log:       cfg.Logger,
		endpoints: make(map[string]*target, len(cfg.Endpoints)),
		hooks:     h,
		done:      make(chan struct{}),
		incidents: make(map[incidentKey]*incident),
	}
	s.cond = sync.NewCond(&s.mu)
	for _, e := range cfg.Endpoints {
		s.endpoints[e.Name] = &target{name: e.Name, url: e.URL, format: e.Format, timeout: e.Timeout, secrets: urlSecrets(e.URL)}
	}

	s.transport = http.DefaultTransport.(*http.Transport).Clone()
	s.transport.MaxIdleConnsPerHost = cfg.Workers
	s.client = &retryablehttp.Client{
		HTTPClient: &http.Client{
			Transport:     timeoutTransport{next: s.transport},
			CheckRedirect: checkRedirect,
		},
		Logger:         retryLogger{log: s.log},
		RetryWaitMin:   cfg.RetryWaitMin,
		RetryWaitMax:   cfg.RetryWaitMax,
		RetryMax:       cfg.RetryMax,
		RequestLogHook: s.requestLogHook,
		CheckRetry:     s.checkRetry,
		Backoff:        s.backoff,
		ErrorHandler:   errorHandler,
	}

	s.ctx, s.cancel = context.WithCancelCause(context.Background())
	var wg sync.WaitGroup
	for range cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.work()
		}()
	}
	go func() {
		wg.Wait()
		close(s.done)
	}()
	return s, nil
}

// Open resolves a task's destination: the named endpoint (DefaultEndpoint
// when empty), or an inline URL, which overrides the endpoint and takes its
// format and timeout from it when it is configured; then the format, if
// given, overrides the endpoint's. Errors are *udf.OptionError and never
// contain a URL.
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
		t = target{name: "inline:" + u.Host, url: d.URL, format: FormatKapacitor, timeout: DefaultTimeout, secrets: urlSecrets(d.URL)}
		if known {
			t.format, t.timeout = ep.format, ep.timeout
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
	return &t, nil
}

func (s *Sender) unknownEndpoint(name string) error {
	e := &udf.OptionError{Option: "endpoint", Value: "'" + name + "'"}
	switch {
	case len(s.endpoints) == 0 && name == DefaultEndpoint:
		e.Reason = "no endpoint is configured: start the daemon with --url or SQUADCAST_WEBHOOK_URL, or give .url(...)"
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
}

// Publish renders ev and queues it for delivery; it never waits on the network.
func (p *publisher) Publish(ev udf.Event) error {
	s := p.s
	body, err := Render(p.t.format, ev)
	if err != nil {
		s.dropped.Add(1)
		return fmt.Errorf("drop event for incident %q (endpoint %s): %w", ev.ID, p.t.name, err)
	}
	j := &job{target: p.t, id: ev.ID, level: ev.Level, task: ev.TaskID, body: body}

	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		s.dropped.Add(1)
		return fmt.Errorf("drop event for incident %q (endpoint %s): %w", ev.ID, p.t.name, ErrClosed)
	case s.pending >= s.cfg.QueueSize:
		s.dropped.Add(1)
		return fmt.Errorf("drop event for incident %q (endpoint %s): %w (%d events pending)", ev.ID, p.t.name, ErrQueueFull, s.pending)
	}
	s.pending++
	s.published.Add(1)
	key := incidentKey{url: p.t.url, id: ev.ID}
	inc := s.incidents[key]
	if inc == nil {
		inc = &incident{key: key}
		s.incidents[key] = inc
	}
	inc.jobs = append(inc.jobs, j)
	if !inc.busy && len(inc.jobs) == 1 {
		s.ready = append(s.ready, inc)
		s.cond.Signal()
	}
	return nil
}

// work delivers events until the Sender is closed and nothing is ready.
// An incident goes back to the end of the ready queue after each event, so
// incidents take turns.
func (s *Sender) work() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		for len(s.ready) == 0 && !s.closed {
			s.cond.Wait()
		}
		if len(s.ready) == 0 {
			return
		}
		inc := s.ready[0]
		s.ready[0] = nil
		s.ready = s.ready[1:]
		j := inc.jobs[0]
		inc.jobs[0] = nil
		inc.jobs = inc.jobs[1:]
		inc.busy = true
		s.mu.Unlock()

		s.deliver(j)

		s.mu.Lock()
		s.pending--
		inc.busy = false
		if s.aborted && len(inc.jobs) > 0 {
			s.abandoned += len(inc.jobs)
			s.dropped.Add(uint64(len(inc.jobs)))
			s.pending -= len(inc.jobs)
			inc.jobs = nil
		}
		if len(inc.jobs) > 0 {
			s.ready = append(s.ready, inc)
		} else {
			delete(s.incidents, inc.key)
		}
	}
}

// deliver sends one event, with retries, and logs and counts the outcome.
func (s *Sender) deliver(j *job) {
	err := s.send(j)
	if err == nil {
		s.delivered.Add(1)
		s.log.Debug("squadcast event delivered",
			append(j.fields(), zap.Int("attempts", j.attempts), zap.Int("status", j.status))...)
		return
	}
	s.failed.Add(1)
	var de *DeliveryError
	if !errors.As(err, &de) {
		de = &DeliveryError{Attempts: j.attempts, StatusCode: j.status, Err: err}
	}
	reason := "permanent failure"
	switch {
	case errors.Is(de.Err, ErrAborted):
		reason = "aborted by shutdown"
		s.mu.Lock()
		s.abandoned++
		s.mu.Unlock()
	case j.retryable:
		reason = "retries exhausted"
	}
	fields := append(j.fields(),
		zap.String("reason", reason),
		zap.Int("attempts", de.Attempts),
		zap.Int("status", de.StatusCode),
		zap.String("error", de.Err.Error()))
	if de.Body != "" {
		fields = append(fields, zap.String("response", de.Body))
	}
	s.log.Error("squadcast delivery failed", fields...)
}

// send makes the HTTP request, with retries. Its error is a redacted *DeliveryError.
func (s *Sender) send(j *job) error {
	ctx := context.WithValue(s.ctx, jobKey{}, j)
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, j.target.url, j.body)
	if err != nil {
		return &DeliveryError{Err: redactError(fmt.Errorf("build request: %w", err), j.target.secrets)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", s.cfg.UserAgent)
	resp, err := s.client.Do(req)
	if err != nil {
		var de *DeliveryError
		if !errors.As(err, &de) {
			// Do returns the context's error as is when it ends during a retry wait.
			if s.ctx.Err() != nil {
				err = fmt.Errorf("%w: %w", context.Cause(s.ctx), err)
			}
			de = &DeliveryError{Attempts: j.attempts, StatusCode: j.status, Err: err}
		}
		return redactError(de, j.target.secrets)
	}
	j.status = resp.StatusCode
	drainBody(resp.Body)
	return nil
}

// requestLogHook runs before each attempt: it counts attempts and retries.
func (s *Sender) requestLogHook(_ retryablehttp.Logger, req *http.Request, retry int) {
	j := jobFrom(req.Context())
	if j == nil {
		return
	}
	j.attempts++
	if retry > 0 {
		s.retried.Add(1)
	}
	if ce := s.log.Check(zap.DebugLevel, "squadcast delivery attempt"); ce != nil {
		ce.Write(append(j.fields(), zap.Int("attempt", j.attempts), zap.Int("bytes", len(j.body)))...)
	}
}

// Stats are a Sender's counters since New.
type Stats struct {
	// Published counts events accepted by Publish.
	Published uint64
	// Delivered counts events Squadcast accepted (2xx).
	Delivered uint64
	// Retried counts retry attempts (attempts after the first of an event).
	Retried uint64
	// Failed counts events given up after at least one attempt.
	Failed uint64
	// Dropped counts events never attempted: refused by Publish (render
	// error, queue full, closed) or discarded by Close.
	Dropped uint64
	// Pending is the number of events queued or in flight now.
	Pending int
}

// Stats returns the Sender's counters.
func (s *Sender) Stats() Stats {
	s.mu.Lock()
	pending := s.pending
	s.mu.Unlock()
	return Stats{
		Published: s.published.Load(),
		Delivered: s.delivered.Load(),
		Retried:   s.retried.Load(),
		Failed:    s.failed.Load(),
		Dropped:   s.dropped.Load(),
		Pending:   pending,
	}
}

// Close stops accepting events (Publish then returns ErrClosed) and waits for
// the workers to deliver every pending event. When ctx ends first, it
// discards the events not yet attempted, aborts the deliveries in flight
// (retry waits included), waits for the workers to return, and reports how
// many events were given up. Close may be called more than once.
func (s *Sender) Close(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		s.cond.Broadcast()
	}
	s.mu.Unlock()

	select {
	case <-s.done:
		s.finish()
		return nil
	case <-ctx.Done():
	}

	s.mu.Lock()
	s.aborted = true
	for _, inc := range s.ready {
		n := len(inc.jobs)
		s.abandoned += n
		s.pending -= n
		s.dropped.Add(uint64(n))
		delete(s.incidents, inc.key)
	}
	s.ready = nil
	s.mu.Unlock()
	s.cancel(ErrAborted)
	<-s.done
	s.finish()

	s.mu.Lock()
	n := s.abandoned
	s.mu.Unlock()
	if n == 0 {
		return nil
	}
	return fmt.Errorf("close squadcast sender: gave up %d pending event(s): %w", n, context.Cause(ctx))
}

// finish releases what the workers used.
func (s *Sender) finish() {
	s.cancel(ErrAborted)
	s.transport.CloseIdleConnections()
}
