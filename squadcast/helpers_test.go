package squadcast

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// fastHooks run on the real clock, make every retry wait a microsecond and
// record the waits the Sender computed.
type fastHooks struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (f *fastHooks) hooks() hooks {
	return hooks{
		clock: realClock{},
		randN: func(n int64) int64 { return n / 2 },
		wait: func(d time.Duration) time.Duration {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.waits = append(f.waits, d)
			return time.Microsecond
		},
	}
}

func (f *fastHooks) recorded() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.waits...)
}

// fakeClock is a simulated clock: time moves only when the test advances it.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at time.Time
	c  chan time.Time
}

var clockStart = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

func newFakeClock() *fakeClock { return &fakeClock{now: clockStart} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) At(t time.Time) (<-chan time.Time, func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ft := &fakeTimer{at: t, c: make(chan time.Time, 1)}
	if !t.After(c.now) {
		ft.c <- c.now
		return ft.c, func() {}
	}
	c.timers = append(c.timers, ft)
	return ft.c, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, x := range c.timers {
			if x == ft {
				c.timers = append(c.timers[:i], c.timers[i+1:]...)
				return
			}
		}
	}
}

// Advance moves the clock forward by d, firing the timers that are due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, ft := range c.timers {
		if ft.at.After(c.now) {
			kept = append(kept, ft)
			continue
		}
		ft.c <- c.now
	}
	c.timers = kept
}

// fakeHooks run on a fake clock, with the real retry waits (recorded) and
// a jitter that always picks the middle.
func fakeHooks(c *fakeClock, f *fastHooks) hooks {
	return hooks{
		clock: c,
		randN: func(n int64) int64 { return n / 2 },
		wait: func(d time.Duration) time.Duration {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.waits = append(f.waits, d)
			return d
		},
	}
}

// testConfig fills in what every test Sender needs: a data dir, an
// observed logger at debug level, and short retry waits.
func testConfig(t *testing.T, cfg Config) (Config, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	if cfg.Logger == nil {
		cfg.Logger = zap.New(core)
	}
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.RetryWaitMin == 0 {
		cfg.RetryWaitMin = time.Millisecond
	}
	if cfg.RetryWaitMax == 0 {
		cfg.RetryWaitMax = 10 * time.Millisecond
	}
	return cfg, logs
}

// newTestSender starts a Sender with fast hooks (real clock, retry waits
// of a microsecond) and an observed logger. At the end of the test it is
// closed at once (what is pending stays in the outbox).
func newTestSender(t *testing.T, cfg Config) (*Sender, *observer.ObservedLogs, *fastHooks) {
	t.Helper()
	cfg, logs := testConfig(t, cfg)
	fh := &fastHooks{}
	return startSender(t, cfg, fh.hooks()), logs, fh
}

// newClockSender starts a Sender on a fake clock.
func newClockSender(t *testing.T, cfg Config) (*Sender, *observer.ObservedLogs, *fakeClock, *fastHooks) {
	t.Helper()
	cfg, logs := testConfig(t, cfg)
	c, fh := newFakeClock(), &fastHooks{}
	return startSender(t, cfg, fakeHooks(c, fh)), logs, c, fh
}

func startSender(t *testing.T, cfg Config, h hooks) *Sender {
	t.Helper()
	s, err := newSender(cfg, h)
	require.NoError(t, err)
	t.Cleanup(func() { closeNow(s) })
	return s
}

// closeNow closes s without waiting for deliveries.
func closeNow(s *Sender) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = s.Close(ctx)
}

// closeAndWait closes s, letting it deliver everything pending.
func closeAndWait(t *testing.T, s *Sender) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, s.Close(ctx))
}

// kill stops s as a crash would: attempts in flight are cut, outcomes not
// yet written are lost, and nothing more is written.
func kill(s *Sender) {
	s.backlog.close(func() {})
	s.closeOnce.Do(func() { s.shutdown(true) })
}

// waitingDue returns, for the incidents waiting in the heap, when each may go (by alert id).
func waitingDue(s *Sender) map[string]time.Time {
	sc := s.sched
	sc.mu.Lock()
	defer sc.mu.Unlock()
	m := map[string]time.Time{}
	for _, inc := range sc.waiting {
		m[inc.key.id] = inc.due
	}
	return m
}

