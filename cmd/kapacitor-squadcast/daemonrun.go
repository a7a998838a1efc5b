package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"go.uber.org/zap"
)

// Run serves until ctx is done or a socket server fails: it starts the
// socket servers, the HTTP server and the restart of Kapacitor's tasks
// left on a previous daemon process. It then shuts down in order (see
// Close): stop accepting and remove the sockets, end the connections, let
// pending deliveries finish within --shutdown-timeout, stop /metrics. It
// returns the socket server's failure and the errors of closing them.
func (d *Daemon) Run(ctx context.Context) error {
	d.running = true
	d.served = make(chan error, len(d.servers))
	for _, s := range d.servers {
		go func() {
			err := s.srv.Serve(s.ln)
			d.stopped.Add(1)
			d.served <- err
		}()
	}
	d.log.Info("serving Kapacitor", zap.String("socket", d.cfg.Socket), zap.String("batch_socket", d.cfg.BatchSocket),
		zap.Int("workers", d.cfg.Workers), zap.Int("queue_size", d.cfg.QueueSize), zap.Strings("endpoints", d.cfg.endpointNames()),
		zap.String("config", d.cfg.File), zap.String("memory_limit", d.memoryLimit), zap.String("gogc", d.gcPercent))
	d.serveHTTP()
	d.serveRelay()
	d.restartTasks(ctx)
	d.watchDeletedTasks(ctx)

	var err error
	select {
	case <-ctx.Done():
		d.log.Info("shutting down")
	case err = <-d.served:
		d.log.Error("socket server failed", zap.Error(err))
	}
	return errors.Join(err, d.Close(context.Background()))
}

// serveHTTP serves /metrics, /healthz and /readyz, with --listen.
func (d *Daemon) serveHTTP() {
	if d.metrics == nil {
		return
	}
	d.metrics.watch(d.connections, d.sender)
	srv := &http.Server{Handler: d.metrics.handler(d.ready), ReadHeaderTimeout: 10 * time.Second}
	d.httpSrv = srv
	go func() {
		if err := srv.Serve(d.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("metrics server failed", zap.Error(err))
		}
	}()
	d.log.Info("serving metrics", zap.String("listen", d.httpLn.Addr().String()))
}

// connections counts the open connections from Kapacitor.
func (d *Daemon) connections() int {
	n := 0
	for _, s := range d.servers {
		n += s.srv.Connections()
	}
	return n
}

// ready is /readyz's check: the socket servers serve, their socket files
// are there, and the outbox is writable.
func (d *Daemon) ready() error {
	if d.stopped.Load() > 0 {
		return errors.New("a socket server stopped")
	}
	for _, s := range d.servers {
		if fi, err := os.Lstat(s.socket); err != nil || fi.Mode()&os.ModeSocket == 0 {
			return fmt.Errorf("socket %s is gone", s.socket)
		}
	}
	if err := d.sender.Ready(); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}

// restartTasks restarts, with --kapacitor-url, the tasks of each socket's
// UDF left on a previous daemon process's broken connection (see reenabler).
func (d *Daemon) restartTasks(ctx context.Context) {
	if d.kapURL == nil {
		return
	}
	for _, s := range d.servers {
		r := &reenabler{
			base: d.kapURL, udf: s.udf, client: &http.Client{Timeout: 30 * time.Second},
			log: d.log.Named("kapacitor"), connected: s.srv.ConnectedTasks, retryFor: 5 * time.Minute, wait: sleepCtx,
			settleFor: 10 * time.Second,
		}
		go func() {
			restarted, err := r.run(ctx)
			if err != nil && ctx.Err() == nil {
				d.log.Error("restarting Kapacitor tasks failed", zap.String("udf", r.udf), zap.Error(err))
			}
			d.log.Info("checked Kapacitor's tasks", zap.String("udf", r.udf), zap.Strings("restarted", restarted))
		}()
	}
}

// watchDeletedTasks starts, with --resolve-deleted-tasks, the checks for
// tasks deleted from Kapacitor (see deletedTasks). They stop, and Close
// waits for them, before the sender closes.
func (d *Daemon) watchDeletedTasks(ctx context.Context) {
	if d.kapURL == nil || !d.cfg.ResolveDeletedTasks {
		return
	}
	api := &reenabler{base: d.kapURL, client: &http.Client{Timeout: 30 * time.Second}}
	w := newDeletedTasks(api, d.sender, d.connectedTasks, time.Duration(d.cfg.KapacitorCheckInterval), d.log.Named("kapacitor"))
	if d.metrics != nil {
		w.resolved = d.metrics.deletedTaskResolved
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.run(ctx)
	}()
	d.onClose(func(context.Context) error {
		cancel()
		<-done
		return nil
	})
	d.log.Info("resolving the incidents of tasks deleted from Kapacitor", zap.Duration("check_interval", w.interval))
}

// connectedTasks returns the tasks connected to the daemon now, on any socket.
func (d *Daemon) connectedTasks() map[string]bool {
	all := map[string]bool{}
	for _, s := range d.servers {
		for t := range s.srv.ConnectedTasks() {
			all[t] = true
		}
	}
	return all
}
