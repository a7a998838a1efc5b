package relay

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// DefaultMaxBody is the largest body a handler reads when Config.MaxBody
// is 0: 2 MiB.
const DefaultMaxBody = 2 << 20

// pathPrefix is where the relay's endpoints are: POST /relay/<endpoint>.
const pathPrefix = "/relay/"

// Config configures NewHandler.
type Config struct {
	// Sink takes the alerts; required.
	Sink Sink
	// MaxBody is the largest body read, in bytes; 0 (or less) means
	// DefaultMaxBody.
	MaxBody int64
	// Token, when not empty, is the bearer token every request must carry
	// (Authorization: Bearer <token>). It is a secret: the handler never
	// logs, answers or counts it.
	Token string
	// Logger logs refusals at debug level (unauthorized ones at warn),
	// alerts that are not durable and panics at error level; nil logs
	// nothing.
	Logger *zap.Logger
	// Observer hears the Result of every request; may be nil.
	Observer Observer
}

// handler serves POST /relay/<endpoint>. It holds no state but its
// configuration: requests are served concurrently.
type handler struct {
	sink      Sink
	maxBody   int64
	needToken bool
	tokenSum  [sha256.Size]byte // the token's SHA-256, compared in constant time
	log       *zap.Logger
	obs       Observer
}

// NewHandler returns the relay's HTTP handler: POST /relay/<endpoint>
// with a body of Kapacitor's .post() (see the package documentation for
// its checks and answers). It panics if cfg.Sink is nil.
func NewHandler(cfg Config) http.Handler {
	if cfg.Sink == nil {
		panic("relay: NewHandler: nil Sink")
	}
	h := &handler{sink: cfg.Sink, maxBody: cfg.MaxBody, log: cfg.Logger, obs: cfg.Observer}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBody
	}
	if h.log == nil {
		h.log = zap.NewNop()
	}
	if h.obs == nil {
		h.obs = nopObserver{}
	}
	if cfg.Token != "" {
		h.needToken = true
		h.tokenSum = sha256.Sum256([]byte(cfg.Token))
	}
	return h
}

// answer is the handler's answer to one request: its result, status, a
// one-line reason for its body, and at most one extra header.
type answer struct {
	result      Result
	status      int
	reason      string
	header, val string
}

// ServeHTTP serves one request: it decides the answer, tells the Observer,
// logs, and writes the answer.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	endpoint, a := h.serve(w, r)
	h.obs.Request(a.result)
	h.logAnswer(r, endpoint, a)
	hd := w.Header()
	hd.Set("Content-Type", "text/plain; charset=utf-8")
	hd.Set("X-Content-Type-Options", "nosniff")
	if a.header != "" {
		hd.Set(a.header, a.val)
	}
	w.WriteHeader(a.status)
	_, _ = io.WriteString(w, oneLine(a.reason)+"\n")
}

// serve runs the checks in order (path, method, token, content type,
// body size, JSON, alert, endpoint) and relays the alert when all pass.
// A panic, in the Sink or here, is answered 500.
func (h *handler) serve(w http.ResponseWriter, r *http.Request) (endpoint string, a answer) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			h.log.Error("relay: panic serving a request", zap.String("endpoint", cut(endpoint)),
				zap.Any("panic", v), zap.Stack("stack"))
			a = answer{result: ResultPanic, status: http.StatusInternalServerError, reason: "internal error"}
		}
	}()
	endpoint, ok := endpointOf(r.URL)
	if !ok {
		return "", answer{result: ResultNotFound, status: http.StatusNotFound,
			reason: "not found (want POST " + pathPrefix + "<endpoint>)"}
	}
	if r.Method != http.MethodPost {
		return endpoint, answer{result: ResultBadMethod, status: http.StatusMethodNotAllowed,
			reason: "method not allowed (want POST)", header: "Allow", val: http.MethodPost}
	}
	if reason := h.checkToken(r.Header); reason != "" {
		return endpoint, answer{result: ResultUnauthorized, status: http.StatusUnauthorized,
			reason: reason, header: "WWW-Authenticate", val: "Bearer"}
	}
	if reason := checkContentType(r.Header); reason != "" {
		return endpoint, answer{result: ResultBadContentType, status: http.StatusUnsupportedMediaType, reason: reason}
	}
	body, refused := h.readBody(w, r)
	if refused != nil {
		return endpoint, *refused
	}
	alert, err := ParseAlert(body)
	switch {
	case errors.Is(err, ErrNotJSON):
		return endpoint, answer{result: ResultNotJSON, status: http.StatusBadRequest, reason: err.Error()}
	case err != nil:
		return endpoint, answer{result: ResultNotAlert, status: http.StatusBadRequest, reason: err.Error()}
	}
	if !h.sink.HasEndpoint(endpoint) {
		return endpoint, answer{result: ResultUnknownEndpoint, status: http.StatusNotFound,
			reason: "unknown endpoint " + quote(endpoint)}
	}
	if err := h.sink.Relay(endpoint, alert, body); err != nil {
		if errors.Is(err, ErrNotTaken) {
			h.log.Error("relay: alert not taken", zap.String("endpoint", cut(endpoint)), zap.String("id", cut(alert.ID)), zap.Error(err))
			return endpoint, answer{result: ResultNotTaken, status: http.StatusServiceUnavailable, reason: "not taken: the daemon cannot take alerts now"}
		}
		h.log.Error("relay: alert accepted but not durable (delivered from memory)",
			zap.String("endpoint", cut(endpoint)), zap.String("id", cut(alert.ID)), zap.Error(err))
		return endpoint, answer{result: ResultNotDurable, status: http.StatusOK, reason: "accepted, not durable"}
	}
	return endpoint, answer{result: ResultAccepted, status: http.StatusOK, reason: "accepted"}
}

