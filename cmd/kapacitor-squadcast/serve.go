package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime/debug"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast"
	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

const serveUsage = "Usage: kapacitor-squadcast serve --socket PATH --data-dir DIR [flags]\n       kapacitor-squadcast serve --config FILE [flags]\n"

func runServe(ctx context.Context, args []string, stderr io.Writer) int {
	c, code, ok, err := loadServeConfig("serve", args, stderr, serveUsage)
	if err != nil {
		fmt.Fprintf(stderr, "kapacitor-squadcast: %v\n", err)
	}
	if !ok {
		return code
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
	if err := c.validate(); err != nil {
		return err
	}
	memoryLimit := applyMemoryLimit(c.memoryLimit)
	var kapURL *url.URL
	if c.kapacitorURL != "" {
		var err error
		if kapURL, err = parseKapacitorURL(c.kapacitorURL); err != nil {
			return err
		}
	}
	gid := -1
	if c.socketGroup != "" {
		var err error
		if gid, err = lookupGroup(c.socketGroup); err != nil {
			return fmt.Errorf("--socket-group: %w", err)
		}
	}
	if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}

	// Observability: listen first, so that a taken port fails the start
	// before anything else is set up.
	var m *metrics
	var httpLn net.Listener
	if c.listen != "" {
		var err error
		if httpLn, err = net.Listen("tcp", c.listen); err != nil {
			return fmt.Errorf("--listen: %w", err)
		}
		defer httpLn.Close()
		m = newMetrics(c.endpointNames())
	}

	cfg := squadcast.Config{Workers: c.workers, QueueSize: c.queueSize, Logger: log.Named("delivery"), DataDir: c.dataDir, RetryWaitMax: c.retryMaxWait, MaxAge: c.maxAge,
		Endpoints: c.endpointList()}
	if m != nil {
		cfg.Observer = m
	}
	sender, err := squadcast.New(cfg)
	if err != nil {
		return err
	}
	if c.url == "" {
		log.Warn("no default endpoint: tasks must give .endpoint(name) or .url(), or start with --url, " + webhookEnv + " or a [[endpoint]] named \"default\" in the config file")
	}

	ln, err := listenSocket(c.socket, os.FileMode(c.socketMode), gid)
	if err != nil {
		_ = sender.Close(closedContext()) // pending events stay in the outbox
		return err
	}
	var batchLn net.Listener
	if c.batchSocket != "" {
		if batchLn, err = listenSocket(c.batchSocket, os.FileMode(c.socketMode), gid); err != nil {
			ln.Close()
			_ = sender.Close(closedContext()) // pending events stay in the outbox
			return fmt.Errorf("--batch-socket: %w", err)
		}
	}
	// The sender keeps the alert state in its outbox: a burst's events and
	// its state changes go to disk in one transaction.
	hostname, _ := os.Hostname()
	hcfg := udf.HandlerConfig{Sink: sender, Logger: log.Named("udf"), Hostname: hostname, MaxFrame: int(c.maxFrameSize)}
	if m != nil {
		hcfg.Observer = m
	}
	servers := []udfServer{{srv: udf.NewServer(hcfg), udf: c.udfName, socket: c.socket, ln: ln}}
	if batchLn != nil {
		hcfg.Batch = true
		servers = append(servers, udfServer{srv: udf.NewServer(hcfg), udf: c.udfName + "_batch", socket: c.batchSocket, ln: batchLn})
	}
	served := make(chan error, len(servers))
	var stopped atomic.Int32 // socket servers that stopped
	for _, s := range servers {
		go func() {
			err := s.srv.Serve(s.ln)
			stopped.Add(1)
			served <- err
		}()
	}
	log.Info("serving Kapacitor", zap.String("socket", c.socket), zap.String("batch_socket", c.batchSocket), zap.Int("workers", c.workers), zap.Int("queue_size", c.queueSize),
		zap.Strings("endpoints", c.endpointNames()), zap.String("config", c.configFile), zap.String("memory_limit", memoryLimit))
	var httpSrv *http.Server
	if m != nil {
		m.watch(func() int {
			n := 0
			for _, s := range servers {
				n += s.srv.Connections()
			}
			return n
		}, sender)
		ready := func() error {
			if stopped.Load() > 0 {
				return errors.New("a socket server stopped")
			}
			for _, s := range servers {
				if fi, err := os.Lstat(s.socket); err != nil || fi.Mode()&os.ModeSocket == 0 {
					return fmt.Errorf("socket %s is gone", s.socket)
				}
			}
			if err := sender.Ready(); err != nil {
				return fmt.Errorf("outbox: %w", err)
			}
			return nil
		}
		httpSrv = &http.Server{Handler: m.handler(ready), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := httpSrv.Serve(httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics server failed", zap.Error(err))
			}
		}()
		log.Info("serving metrics", zap.String("listen", httpLn.Addr().String()))
	}
	for _, s := range servers {
		if kapURL == nil {
			break
		}
		r := &reenabler{
			base: kapURL, udf: s.udf, client: &http.Client{Timeout: 30 * time.Second},
			log: log.Named("kapacitor"), connected: s.srv.ConnectedTasks, retryFor: 5 * time.Minute, wait: sleepCtx,
			settleFor: 10 * time.Second,
		}
		go func() {
			restarted, err := r.run(ctx)
			if err != nil && ctx.Err() == nil {
				log.Error("restarting Kapacitor tasks failed", zap.String("udf", r.udf), zap.Error(err))
			}
			log.Info("checked Kapacitor's tasks", zap.String("udf", r.udf), zap.Strings("restarted", restarted))
		}()
	}

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err = <-served:
		log.Error("socket server failed", zap.Error(err))
	}
	// Closing the listener removes the socket file (net.UnixListener unlinks it).
	var closeErr error
	for _, s := range servers {
		closeErr = errors.Join(closeErr, s.srv.Close())
	}
	sctx, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
	defer cancel()
	if err := sender.Close(sctx); err != nil {
		log.Warn("events still pending at shutdown stay in the outbox for the next start", zap.Error(err))
	}
	if httpSrv != nil {
		// /metrics stays up until the deliveries above are done.
		hctx, hcancel := context.WithTimeout(context.Background(), time.Second)
		_ = httpSrv.Shutdown(hctx)
		hcancel()
	}
	return errors.Join(err, closeErr)
}

