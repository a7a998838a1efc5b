package stack

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is a server the harness runs (influxd, kapacitord): its
// directory, its HTTP API's address, and its process.
type process struct {
	// URL is its HTTP API's base URL, http://127.0.0.1:PORT.
	URL string
	// Dir holds its config, data and logs.
	Dir string

	cmd     *exec.Cmd
	out     *os.File // its stdout and stderr
	done    chan struct{}
	waitErr error
	ownsDir bool
	client  *http.Client
}

// newProcess prepares the directory of the server name: dir, or a new
// temporary directory (removed by Stop) when dir is empty.
func newProcess(name, dir string) (*process, error) {
	p := &process{Dir: dir, done: make(chan struct{}), client: &http.Client{Timeout: 30 * time.Second}}
	if p.Dir == "" {
		var err error
		if p.Dir, err = os.MkdirTemp("", name+"-"); err != nil {
			return nil, fmt.Errorf("creating %s's directory: %w", name, err)
		}
		p.ownsDir = true
	} else if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s's directory: %w", name, err)
	}
	return p, nil
}

// start runs binary with args in p.Dir, its stdout and stderr going to the
// file outName there, without the variables of the environment that start
// with envPrefix (the server's own overrides of its config).
func (p *process) start(binary string, args []string, outName, envPrefix string) error {
	var err error
	if p.out, err = os.Create(filepath.Join(p.Dir, outName)); err != nil {
		return fmt.Errorf("creating %s: %w", outName, err)
	}
	p.cmd = exec.Command(binary, args...)
	p.cmd.Dir = p.Dir
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envPrefix) {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	if err := p.cmd.Start(); err != nil {
		p.out.Close()
		return fmt.Errorf("starting %s: %w", binary, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		p.out.Close()
		close(p.done)
	}()
	return nil
}

// removeOwnDir removes the directory if newProcess made it: after a
// failed start.
func (p *process) removeOwnDir() {
	if p.ownsDir {
		os.RemoveAll(p.Dir)
	}
}

// Alive reports whether the process is still running.
func (p *process) Alive() bool { return running(p.done) }

// running reports whether done, closed when a process has exited, is open.
func running(done <-chan struct{}) bool {
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Stop ends the process (SIGTERM, then SIGKILL after 10s) and removes its
// directory if the harness created it. It is safe to call more than once.
func (p *process) Stop() {
	p.stop()
	p.removeOwnDir()
}

func (p *process) stop() { terminate(p.cmd, p.done) }

// retryBusyPort runs start up to three times while it fails because the
// port picked for the server (by listening and closing) was taken by
// another process before the server bound it.
func retryBusyPort[T any](start func() (T, error)) (T, error) {
	var zero T
	var lastErr error
	for range 3 {
		v, err := start()
		if err == nil {
			return v, nil
		}
		lastErr = err
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return zero, lastErr
}

// FreeAddr returns 127.0.0.1:PORT with a port that was free a moment ago
// (another process may take it before it is bound).
func FreeAddr() (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// terminate ends a process started by cmd, whose waiter closes done:
// SIGTERM, then SIGKILL after 10s. It returns at once if the process never
// started or has exited.
func terminate(cmd *exec.Cmd, done <-chan struct{}) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// tailLines returns the last n lines of s, ending with a newline.
func tailLines(s string, n int) string {
	lines := strings.SplitAfter(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "") + "\n"
}
