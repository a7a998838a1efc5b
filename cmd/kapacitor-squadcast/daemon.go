package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast"
	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// Daemon is the serve command at work: the Kapacitor sockets and their
// servers, the sender that delivers to Squadcast (and keeps the outbox),
// and, with --listen, the HTTP server of /metrics, /healthz and /readyz.
// NewDaemon builds it, Run serves until its context ends and then shuts it
// down; Close undoes what NewDaemon built, for a daemon that never runs.
type Daemon struct {
	cfg         Config
	log         *zap.Logger
	memoryLimit string   // the soft memory limit in force, for the log
	gcPercent   string   // GOGC in force, for the log
	kapURL      *url.URL // --kapacitor-url; nil when off
	gid         int      // --socket-group's id; -1 for the daemon's group

	metrics *metrics     // nil without --listen
	httpLn  net.Listener // nil without --listen
	httpSrv *http.Server // set by Run
	sender  *squadcast.Sender
	servers []udfServer

	relayLn  net.Listener // nil without --relay-listen
	relaySrv *http.Server // nil without --relay-listen

	served  chan error   // a socket server stopped serving, with its error
	stopped atomic.Int32 // socket servers that stopped
	running bool         // Run has started

	// cleanups undo the steps of NewDaemon that succeeded: Close runs them
	// in reverse order.
	cleanups []func(context.Context) error
}

// udfServer is a socket server, the UDF name its tasks call, and its socket.
type udfServer struct {
	srv    *udf.Server
	udf    string
	socket string
	ln     net.Listener
	batch  bool
}

// NewDaemon validates cfg and builds the daemon, step by step: the
// memory limit and the data directory, the metrics listener (first, so
// that a taken port fails the start before anything else is set up), the
// sender (which opens the outbox), the sockets, and their servers. Each step
// that succeeds adds its cleanup; when one fails, the cleanups so far run
// in reverse order (pending events stay in the outbox) and NewDaemon
// returns its error.
func NewDaemon(cfg Config, log *zap.Logger) (*Daemon, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &Daemon{cfg: cfg, log: log, gid: -1}
	for _, step := range []func() error{d.prepare, d.listenHTTP, d.openSender, d.listenRelay, d.listenSockets, d.buildServers} {
		if err := step(); err != nil {
			_ = d.Close(closedContext())
			return nil, err
		}
	}
	return d, nil
}

// onClose adds a cleanup, to run before those added earlier.
func (d *Daemon) onClose(f func(context.Context) error) { d.cleanups = append(d.cleanups, f) }

