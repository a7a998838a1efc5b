package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/cmd/internal/stack"
)

const (
	timeout = 2 * time.Minute
	// webhookPath is where the daemon posts: the shape of a Squadcast
	// "Kapacitor" alert source URL, with a made-up key.
	webhookPath = "/v1/incidents/kapacitor/DEMO-KEY"
)

// step is one point of the story.
type step struct {
	host string
	idle float64
}

// story: web-1 and web-2 go OK → WARNING → CRITICAL → OK, db-1 only
// OK → WARNING → OK. Thresholds (cpu_squadcast.tick): crit < 10, warn < 25,
// info < 40 on usage_idle.
var story = []step{
	{"web-1", 80}, {"web-2", 75}, {"db-1", 90},
	{"web-1", 20}, {"db-1", 18},
	{"web-2", 22},
	{"web-1", 6},
	{"web-2", 4},
	{"db-1", 70},
	{"web-1", 85},
	{"web-2", 88},
}

// wantIncidents is how many requests the story makes: web-1 and web-2 send
// WARNING, CRITICAL, OK each; db-1 sends WARNING, OK.
const wantIncidents = 3 + 3 + 2

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("the demo did not finish within %s", timeout))
	defer cancel()
	if err := run(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo failed: %v\n", err)
		os.Exit(1)
	}
}

// incident is what the stand-in understood of one request.
type incident struct {
	at     time.Time
	action string // TRIGGER or RESOLVE
	id     string
	level  string
	msg    string
}

func parseIncident(r stack.Request) incident {
	var body struct {
		// Kapacitor's alert JSON (the "kapacitor" format).
		ID      string `json:"id"`
		Message string `json:"message"`
		Level   string `json:"level"`
		// Squadcast's Incident Webhook format.
		Status  string `json:"status"`
		EventID string `json:"event_id"`
	}
	in := incident{at: r.Received}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		in.action, in.msg = "?", fmt.Sprintf("unreadable body %q", r.Body)
		return in
	}
	in.id, in.level, in.msg = body.ID, body.Level, body.Message
	if in.id == "" {
		in.id = body.EventID
	}
	switch {
	case strings.EqualFold(body.Status, "resolve") || body.Level == "OK":
		in.action = "RESOLVE"
	default:
		in.action = "TRIGGER"
	}
	return in
}