// settled reports whether every event of s is in an incident (none is
// waiting for the committer), and none is ready, in flight, or due.
func settled(s *Sender) bool {
	s.backlog.mu.Lock() // the lock order: backlog, then scheduler
	defer s.backlog.mu.Unlock()
	sc := s.sched
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if len(sc.ready) > 0 {
		return false
	}
	if len(sc.waiting) > 0 && !sc.waiting[0].due.After(s.clock.Now()) {
		return false
	}
	for _, th := range sc.throttles {
		if !th.pumpAt.IsZero() && !th.pumpAt.After(s.clock.Now()) {
			return false // a slot is due
		}
	}
	n := 0
	for _, inc := range sc.incidents {
		if inc.busy {
			return false
		}
		n += len(inc.jobs)
	}
	return n == s.backlog.queued
}

// lister is an outbox that lists its entries: a Sender's *outbox.DB, or
// an *Outbox of the commands.
type lister interface {
	List() ([]OutboxEntry, error)
}

// listOutbox lists the outbox of a running or stopped Sender.
func listOutbox(t *testing.T, o lister) []OutboxEntry {
	t.Helper()
	l, err := o.List()
	require.NoError(t, err)
	return l
}

// states summarizes entries as "state:incident" strings, in list order.
func states(entries []OutboxEntry) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.State + ":" + e.Incident
	}
	return out
}

// assertNoSecret fails if any log entry (message or field) shows one of the secrets.
func assertNoSecret(t *testing.T, logs *observer.ObservedLogs, secrets ...string) {
	t.Helper()
	for _, e := range logs.All() {
		text := e.Message + " " + fmt.Sprint(e.ContextMap())
		for _, sec := range secrets {
			require.NotContains(t, text, sec, "log entry %q shows a secret", e.Message)
		}
	}
}

// entriesWith returns the log entries with the given message.
func entriesWith(logs *observer.ObservedLogs, msg string) []observer.LoggedEntry {
	return logs.FilterMessage(msg).All()
}

// perIncident groups "incident/n" ids by incident, keeping their order.
func perIncident(ids []string) map[string][]string {
	per := map[string][]string{}
	for _, id := range ids {
		inc, n, _ := strings.Cut(id, "/")
		per[inc] = append(per[inc], n)
	}
	return per
}

func counting(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = strconv.Itoa(i)
	}
	return out
}

// pendingAfterCrash runs a Sender on dir against h (which must hold its
// attempts), publishes n events for each of ids in turn (id/0 of each,
// then id/1...), flushes them, waits until the first attempt arrives, and
// kills the Sender: all of them are left pending in dir.
func pendingAfterCrash(t *testing.T, h *holdServer, dir string, n int, ids ...string) *Sender {
	t.Helper()
	s, _, _ := newTestSender(t, holdConfig(h, dir, 1))
	p, err := s.Open(udf.Destination{})
	require.NoError(t, err)
	for i := range n {
		for _, id := range ids {
			require.NoError(t, p.Publish(webhookEvent(id, i)))
		}
	}
	require.NoError(t, flushNow(p))
	<-h.arrived
	kill(s)
	return s
}

// publishConcurrently runs publish for n publishers of s at once, each on
// its own goroutine with its own publisher (g is its number), and waits
// for them all.
func publishConcurrently(t *testing.T, s *Sender, n int, publish func(g int, p udf.Publisher)) {
	t.Helper()
	var wg sync.WaitGroup
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := s.Open(udf.Destination{})
			if err != nil {
				t.Error(err)
				return
			}
			publish(g, p)
		}()
	}
	wg.Wait()
}

// failCommitsWhile makes the outbox transactions of a Sender started with
// hk fail, with "injected disk failure", whenever fail returns true.
func failCommitsWhile(hk *hooks, fail func() bool) {
	hk.beforeCommit = func() error {
		if fail() {
			return errors.New("injected disk failure")
		}
		return nil
	}
}

// flushNow flushes p as a publisher that never held its events: the
// events it publishes later are written at once (see publisher.flush).
func flushNow(p udf.Publisher) error { return p.(*publisher).flush(nil, false) }

// The outbox file's buckets and keys, for tests that write it behind the
// Sender's back (it is closed then).
var (
	bucketPending = []byte("pending")
	bucketMeta    = []byte("meta")
	keyVersion    = []byte("version")
)

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }
