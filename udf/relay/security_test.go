package relay

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zapcore"
)

const secret = "s3cret-T0ken"

// TestToken: with no token set every request passes (whatever its
// Authorization); with one set, only Bearer <token> passes; no token, nor
// anything a client sent as one, appears in an answer or a log.
func TestToken(t *testing.T) {
	tests := []struct {
		name   string
		token  string
		auth   []string // Authorization headers sent
		status int
		reason string
	}{
		{"none required, none sent", "", nil, 200, "accepted"},
		{"none required, one sent", "", []string{"Bearer whatever-" + secret}, 200, "accepted"},
		{"required, none sent", secret, nil, 401, "no token (want Authorization: Bearer <token>)"},
		{"required, empty header", secret, []string{""}, 401, "the Authorization header is not a bearer token"},
		{"required, wrong", secret, []string{"Bearer wrong-" + secret}, 401, "wrong token"},
		{"required, a prefix", secret, []string{"Bearer " + secret[:len(secret)-1]}, 401, "wrong token"},
		{"required, other case", secret, []string{"Bearer " + strings.ToUpper(secret)}, 401, "wrong token"},
		{"required, scheme only", secret, []string{"Bearer"}, 401, "the Authorization header is not a bearer token"},
		{"required, scheme and space", secret, []string{"Bearer "}, 401, "wrong token"},
		{"required, basic", secret, []string{"Basic " + secret}, 401, "the Authorization header is not a bearer token"},
		{"required, bare token", secret, []string{secret}, 401, "the Authorization header is not a bearer token"},
		{"required, two headers", secret, []string{"Bearer " + secret, "Bearer " + secret}, 401, "more than one Authorization header"},
		{"required, right", secret, []string{"Bearer " + secret}, 200, "accepted"},
		{"required, right, lower-case scheme", secret, []string{"bearer " + secret}, 200, "accepted"},
		{"required, right, two spaces", secret, []string{"Bearer  " + secret}, 200, "accepted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(Config{Token: tt.token})
			r := post("/relay/default", kapacitorBody)
			for _, a := range tt.auth {
				r.Header.Add("Authorization", a)
			}
			w := f.do(r)
			if tt.status == 200 {
				checkAnswer(t, f, w, 200, ResultAccepted, tt.reason)
				assert.Len(t, f.sink.relayed(), 1)
			} else {
				checkAnswer(t, f, w, 401, ResultUnauthorized, tt.reason)
				assert.Equal(t, "Bearer", w.Header().Get("WWW-Authenticate"))
				assert.Empty(t, f.sink.relayed())
				require.Equal(t, 1, f.logs.Len())
				assert.Equal(t, zapcore.WarnLevel, f.logs.All()[0].Level)
			}
			assertNoSecret(t, f, w)
		})
	}
}

// TestTokenBeforeEndpoint: without the token, nothing tells whether an
// endpoint exists or a body is good.
func TestTokenBeforeEndpoint(t *testing.T) {
	for _, path := range []string{"/relay/default", "/relay/nope"} {
		for _, ct := range []string{"application/json", "text/plain"} {
			f := newFixture(Config{Token: secret})
			r := post(path, "not json")
			r.Header.Set("Content-Type", ct)
			checkAnswer(t, f, f.do(r), 401, ResultUnauthorized, "no token")
		}
	}
}

// assertNoSecret checks that the token is in no answer and no log entry.
func assertNoSecret(t *testing.T, f *fixture, w *httptest.ResponseRecorder) {
	t.Helper()
	assert.NotContains(t, w.Body.String(), secret)
	for k, vs := range w.Header() {
		assert.NotContains(t, k+strings.Join(vs, ","), secret)
	}
	for _, e := range f.logs.All() {
		line := e.Message + fmt.Sprint(e.ContextMap())
		assert.NotContains(t, line, secret)
	}
}

// TestNotDurable: a Sink error is still answered 200, logged and counted.
func TestNotDurable(t *testing.T) {
	f := newFixture(Config{})
	f.sink.err = errors.New("writing the outbox: disk full")
	checkAnswer(t, f, f.do(post("/relay/ops", kapacitorBody)), 200, ResultNotDurable, "accepted, not durable\n")
	assert.Len(t, f.sink.relayed(), 1)
	errs := f.logs.FilterLevelExact(zapcore.ErrorLevel).All()
	require.Len(t, errs, 1)
	assert.Equal(t, "writing the outbox: disk full", errs[0].ContextMap()["error"])
	assert.Equal(t, "cpu:nil", errs[0].ContextMap()["id"])
}

