package squadcast

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// fastHooks make every retry wait a microsecond and record the waits the
// Sender computed.
type fastHooks struct {
	mu    sync.Mutex
	waits []time.Duration
	now   time.Time
	long  bool // wait an hour instead (to test aborts during a wait)
}

func (f *fastHooks) hooks() hooks {
	return hooks{
		now:   func() time.Time { return f.now },
		randN: func(n int64) int64 { return n / 2 },
		wait: func(d time.Duration) time.Duration {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.waits = append(f.waits, d)
			if f.long {
				return time.Hour
			}
			return time.Microsecond
		},
	}
}

func (f *fastHooks) recorded() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.waits...)
}

// newTestSender starts a Sender with fast hooks and an observed logger at
// debug level. It is closed at the end of the test.
func newTestSender(t *testing.T, cfg Config) (*Sender, *observer.ObservedLogs, *fastHooks) {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	if cfg.Logger == nil {
		cfg.Logger = zap.New(core)
	}
	if cfg.RetryWaitMin == 0 {
		cfg.RetryWaitMin = time.Millisecond
	}
	if cfg.RetryWaitMax == 0 {
		cfg.RetryWaitMax = 10 * time.Millisecond
	}
	fh := &fastHooks{now: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)}
	s, err := newSender(cfg, fh.hooks())
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = s.Close(ctx)
	})
	return s, logs, fh
}

// closeAndWait closes s, letting it deliver everything pending.
func closeAndWait(t *testing.T, s *Sender) {
	t.Helper()
	require.NoError(t, s.Close(context.Background()))
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

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