func run(ctx context.Context) (err error) {
	kapacitord := os.Getenv(stack.KapacitordEnv)
	if kapacitord == "" {
		return errors.New("KAPACITORD is not set: run `make demo`, which builds kapacitord 1.5.9 and sets it")
	}
	if _, err := os.Stat(kapacitord); err != nil {
		return fmt.Errorf("KAPACITORD: %w (run `make demo`)", err)
	}
	root, err := stack.ModuleRoot()
	if err != nil {
		return err
	}
	script, err := os.ReadFile(filepath.Join(root, "tickscripts", "cpu_squadcast.tick"))
	if err != nil {
		return fmt.Errorf("reading the tickscript: %w", err)
	}
	dir, err := os.MkdirTemp("", "ksq-demo-")
	if err != nil {
		return fmt.Errorf("creating a temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)

	// 1. The stand-in for Squadcast.
	standIn := stack.NewStandIn()
	defer standIn.Close()
	var mu sync.Mutex
	var incidents []incident
	standIn.OnRequest(func(r stack.Request) {
		in := parseIncident(r)
		mu.Lock()
		defer mu.Unlock()
		incidents = append(incidents, in)
		fmt.Printf("  squadcast ← %s  %-7s  %-14s  %-8s  %s\n", in.at.Format("15:04:05.000"), in.action, in.id, in.level, in.msg)
	})
	fmt.Printf("stand-in for Squadcast listening on %s\n", standIn.URL)

	// 2. The daemon (before kapacitord, which dials its socket at start-up).
	fmt.Println("building kapacitor-squadcast ...")
	bin, err := stack.BuildDaemon(ctx, dir)
	if err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(dir, "daemon.log"))
	if err != nil {
		return fmt.Errorf("creating the daemon's log file: %w", err)
	}
	defer logFile.Close()
	daemon, err := stack.StartDaemon(stack.DaemonConfig{
		Binary:    bin,
		Socket:    filepath.Join(dir, "squadcast.sock"),
		DataDir:   filepath.Join(dir, "data"),
		URL:       standIn.URL + webhookPath,
		LogLevel:  "info",
		LogFormat: "console",
		Output:    logFile,
	})
	if err != nil {
		return err
	}
	daemonStopped := false
	defer func() {
		if daemonStopped {
			return
		}
		if stopErr := daemon.Stop(); stopErr != nil && err == nil {
			err = stopErr
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "--- daemon output (tail) ---\n%s\n", tail(daemon.Output(), 30))
		}
	}()
	fmt.Printf("kapacitor-squadcast serving on %s (pid %d)\n", daemon.Socket, daemon.Pid())

	// 3. kapacitord.
	kap, err := stack.StartKapacitord(stack.KapacitordConfig{Binary: kapacitord, UDFSocket: daemon.Socket, StartTimeout: 30 * time.Second})
	if err != nil {
		return err
	}
	kapStopped := false
	defer func() {
		if err != nil {
			fmt.Fprintf(os.Stderr, "--- kapacitord log (tail) ---\n%s\n", kap.LogTail(30))
		}
		if !kapStopped {
			kap.Stop()
		}
	}()
	fmt.Printf("kapacitord listening on %s\n", kap.URL)

	// 4. The task.
	if err := kap.DefineTask("cpu_squadcast", string(script), []stack.DBRP{{DB: "telegraf", RP: "autogen"}}, true); err != nil {
		return err
	}
	task, err := kap.Task("cpu_squadcast")
	if err != nil {
		return err
	}
	if !task.Executing || task.Error != "" {
		return fmt.Errorf("task cpu_squadcast is not running: executing %v, error %q", task.Executing, task.Error)
	}
	fmt.Println("task cpu_squadcast defined from tickscripts/cpu_squadcast.tick (crit < 10, warn < 25, info < 40 on usage_idle)")
	fmt.Println()

	// 5. The story.
	for _, s := range story {
		if err := sleep(ctx, 300*time.Millisecond); err != nil {
			return err
		}
		now := time.Now()
		fmt.Printf("kapacitor ← %s  cpu,host=%-6s usage_idle=%g\n", now.Format("15:04:05.000"), s.host, s.idle)
		if err := kap.Write("telegraf", "autogen", stack.Line(s.host, s.idle, int64((100-s.idle)/10), now)); err != nil {
			return err
		}
	}

	// 6. Wait for every incident, then for stragglers.
	waitCtx, waitCancel := context.WithTimeout(ctx, 30*time.Second)
	defer waitCancel()
	for standIn.Count() < wantIncidents {
		if err := sleep(waitCtx, 50*time.Millisecond); err != nil {
			task, _ := kap.Task("cpu_squadcast")
			return fmt.Errorf("got %d of %d incidents (task executing %v, error %q): %w", standIn.Count(), wantIncidents, task.Executing, task.Error, err)
		}
	}
	if err := sleep(ctx, 500*time.Millisecond); err != nil {
		return err
	}

	// 7. Shut down: kapacitord first, then the daemon (it must exit 0).
	kap.Stop()
	kapStopped = true
	daemonStopped = true
	if err := daemon.Stop(); err != nil {
		return err
	}
	standIn.Close()

	mu.Lock()
	defer mu.Unlock()
	printSummary(incidents)
	if len(incidents) != wantIncidents {
		return fmt.Errorf("got %d incidents, want %d", len(incidents), wantIncidents)
	}
	for _, in := range incidents {
		if in.action == "?" {
			return fmt.Errorf("the stand-in could not read an incident: %s", in.msg)
		}
	}
	fmt.Println("\ndemo finished: everything shut down cleanly")
	return nil
}

func printSummary(incidents []incident) {
	type row struct {
		levels []string
		last   incident
	}
	rows := map[string]*row{}
	for _, in := range incidents {
		r := rows[in.id]
		if r == nil {
			r = &row{}
			rows[in.id] = r
		}
		r.levels = append(r.levels, in.level)
		r.last = in
	}
	ids := make([]string, 0, len(rows))
	for id := range rows {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	fmt.Printf("\nsummary: %d requests to the stand-in, %d alert ids\n\n", len(incidents), len(ids))
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "ALERT ID\tEVENTS\tLEVELS\tINCIDENT NOW")
	for _, id := range ids {
		r := rows[id]
		state := "open (" + r.last.level + ")"
		if r.last.action == "RESOLVE" {
			state = "resolved"
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\n", id, len(r.levels), strings.Join(r.levels, " → "), state)
	}
	w.Flush()
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
