package relay

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// fakeSink records what it is given. Endpoints "default" and "ops" exist.
type fakeSink struct {
	mu      sync.Mutex
	got     []relayed
	err     error // what Relay returns
	panicOn string
}

type relayed struct {
	endpoint string
	alert    *Alert
	body     []byte
}

func (s *fakeSink) HasEndpoint(name string) bool {
	if s.panicOn == "HasEndpoint" {
		panic("has endpoint")
	}
	return name == "default" || name == "ops"
}

func (s *fakeSink) Relay(endpoint string, a *Alert, body []byte) error {
	if s.panicOn == "Relay" {
		panic(errors.New("relay"))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, relayed{endpoint, a, body})
	return s.err
}

func (s *fakeSink) relayed() []relayed {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]relayed(nil), s.got...)
}

// counter is an Observer counting results.
type counter struct {
	mu sync.Mutex
	n  map[Result]int
}

func (c *counter) Request(r Result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[Result]int{}
	}
	c.n[r]++
}

func (c *counter) counts() map[Result]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := map[Result]int{}
	for k, v := range c.n {
		m[k] = v
	}
	return m
}

// fixture is a handler over a fakeSink, with its counter and debug logs.
type fixture struct {
	h    http.Handler
	sink *fakeSink
	obs  *counter
	logs *observer.ObservedLogs
}

func newFixture(cfg Config) *fixture {
	core, logs := observer.New(zapcore.DebugLevel)
	f := &fixture{sink: &fakeSink{}, obs: &counter{}, logs: logs}
	cfg.Sink, cfg.Observer, cfg.Logger = f.sink, f.obs, zap.New(core)
	f.h = NewHandler(cfg)
	return f
}

// post builds a request of Kapacitor's .post(): POST, application/json.
func post(path, body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "http://relay.test"+path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return r
}

func (f *fixture) do(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w
}

// checkAnswer checks an answer's status, its one-line text/plain body,
// and that the Observer heard exactly one request, of result res.
func checkAnswer(t *testing.T, f *fixture, w *httptest.ResponseRecorder, status int, res Result, reason string) {
	t.Helper()
	assert.Equal(t, status, w.Code)
	assert.Equal(t, "text/plain; charset=utf-8", w.Header().Get("Content-Type"))
	body := w.Body.String()
	assert.True(t, strings.HasPrefix(body, reason), "body %q, want %q...", body, reason)
	assert.Equal(t, 1, strings.Count(body, "\n"), "one line: %q", body)
	assert.True(t, strings.HasSuffix(body, "\n"))
	assert.Equal(t, map[Result]int{res: 1}, f.obs.counts())
}

// TestRealKapacitorBody: a body as Kapacitor sends it is parsed, and
// handed to the Sink byte for byte.
func TestRealKapacitorBody(t *testing.T) {
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", "Application/JSON;charset=UTF-8", "application/json; charset"} {
		t.Run(ct, func(t *testing.T) {
			f := newFixture(Config{})
			r := post("/relay/default", kapacitorBody)
			r.Header.Set("Content-Type", ct)
			w := f.do(r)
			checkAnswer(t, f, w, http.StatusOK, ResultAccepted, "accepted\n")
			got := f.sink.relayed()
			require.Len(t, got, 1)
			assert.Equal(t, "default", got[0].endpoint)
			assert.Equal(t, kapacitorAlert, got[0].alert)
			assert.Equal(t, []byte(kapacitorBody), got[0].body)
		})
	}
}

// TestEscapedEndpoint: the endpoint is the path's one segment, unescaped.
func TestEscapedEndpoint(t *testing.T) {
	f := newFixture(Config{})
	checkAnswer(t, f, f.do(post("/relay/%6Fps", kapacitorBody)), http.StatusOK, ResultAccepted, "accepted")
	require.Len(t, f.sink.relayed(), 1)
	assert.Equal(t, "ops", f.sink.relayed()[0].endpoint)

	for _, tt := range []struct {
		path, raw, want string
		ok              bool
	}{
		{"/relay/a b", "/relay/a%20b", "a b", true},
		{"/relay/a/b", "/relay/a%2Fb", "a/b", true},
		{"/relay/a/b", "", "", false},
		{"/relay/", "", "", false},
		{"/relay", "", "", false},
		{"/relay//", "", "", false},
		{"/x/relay/a", "", "", false},
	} {
		name, ok := endpointOf(&url.URL{Path: tt.path, RawPath: tt.raw})
		assert.Equal(t, tt.ok, ok, tt.path)
		assert.Equal(t, tt.want, name, tt.path)
	}
}

