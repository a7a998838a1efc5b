package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf/relay"
)

// RelayConfig is the relay for Kapacitor's .post() (--relay-listen): an
// HTTP server whose POST /relay/<endpoint> takes the alert JSON that
// .post() sends, writes it to the outbox and answers, then delivers it as
// it delivers @squadcast()'s events. Each field is the flag (and config
// file key) of its tag.
type RelayConfig struct {
	// RelayListen is the host:port the relay listens on ("" for off).
	RelayListen string `toml:"relay-listen"`
	// RelayMaxBody is the largest request body taken (413 above).
	RelayMaxBody byteSize `toml:"relay-max-body"`
	// RelayTokenFile is a file holding the token a request must carry as
	// Authorization: Bearer <token> ("" for none: only on loopback).
	RelayTokenFile string `toml:"relay-token-file"`
}

// minRelayMaxBody is the smallest --relay-max-body: Kapacitor's smallest alerts take a few hundred bytes.
const minRelayMaxBody = 1 << 10

// checkRelay checks the relay's settings together: a relay on an address
// that is not loopback must have a token.
func checkRelay(c *Config) error {
	if c.RelayListen == "" {
		return nil
	}
	if err := checkListen(c.RelayListen); err != nil {
		return err
	}
	if c.RelayTokenFile == "" && !loopback(c.RelayListen) {
		return fmt.Errorf("%q is not a loopback address, and the relay has no token: give --relay-token-file (a file holding the token Kapacitor sends as Authorization: Bearer <token>), or listen on 127.0.0.1", c.RelayListen)
	}
	return nil
}

// loopback reports whether the host of a host:port listens on loopback
// only: localhost or a loopback IP ("" and 0.0.0.0 are every interface).
func loopback(hostPort string) bool {
	host, _, err := net.SplitHostPort(hostPort)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func checkRelayMaxBody(s byteSize) error {
	if s < minRelayMaxBody {
		return fmt.Errorf("must be at least %s, got %s", byteSize(minRelayMaxBody), s)
	}
	return nil
}

func checkRelayTokenFile(path string) error {
	_, err := readRelayToken(path)
	return err
}

// readRelayToken reads the relay's token: the file's content, less
// surrounding white space. Its errors never show the token.
func readRelayToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read the token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("%s holds no token", path)
	}
	return tok, nil
}

// listenRelay listens on --relay-listen, when set, and builds the relay's
// server, which Run starts. Its cleanup stops it before the sender closes:
// no alert is taken once the sender stops taking them.
func (d *Daemon) listenRelay() error {
	if d.cfg.RelayListen == "" {
		return nil
	}
	var token string
	if d.cfg.RelayTokenFile != "" {
		var err error
		if token, err = readRelayToken(d.cfg.RelayTokenFile); err != nil {
			return fmt.Errorf("--relay-token-file: %w", err)
		}
	}
	ln, err := net.Listen("tcp", d.cfg.RelayListen)
	if err != nil {
		return fmt.Errorf("--relay-listen: %w", err)
	}
	rc := relay.Config{Sink: d.sender, MaxBody: int64(d.cfg.RelayMaxBody), Token: token, Logger: d.log.Named("relay")}
	if d.metrics != nil {
		rc.Observer = d.metrics
		for _, r := range relay.AllResults() {
			d.metrics.relayed.WithLabelValues(string(r)) // each result present from the start
		}
	}
	d.relayLn = ln
	d.relaySrv = &http.Server{Handler: relay.NewHandler(rc), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute}
	d.onClose(d.closeRelay)
	return nil
}

// serveRelay serves the relay, with --relay-listen.
func (d *Daemon) serveRelay() {
	if d.relaySrv == nil {
		return
	}
	go func() {
		if err := d.relaySrv.Serve(d.relayLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("relay server failed", zap.Error(err))
		}
	}()
	d.log.Info("serving the relay for Kapacitor's .post()", zap.String("relay_listen", d.relayLn.Addr().String()),
		zap.Bool("token", d.cfg.RelayTokenFile != ""))
}

// closeRelay stops taking requests and lets those in progress answer
// (their alerts are written by then), within a few seconds.
func (d *Daemon) closeRelay(context.Context) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.relaySrv.Shutdown(ctx); err != nil {
		_ = d.relaySrv.Close()
	}
	_ = d.relayLn.Close()
	return nil
}

// Request counts a relay request by result (relay.Observer).
func (m *metrics) Request(result relay.Result) {
	m.relayed.WithLabelValues(string(result)).Inc()
}