// endpointOf returns the endpoint of a path /relay/<endpoint>: one
// non-empty segment, unescaped.
func endpointOf(u *url.URL) (string, bool) {
	rest, ok := strings.CutPrefix(u.EscapedPath(), pathPrefix)
	if !ok || rest == "" || strings.Contains(rest, "/") {
		return "", false
	}
	name, err := url.PathUnescape(rest)
	if err != nil || name == "" {
		return "", false
	}
	return name, true
}

// checkToken says why a request's Authorization is refused; "" when it is
// accepted. The reason never quotes the header.
func (h *handler) checkToken(hd http.Header) string {
	if !h.needToken {
		return ""
	}
	auth := hd.Values("Authorization")
	switch {
	case len(auth) == 0:
		return "no token (want Authorization: Bearer <token>)"
	case len(auth) > 1:
		return "more than one Authorization header"
	}
	scheme, cred, ok := strings.Cut(auth[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "the Authorization header is not a bearer token (want Authorization: Bearer <token>)"
	}
	// Hashing both sides makes the comparison's time independent of the
	// token's length too.
	sum := sha256.Sum256([]byte(strings.TrimLeft(cred, " ")))
	if subtle.ConstantTimeCompare(sum[:], h.tokenSum[:]) != 1 {
		return "wrong token"
	}
	return ""
}

// checkContentType says why a request's content type is refused; "" when
// it is application/json, with any parameters, in any case.
func checkContentType(hd http.Header) string {
	ct := hd.Get("Content-Type")
	if ct == "" {
		return "no content type (want application/json)"
	}
	mt, _, err := mime.ParseMediaType(ct)
	if (err == nil || errors.Is(err, mime.ErrInvalidMediaParameter)) && mt == "application/json" {
		return ""
	}
	return "content type " + quote(ct) + " is not application/json"
}

// readBody reads the whole body, up to h.maxBody bytes, or returns the
// answer that refuses it.
func (h *handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *answer) {
	tooLarge := &answer{result: ResultTooLarge, status: http.StatusRequestEntityTooLarge,
		reason: fmt.Sprintf("body over %d bytes", h.maxBody)}
	if r.ContentLength > h.maxBody {
		return nil, tooLarge
	}
	size := 512
	if r.ContentLength >= 0 {
		size = int(r.ContentLength) + 1 // +1: the read that sees EOF needs no copy
	}
	rd := http.MaxBytesReader(w, r.Body, h.maxBody)
	b := make([]byte, 0, size)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := rd.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, tooLarge
			}
			h.log.Debug("relay: reading a request's body", zap.Error(err))
			return nil, &answer{result: ResultReadError, status: http.StatusBadRequest, reason: "cannot read the body"}
		}
	}
}

// logAnswer logs a refusal at debug level (an unauthorized request at
// warn), and an accepted alert at debug level. It never logs a header.
func (h *handler) logAnswer(r *http.Request, endpoint string, a answer) {
	lvl := zapcore.DebugLevel
	if a.result == ResultUnauthorized {
		lvl = zapcore.WarnLevel
	}
	ce := h.log.Check(lvl, "relay: request")
	if ce == nil {
		return
	}
	ce.Write(zap.String("result", string(a.result)), zap.Int("status", a.status),
		zap.String("reason", a.reason), zap.String("endpoint", cut(endpoint)),
		zap.String("method", cut(r.Method)), zap.String("remote", r.RemoteAddr))
}

// oneLine replaces line breaks in s with spaces.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}