// applyMemoryLimit sets the Go runtime's soft memory limit (GOMEMLIMIT) to
// limit when it is set; else $GOMEMLIMIT, which the runtime read at start,
// stands. It returns the limit in force, "none" for no limit.
func applyMemoryLimit(limit byteSize) string {
	if limit > 0 {
		debug.SetMemoryLimit(int64(limit))
	}
	if cur := debug.SetMemoryLimit(-1); cur != math.MaxInt64 {
		return byteSize(cur).String()
	}
	return "none"
}

// udfServer is a socket server, the UDF name its tasks call, and its socket.
type udfServer struct {
	srv    *udf.Server
	udf    string
	socket string
	ln     net.Listener
}

// listenSocket listens on a unix socket (see listenUnix) and gives the
// socket file its mode and, when gid is not -1, its group.
func listenSocket(path string, mode os.FileMode, gid int) (net.Listener, error) {
	ln, err := listenUnix(path)
	if err != nil {
		return nil, err
	}
	if err := setSocketPerm(path, mode, gid); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// setSocketPerm gives the socket file its mode and, when gid is not -1, its group.
func setSocketPerm(path string, mode os.FileMode, gid int) error {
	if err := os.Chmod(path, mode); err != nil {
		return fmt.Errorf("set socket mode: %w", err)
	}
	if gid >= 0 {
		if err := os.Chown(path, -1, gid); err != nil {
			return fmt.Errorf("set socket group (the daemon must be a member of the group): %w", err)
		}
	}
	return nil
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