// TestNotTaken: a Sink that did not take the alert (ErrNotTaken: the
// daemon is stopping) is answered 503, logged and counted.
func TestNotTaken(t *testing.T) {
	f := newFixture(Config{})
	f.sink.err = fmt.Errorf("drop relayed event: %w: sender is closed", ErrNotTaken)
	checkAnswer(t, f, f.do(post("/relay/ops", kapacitorBody)), 503, ResultNotTaken, "not taken: the daemon cannot take alerts now\n")
	errs := f.logs.FilterLevelExact(zapcore.ErrorLevel).All()
	require.Len(t, errs, 1)
	assert.Equal(t, "relay: alert not taken", errs[0].Message)
}

// TestSinkPanics: a panic in the Sink is answered 500, logged and counted,
// and the handler goes on serving.
func TestSinkPanics(t *testing.T) {
	for _, method := range []string{"HasEndpoint", "Relay"} {
		t.Run(method, func(t *testing.T) {
			f := newFixture(Config{})
			f.sink.panicOn = method
			checkAnswer(t, f, f.do(post("/relay/default", kapacitorBody)), 500, ResultPanic, "internal error\n")
			require.Len(t, f.logs.FilterLevelExact(zapcore.ErrorLevel).All(), 1)
			f.sink.panicOn = ""
			assert.Equal(t, 200, f.do(post("/relay/default", kapacitorBody)).Code)
		})
	}
}

// TestAbortHandlerPanics: http.ErrAbortHandler from the Sink is not
// answered but passed on, as net/http expects.
func TestAbortHandlerPanics(t *testing.T) {
	h := NewHandler(Config{Sink: abortSink{}})
	assert.PanicsWithValue(t, http.ErrAbortHandler, func() {
		h.ServeHTTP(httptest.NewRecorder(), post("/relay/default", kapacitorBody))
	})
}

type abortSink struct{}

func (abortSink) HasEndpoint(string) bool            { return true }
func (abortSink) Relay(string, *Alert, []byte) error { panic(http.ErrAbortHandler) }

// TestNilLoggerAndObserver: both are optional; the Sink is not.
func TestNilLoggerAndObserver(t *testing.T) {
	sink := &fakeSink{}
	h := NewHandler(Config{Sink: sink})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, post("/relay/default", kapacitorBody))
	assert.Equal(t, 200, w.Code)
	assert.Len(t, sink.relayed(), 1)
	assert.Panics(t, func() { NewHandler(Config{}) })
}

// TestConcurrentRequests: many posters at once over real connections, each
// alert relayed once, byte for byte, and counted.
func TestConcurrentRequests(t *testing.T) {
	f := newFixture(Config{Token: secret})
	srv := httptest.NewServer(f.h)
	defer srv.Close()
	const posters, each = 16, 50
	var wg sync.WaitGroup
	errs := make(chan error, posters*each)
	for p := range posters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				body := strings.Replace(kapacitorBody, `"id":"cpu:nil"`, fmt.Sprintf(`"id":"cpu:%d-%d"`, p, i), 1)
				if i%10 == 0 {
					body = "not json"
				}
				req, err := http.NewRequest(http.MethodPost, srv.URL+"/relay/default", strings.NewReader(body))
				if err != nil {
					errs <- err
					return
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+secret)
				resp, err := srv.Client().Do(req)
				if err != nil {
					errs <- err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if want := map[bool]int{true: 400, false: 200}[i%10 == 0]; resp.StatusCode != want {
					errs <- fmt.Errorf("poster %d request %d: status %d, want %d", p, i, resp.StatusCode, want)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got := f.sink.relayed()
	require.Len(t, got, posters*each*9/10)
	ids := map[string]bool{}
	for _, r := range got {
		ids[r.alert.ID] = true
		assert.Equal(t, strings.Replace(kapacitorBody, `"id":"cpu:nil"`, `"id":"`+r.alert.ID+`"`, 1), string(r.body))
	}
	assert.Len(t, ids, len(got))
	assert.Equal(t, map[Result]int{ResultAccepted: posters * each * 9 / 10, ResultNotJSON: posters * each / 10}, f.obs.counts())
}

// TestOverLimitOverRealConnection: a server refuses a large body with 413
// without reading it all, and the client gets the answer.
func TestOverLimitOverRealConnection(t *testing.T) {
	f := newFixture(Config{MaxBody: 1024})
	srv := httptest.NewServer(f.h)
	defer srv.Close()
	for _, length := range []int64{-1, 1 << 20} {
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/relay/default", io.LimitReader(zeros{}, 1<<20))
		require.NoError(t, err)
		req.ContentLength = length
		req.Header.Set("Content-Type", "application/json")
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		assert.Equal(t, 413, resp.StatusCode)
		assert.Equal(t, "body over 1024 bytes\n", string(b))
	}
	assert.Empty(t, f.sink.relayed())
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}
