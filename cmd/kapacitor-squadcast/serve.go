package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast"
	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// serveConfig holds the flags of serve.
type serveConfig struct {
	socket          string
	dataDir         string
	url             string
	format          string
	workers         int
	logLevel        string
	logFormat       string
	shutdownTimeout time.Duration
	kapacitorURL    string
	udfName         string
	rateLimit       squadcast.RateLimit
	retryMaxWait    time.Duration
	maxAge          time.Duration
	maxFrameSize    byteSize
}

func runServe(ctx context.Context, args []string, stderr io.Writer) int {
	c := serveConfig{maxFrameSize: udf.DefaultMaxFrame}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&c.socket, "socket", "", "unix socket to serve Kapacitor on: the `path` in kapacitor.conf's [udf.functions.squadcast] socket (required)")
	fs.StringVar(&c.dataDir, "data-dir", "", "`directory` for the daemon's state; created if missing (required)")
	fs.StringVar(&c.url, "url", "", "Squadcast webhook `URL` of the default endpoint (default $SQUADCAST_WEBHOOK_URL); it holds a secret key: prefer the environment")
	fs.StringVar(&c.format, "format", "kapacitor", "payload `format` of the default endpoint: kapacitor or incident-webhook")
	fs.IntVar(&c.workers, "workers", 8, "delivery workers: incidents delivered in parallel")
	fs.StringVar(&c.logLevel, "log-level", "info", "log `level`: debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", "json", "log `format`: json or console")
	fs.StringVar(&c.kapacitorURL, "kapacitor-url", "", "Kapacitor's HTTP API `URL` (e.g. http://localhost:9092); when set, tasks left on a previous daemon process's broken connection are restarted at start-up (default off)")
	fs.StringVar(&c.udfName, "udf-name", "squadcast", "the UDF's `name` in kapacitor.conf ([udf.functions.NAME]): which tasks --kapacitor-url restarts")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 10*time.Second, "on SIGTERM, how long pending deliveries may still take (what is left stays in the outbox)")
	fs.Var(&c.rateLimit, "rate-limit", "request `rate` limit of the default endpoint, like 300/m, 15/m, 5/s or 1000/h (match your Squadcast plan); tasks' inline .url()s get the same limit, each URL its own (default none)")
	fs.DurationVar(&c.retryMaxWait, "retry-max-wait", squadcast.DefaultRetryWaitMax, "longest `wait` between two attempts of an event (exponential backoff with jitter from 1s)")
	fs.DurationVar(&c.maxAge, "max-age", squadcast.DefaultMaxAge, "how long an undelivered event is retried before it becomes a dead letter (see 'outbox list')")
	fs.Var(&c.maxFrameSize, "max-frame-size", "largest request `size` Kapacitor may send on a connection, like 16MiB or 512KiB: a longer frame ends that connection (its task fails) before anything is allocated; at least 64KiB")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: kapacitor-squadcast serve --socket PATH --data-dir DIR [flags]\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	if c.url == "" {
		c.url = os.Getenv("SQUADCAST_WEBHOOK_URL")
	}
	log, err := newLogger(c.logLevel, c.logFormat, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "kapacitor-squadcast: %v\n", err)
		return 2
	}
	defer func() { _ = log.Sync() }()
	if err := serve(ctx, c, log); err != nil {
		log.Error("kapacitor-squadcast stopped", zap.Error(err))
		return 1
	}
	return 0
}

