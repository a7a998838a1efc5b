package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// BuildDaemon builds the kapacitor-squadcast binary from this module into
// dir and returns its path. It locates the module root with `go env GOMOD`
// (run in the current directory) and runs `go build -o DIR/kapacitor-squadcast
// ./cmd/kapacitor-squadcast` there; when the calling binary was built with
// -race, so is the daemon, and a data race in it makes it exit non-zero.
// Go's build cache makes repeated builds cheap. ctx bounds the build.
func BuildDaemon(ctx context.Context, dir string) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "kapacitor-squadcast")
	args := []string{"build"}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "-o", out, "./cmd/kapacitor-squadcast")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the daemon (go %s in %s): %w\n%s", strings.Join(args, " "), cmd.Dir, err, msg)
	}
	return out, nil
}

// ModuleRoot returns the directory of the Go module the current directory is
// in (from `go env GOMOD`): the repository root, for files like tickscripts/.
func ModuleRoot() (string, error) {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("locating the module root with go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(gomod))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("locating the module root: not inside a Go module (go env GOMOD is empty)")
	}
	return filepath.Dir(mod), nil
}

// DaemonConfig says how to start a Daemon.
type DaemonConfig struct {
	// Binary is the kapacitor-squadcast executable (see BuildDaemon).
	Binary string
	// Socket is the unix socket path to serve the UDF on (--socket). Keep it
	// short: unix socket paths are limited to about 100 bytes.
	Socket string
	// BatchSocket, when not empty, is --batch-socket: the socket of the
	// batch UDF, for batch tasks (@squadcast_batch()).
	BatchSocket string
	// DataDir is the daemon's state directory (--data-dir).
	DataDir string
	// URL is the default webhook URL (--url); empty passes no --url.
	URL string
	// LogLevel is --log-level; empty means "debug".
	LogLevel string
	// LogFormat is --log-format; empty means "json".
	LogFormat string
	// Workers is --workers; zero passes no --workers.
	Workers int
	// Args are more command-line arguments, appended after the others.
	Args []string
	// Env are more environment variables (KEY=VALUE). The daemon inherits
	// the caller's environment except SQUADCAST_WEBHOOK_URL, which it gets
	// only from here.
	Env []string
	// Output, if not nil, also receives everything the daemon prints.
	Output io.Writer
	// StartTimeout bounds the wait for the socket file; zero means 30s.
	StartTimeout time.Duration
}

// Daemon is a running kapacitor-squadcast serve process.
type Daemon struct {
	// Socket is the UDF socket path it serves.
	Socket string

	cmd      *exec.Cmd
	out      *SyncBuffer
	done     chan struct{}
	waitErr  error
	stopOnce sync.Once
	stopErr  error
}

// StartDaemon starts `kapacitor-squadcast serve --socket S --data-dir D
// [--url U] --log-level L --log-format F [--workers N]` with its stdout and
// stderr captured, and waits until the socket file exists.
func StartDaemon(cfg DaemonConfig) (*Daemon, error) {
	if cfg.Binary == "" || cfg.Socket == "" || cfg.DataDir == "" {
		return nil, errors.New("starting the daemon: Binary, Socket and DataDir are required")
	}
	if cfg.LogLevel == "" {
		cfg.LogLevel = "debug"
	}
	if cfg.LogFormat == "" {
		cfg.LogFormat = "json"
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 30 * time.Second
	}
	args := []string{"serve", "--socket", cfg.Socket, "--data-dir", cfg.DataDir}
	if cfg.BatchSocket != "" {
		args = append(args, "--batch-socket", cfg.BatchSocket)
	}
	if cfg.URL != "" {
		args = append(args, "--url", cfg.URL)
	}
	args = append(args, "--log-level", cfg.LogLevel, "--log-format", cfg.LogFormat)
	if cfg.Workers != 0 {
		args = append(args, "--workers", strconv.Itoa(cfg.Workers))
	}
	args = append(args, cfg.Args...)

	d := &Daemon{Socket: cfg.Socket, out: &SyncBuffer{}, done: make(chan struct{})}
	d.cmd = exec.Command(cfg.Binary, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SQUADCAST_WEBHOOK_URL=") {
			d.cmd.Env = append(d.cmd.Env, kv)
		}
	}
	d.cmd.Env = append(d.cmd.Env, cfg.Env...)
	var w io.Writer = d.out
	if cfg.Output != nil {
		w = io.MultiWriter(d.out, cfg.Output)
	}
	d.cmd.Stdout, d.cmd.Stderr = w, w
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", cfg.Binary, err)
	}
	go func() {
		d.waitErr = d.cmd.Wait()
		close(d.done)
	}()

	deadline := time.Now().Add(cfg.StartTimeout)
	for {
		if isSocket(cfg.Socket) && (cfg.BatchSocket == "" || isSocket(cfg.BatchSocket)) {
			return d, nil
		}
		select {
		case <-d.done:
			return nil, fmt.Errorf("the daemon exited during start-up (%v); its output:\n%s", d.waitErr, d.Output())
		default:
		}
		if time.Now().After(deadline) {
			d.Kill()
			return nil, fmt.Errorf("the daemon did not create its socket %s within %s; its output:\n%s", cfg.Socket, cfg.StartTimeout, d.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func isSocket(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode()&fs.ModeSocket != 0
}

// Pid returns the daemon's process id.
func (d *Daemon) Pid() int { return d.cmd.Process.Pid }

// Alive reports whether the daemon process is still running.
func (d *Daemon) Alive() bool { return running(d.done) }

// Done is closed when the daemon process has exited.
func (d *Daemon) Done() <-chan struct{} { return d.done }

// Output returns everything the daemon has printed so far (stdout and stderr).
func (d *Daemon) Output() string { return d.out.String() }

// Stop sends SIGTERM and waits up to 20s for the daemon to exit. It returns
// an error (with the daemon's output tail) if the daemon had already exited,
// exits non-zero, or has to be killed. Later calls return the same result.
func (d *Daemon) Stop() error {
	d.stopOnce.Do(func() {
		select {
		case <-d.done:
			d.stopErr = fmt.Errorf("the daemon had exited before Stop (%v); its output tail:\n%s", d.waitErr, tailLines(d.Output(), 40))
			return
		default:
		}
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
			if d.waitErr != nil {
				d.stopErr = fmt.Errorf("the daemon exited with %v after SIGTERM, want exit status 0; its output tail:\n%s", d.waitErr, tailLines(d.Output(), 40))
			}
		case <-time.After(20 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.done
			d.stopErr = fmt.Errorf("the daemon did not exit within 20s of SIGTERM and was killed; its output tail:\n%s", tailLines(d.Output(), 40))
		}
	})
	return d.stopErr
}

// Kill sends SIGKILL and waits for the process to end. Stop after Kill
// reports that the daemon had exited.
func (d *Daemon) Kill() {
	_ = d.cmd.Process.Kill()
	<-d.done
}

// SyncBuffer is a bytes.Buffer safe for concurrent use (a daemon's captured output).
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p to the buffer.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