// TestBadRequests: each refusal has its status, reason, header and
// result, and nothing reaches the Sink.
func TestBadRequests(t *testing.T) {
	type req struct {
		method, path, ctype, body string
	}
	ok := req{http.MethodPost, "/relay/default", "application/json", kapacitorBody}
	with := func(change func(*req)) req { r := ok; change(&r); return r }
	tests := []struct {
		name   string
		req    req
		status int
		res    Result
		reason string
		header [2]string
	}{
		{"root", with(func(r *req) { r.path = "/" }), 404, ResultNotFound, "not found (want POST /relay/<endpoint>)", [2]string{}},
		{"no endpoint", with(func(r *req) { r.path = "/relay/" }), 404, ResultNotFound, "not found", [2]string{}},
		{"no slash", with(func(r *req) { r.path = "/relay" }), 404, ResultNotFound, "not found", [2]string{}},
		{"two segments", with(func(r *req) { r.path = "/relay/default/x" }), 404, ResultNotFound, "not found", [2]string{}},
		{"trailing slash", with(func(r *req) { r.path = "/relay/default/" }), 404, ResultNotFound, "not found", [2]string{}},
		{"other prefix", with(func(r *req) { r.path = "/post/default" }), 404, ResultNotFound, "not found", [2]string{}},
		{"GET", with(func(r *req) { r.method = http.MethodGet }), 405, ResultBadMethod, "method not allowed (want POST)", [2]string{"Allow", "POST"}},
		{"PUT", with(func(r *req) { r.method = http.MethodPut }), 405, ResultBadMethod, "method not allowed", [2]string{"Allow", "POST"}},
		{"no content type", with(func(r *req) { r.ctype = "" }), 415, ResultBadContentType, "no content type (want application/json)", [2]string{}},
		{"text/plain", with(func(r *req) { r.ctype = "text/plain" }), 415, ResultBadContentType, `content type "text/plain" is not application/json`, [2]string{}},
		{"form", with(func(r *req) { r.ctype = "application/x-www-form-urlencoded" }), 415, ResultBadContentType, `content type "application/x-www-form-urlencoded" is not`, [2]string{}},
		{"json-ish", with(func(r *req) { r.ctype = "application/jsonl" }), 415, ResultBadContentType, `content type "application/jsonl" is not`, [2]string{}},
		{"long content type, cut", with(func(r *req) { r.ctype = "text/" + strings.Repeat("x", 300) }), 415, ResultBadContentType,
			`content type "text/` + strings.Repeat("x", 59) + `"... is not application/json`, [2]string{}},
		{"unknown endpoint", with(func(r *req) { r.path = "/relay/nope" }), 404, ResultUnknownEndpoint, `unknown endpoint "nope"` + "\n", [2]string{}},
		{"unknown endpoint with a line break", with(func(r *req) { r.path = "/relay/a%0Ab%22" }), 404, ResultUnknownEndpoint, `unknown endpoint "a\nb\""` + "\n", [2]string{}},
		{"long unknown endpoint, cut", with(func(r *req) { r.path = "/relay/" + strings.Repeat("e", 1000) }), 404, ResultUnknownEndpoint,
			`unknown endpoint "` + strings.Repeat("e", 64) + `"...` + "\n", [2]string{}},
		// The order of the checks.
		{"wrong path and method", with(func(r *req) { r.path = "/x"; r.method = http.MethodGet }), 404, ResultNotFound, "not found", [2]string{}},
		{"wrong method and content type", with(func(r *req) { r.method = http.MethodGet; r.ctype = "" }), 405, ResultBadMethod, "method", [2]string{"Allow", "POST"}},
		{"wrong content type and body", with(func(r *req) { r.ctype = "text/plain"; r.body = "x" }), 415, ResultBadContentType, "content type", [2]string{}},
		{"unknown endpoint and bad body", with(func(r *req) { r.path = "/relay/nope"; r.body = "x" }), 400, ResultNotJSON, "not JSON", [2]string{}},
		{"unknown endpoint and not an alert", with(func(r *req) { r.path = "/relay/nope"; r.body = "{}" }), 400, ResultNotAlert, "not an alert", [2]string{}},
	}
	for _, b := range badBodies {
		res := ResultNotAlert
		if b.notJSON {
			res = ResultNotJSON
		}
		tests = append(tests, struct {
			name   string
			req    req
			status int
			res    Result
			reason string
			header [2]string
		}{"body: " + b.name, with(func(r *req) { r.body = b.body }), 400, res, b.want, [2]string{}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(Config{})
			r := httptest.NewRequest(tt.req.method, "http://relay.test"+tt.req.path, strings.NewReader(tt.req.body))
			if tt.req.ctype != "" {
				r.Header.Set("Content-Type", tt.req.ctype)
			}
			w := f.do(r)
			checkAnswer(t, f, w, tt.status, tt.res, tt.reason)
			if tt.header[0] != "" {
				assert.Equal(t, tt.header[1], w.Header().Get(tt.header[0]))
			}
			assert.Empty(t, f.sink.relayed())
			require.Equal(t, 1, f.logs.Len())
			e := f.logs.All()[0]
			assert.Equal(t, zapcore.DebugLevel, e.Level)
			assert.Equal(t, string(tt.res), e.ContextMap()["result"])
		})
	}
}

// TestSizeLimit: a body of exactly MaxBody bytes is read, one byte more is
// refused with 413, whether the request gives its length or not.
func TestSizeLimit(t *testing.T) {
	for _, max := range []int64{int64(len(kapacitorBody)) + 10, 0} {
		limit := max
		if limit == 0 {
			limit = DefaultMaxBody
		}
		atLimit := kapacitorBody + strings.Repeat(" ", int(limit)-len(kapacitorBody)) // trailing spaces are JSON
		for _, chunked := range []bool{false, true} {
			for _, tt := range []struct {
				body   string
				status int
				res    Result
			}{{atLimit, 200, ResultAccepted}, {atLimit + " ", 413, ResultTooLarge}, {atLimit + strings.Repeat(" ", 1<<20), 413, ResultTooLarge}} {
				f := newFixture(Config{MaxBody: max})
				r := post("/relay/default", tt.body)
				if chunked {
					r.ContentLength = -1
					r.Body = io.NopCloser(strings.NewReader(tt.body))
				}
				w := f.do(r)
				reason := "accepted"
				if tt.status == 413 {
					reason = "body over " + strconv.FormatInt(limit, 10) + " bytes\n"
				}
				checkAnswer(t, f, w, tt.status, tt.res, reason)
				if tt.status == 200 {
					require.Len(t, f.sink.relayed(), 1)
					assert.Equal(t, []byte(tt.body), f.sink.relayed()[0].body)
				} else {
					assert.Empty(t, f.sink.relayed())
				}
			}
		}
	}
}