// serve runs the daemon until ctx is done, then shuts down in order: stop
// accepting and remove the socket, end the connections, let pending
// deliveries finish within the shutdown timeout.
func serve(ctx context.Context, c serveConfig, log *zap.Logger) error {
	if c.socket == "" {
		return errors.New("--socket is required")
	}
	if c.dataDir == "" {
		return errors.New("--data-dir is required")
	}
	if c.workers < 1 {
		return fmt.Errorf("--workers must be at least 1, got %d", c.workers)
	}
	var kapURL *url.URL
	if c.kapacitorURL != "" {
		var err error
		if kapURL, err = parseKapacitorURL(c.kapacitorURL); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}

	if c.retryMaxWait < squadcast.DefaultRetryWaitMin {
		return fmt.Errorf("--retry-max-wait must be at least %s, got %s", squadcast.DefaultRetryWaitMin, c.retryMaxWait)
	}
	if c.maxFrameSize < minFrameSize || c.maxFrameSize > maxFrameSize {
		return fmt.Errorf("--max-frame-size must be between %s and %s, got %s", byteSize(minFrameSize), byteSize(maxFrameSize), c.maxFrameSize)
	}
	if c.maxAge <= 0 {
		return fmt.Errorf("--max-age must be positive, got %s", c.maxAge)
	}
	if !c.rateLimit.IsZero() && c.url == "" {
		return errors.New("--rate-limit limits the default endpoint: it needs --url or SQUADCAST_WEBHOOK_URL")
	}
	cfg := squadcast.Config{Workers: c.workers, Logger: log.Named("delivery"), DataDir: c.dataDir, RetryWaitMax: c.retryMaxWait, MaxAge: c.maxAge}
	if c.url != "" {
		cfg.Endpoints = append(cfg.Endpoints, squadcast.Endpoint{Name: udf.DefaultEndpoint, URL: c.url, Format: c.format, RateLimit: c.rateLimit})
	}
	sender, err := squadcast.New(cfg)
	if err != nil {
		return err
	}
	if c.url == "" {
		log.Warn("no default endpoint: tasks must give .url(), or start with --url or SQUADCAST_WEBHOOK_URL")
	}

	ln, err := listenUnix(c.socket)
	if err != nil {
		_ = sender.Close(closedContext()) // pending events stay in the outbox
		return err
	}
	state, err := udf.OpenDataDirState(c.dataDir)
	if err != nil {
		ln.Close()
		_ = sender.Close(closedContext()) // pending events stay in the outbox
		return err
	}
	defer state.Close()
	hostname, _ := os.Hostname()
	srv := udf.NewServer(udf.HandlerConfig{Sink: sender, Logger: log.Named("udf"), Hostname: hostname, State: state, MaxFrame: int(c.maxFrameSize)})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("serving Kapacitor", zap.String("socket", c.socket), zap.Int("workers", c.workers))
	if kapURL != nil {
		r := &reenabler{
			base: kapURL, udf: c.udfName, client: &http.Client{Timeout: 30 * time.Second},
			log: log.Named("kapacitor"), connected: srv.ConnectedTasks, retryFor: 5 * time.Minute, wait: sleepCtx,
		}
		go func() {
			restarted, err := r.run(ctx)
			if err != nil && ctx.Err() == nil {
				log.Error("restarting Kapacitor tasks failed", zap.Error(err))
			}
			log.Info("checked Kapacitor's tasks", zap.Strings("restarted", restarted))
		}()
	}

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err = <-served:
		log.Error("socket server failed", zap.Error(err))
	}
	// Closing the listener removes the socket file (net.UnixListener unlinks it).
	closeErr := srv.Close()
	sctx, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
	defer cancel()
	if err := sender.Close(sctx); err != nil {
		log.Warn("events still pending at shutdown stay in the outbox for the next start", zap.Error(err))
	}
	return errors.Join(err, closeErr)
}

// closedContext returns a context that is already done.
func closedContext() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// listenUnix listens on a unix socket at path, replacing a stale socket left
// by a previous run, but never a live one or a file that is not a socket.
func listenUnix(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("socket path %s exists and is not a socket: refusing to replace it", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("socket path %s is in use by another process", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("set socket mode: %w", err)
	}
	return ln, nil
}

// newLogger builds the daemon's zap logger. Repeated messages are sampled so
// that a flood of identical errors cannot slow the hot path down.
func newLogger(level, format string, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	ec := zap.NewProductionEncoderConfig()
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	switch format {
	case "json":
		enc = zapcore.NewJSONEncoder(ec)
	case "console":
		ec.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(ec)
	default:
		return nil, fmt.Errorf("--log-format: unknown format %q (want json or console)", format)
	}
	core := zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), lvl)
	core = zapcore.NewSamplerWithOptions(core, time.Second, 100, 100)
	return zap.New(core), nil
}