// prepare applies the memory limit, checks what must be right before
// anything is created (Kapacitor's URL, the socket group) and creates the
// data directory.
func (d *Daemon) prepare() error {
	d.memoryLimit = applyMemoryLimit(d.cfg.MemoryLimit)
	d.gcPercent = applyGCPercent(os.Getenv("GOGC"))
	if d.cfg.KapacitorURL != "" {
		u, err := parseKapacitorURL(d.cfg.KapacitorURL.Reveal())
		if err != nil {
			return err
		}
		d.kapURL = u
	}
	if d.cfg.SocketGroup != "" {
		gid, err := lookupGroup(d.cfg.SocketGroup)
		if err != nil {
			return fmt.Errorf("--socket-group: %w", err)
		}
		d.gid = gid
	}
	if err := os.MkdirAll(d.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	return nil
}

// listenHTTP listens on --listen, when set, and registers the metrics.
func (d *Daemon) listenHTTP() error {
	if d.cfg.Listen == "" {
		return nil
	}
	ln, err := net.Listen("tcp", d.cfg.Listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	d.httpLn = ln
	d.onClose(d.closeHTTP)
	d.metrics = newMetrics(d.cfg.endpointNames())
	return nil
}

// closeHTTP stops the HTTP server, or closes its listener when it never
// served. It runs last: /metrics stays up until the deliveries are done.
func (d *Daemon) closeHTTP(context.Context) error {
	if d.httpSrv != nil {
		hctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = d.httpSrv.Shutdown(hctx)
		cancel()
	}
	_ = d.httpLn.Close()
	return nil
}

// openSender opens the outbox and starts the delivery.
func (d *Daemon) openSender() error {
	cfg := squadcast.Config{Workers: d.cfg.Workers, QueueSize: d.cfg.QueueSize, Logger: d.log.Named("delivery"), DataDir: d.cfg.DataDir,
		RetryWaitMax: time.Duration(d.cfg.RetryMaxWait), MaxAge: time.Duration(d.cfg.MaxAge), Endpoints: d.cfg.senderEndpoints()}
	if d.metrics != nil {
		cfg.Observer = d.metrics
	}
	sender, err := squadcast.New(cfg)
	if err != nil {
		return err
	}
	d.sender = sender
	d.onClose(d.closeSender)
	if d.cfg.endpoint(squadcast.DefaultEndpoint).URL == "" {
		d.log.Warn("no default endpoint: tasks must give .endpoint(name) or .url(), or start with --url, " + webhookEnv + " or a [[endpoint]] named \"default\" in the config file")
	}
	return nil
}

// closeSender lets pending deliveries finish within --shutdown-timeout
// (ctx may end the wait sooner), then stops the sender. What is left stays
// in the outbox for the next start: at shutdown, the log says so.
func (d *Daemon) closeSender(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(d.cfg.ShutdownTimeout))
	defer cancel()
	if err := d.sender.Close(ctx); err != nil && d.running {
		d.log.Warn("events still pending at shutdown stay in the outbox for the next start", zap.Error(err))
	}
	return nil
}

// listenSockets listens on the socket and, when set, the batch socket.
func (d *Daemon) listenSockets() error {
	mode := os.FileMode(d.cfg.SocketMode)
	ln, err := listenSocket(d.cfg.Socket, mode, d.gid)
	if err != nil {
		return err
	}
	d.onClose(closeListener(ln))
	d.servers = []udfServer{{udf: d.cfg.UDFName, socket: d.cfg.Socket, ln: ln}}
	if d.cfg.BatchSocket == "" {
		return nil
	}
	batchLn, err := listenSocket(d.cfg.BatchSocket, mode, d.gid)
	if err != nil {
		return fmt.Errorf("--batch-socket: %w", err)
	}
	d.onClose(closeListener(batchLn))
	d.servers = append(d.servers, udfServer{udf: d.cfg.UDFName + "_batch", socket: d.cfg.BatchSocket, ln: batchLn, batch: true})
	return nil
}

// closeListener closes a socket's listener, which removes the socket file;
// its server, when it served, has closed it already.
func closeListener(ln net.Listener) func(context.Context) error {
	return func(context.Context) error {
		_ = ln.Close()
		return nil
	}
}

// buildServers builds the socket servers, which Run starts. (A step of
// NewDaemon that cannot fail.)
func (d *Daemon) buildServers() error {
	hcfg := udfHandlerConfig(d.sender, d.log, d.cfg.MaxFrameSize, d.metrics)
	for i := range d.servers {
		hcfg.Batch = d.servers[i].batch
		d.servers[i].srv = udf.NewServer(hcfg)
	}
	d.onClose(d.closeServers)
	return nil
}

// udfHandlerConfig is the configuration of the socket servers' handlers:
// they publish to the sender, which keeps each task's alert state in the
// outbox's file, so that a burst's events and its state changes go to disk
// in one transaction. m, when set, hears of points, events and failed Inits.
func udfHandlerConfig(sender *squadcast.Sender, log *zap.Logger, maxFrame byteSize, m *metrics) udf.HandlerConfig {
	hostname, _ := os.Hostname()
	hcfg := udf.HandlerConfig{Sink: sender, Logger: log.Named("udf"), Hostname: hostname, MaxFrame: int(maxFrame)}
	if m != nil {
		hcfg.Observer = m
	}
	return hcfg
}

// closeServers stops accepting (closing a listener removes its socket
// file) and ends the connections.
func (d *Daemon) closeServers(context.Context) error {
	var err error
	for _, s := range d.servers {
		err = errors.Join(err, s.srv.Close())
	}
	return err
}

// Close undoes what NewDaemon built, in reverse order: it stops accepting
// and removes the sockets, ends the connections, lets pending deliveries
// finish within --shutdown-timeout (ctx may end the wait sooner; what is
// left stays in the outbox), then stops the HTTP server. It returns the
// errors of closing the socket servers. Later calls do nothing.
func (d *Daemon) Close(ctx context.Context) error {
	var err error
	for i := len(d.cleanups) - 1; i >= 0; i-- {
		err = errors.Join(err, d.cleanups[i](ctx))
	}
	d.cleanups = nil
	return err
}

// closedContext returns a context that is already done.
func closedContext() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
