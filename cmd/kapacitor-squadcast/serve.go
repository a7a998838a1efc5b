package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"runtime/debug"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

const serveUsage = "Usage: kapacitor-squadcast serve --socket PATH --data-dir DIR [flags]\n       kapacitor-squadcast serve --config FILE [flags]\n"

// runServe is the serve command: it loads the configuration, builds the
// logger and the daemon, and runs it until ctx is done.
func runServe(ctx context.Context, args []string, stderr io.Writer) int {
	c, err := Load(args, stderr)
	var usage usageError
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &usage):
		return 2 // printed, with the usage
	case err != nil:
		fmt.Fprintf(stderr, "kapacitor-squadcast: %v\n", err)
		return 1
	}
	log, err := newLogger(c.LogLevel, c.LogFormat, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "kapacitor-squadcast: %v\n", err)
		return 2
	}
	defer func() { _ = log.Sync() }()
	d, err := NewDaemon(c, log)
	if err == nil {
		err = d.Run(ctx)
	}
	if err != nil {
		log.Error("kapacitor-squadcast stopped", zap.Error(err))
		return 1
	}
	return 0
}

// defaultGCPercent is the garbage collector's GOGC unless $GOGC is set:
// the heap may grow to 1.5 times what was live at the last collection,
// not twice (Go's 100). In a storm most of what is live is the alerting
// groups (about 100 MiB for a million), and twice that is what took the
// daemon over 300 MiB of anonymous memory (make bench's storm); the
// collector runs more often only while the daemon allocates, which it
// does per state change, not per point.
const defaultGCPercent = 50

// applyGCPercent sets GOGC to defaultGCPercent unless $GOGC (which the
// runtime read at start) is set, and returns the value in force.
func applyGCPercent(env string) string {
	if env != "" {
		return env
	}
	debug.SetGCPercent(defaultGCPercent)
	return fmt.Sprint(defaultGCPercent)
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
