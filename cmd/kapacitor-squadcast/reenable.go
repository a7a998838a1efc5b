package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// reenabler restarts, after the daemon starts, the Kapacitor tasks that were
// using a previous daemon process. Kapacitor never reconnects a UDF (upstream
// #1174, #2526): a task whose connection broke either stopped with an error,
// or still looks "executing" on the dead connection and loses points at its
// next write. Restarting it (disable, then enable) connects it to this
// process, which carries on from the saved alert state.
type reenabler struct {
	base   *url.URL // Kapacitor's base URL; may hold user:password
	udf    string   // the UDF name in kapacitor.conf, e.g. "squadcast"
	client *http.Client
	log    *zap.Logger
	// connected returns the tasks connected to this process now: those are
	// fine and are left alone.
	connected func() map[string]bool
	// retryFor is how long to wait for Kapacitor's API to answer at all.
	retryFor time.Duration
	wait     func(context.Context, time.Duration) error
	// settleFor bounds the wait, between disabling and enabling an
	// executing task, for Kapacitor to finish with its old run (see awaitRunEnded).
	settleFor time.Duration
}

// kapacitorTask is the part of Kapacitor's task JSON the reenabler reads.
type kapacitorTask struct {
	ID        string `json:"id"`
	Status    string `json:"status"`
	Executing bool   `json:"executing"`
	Error     string `json:"error"`
	Script    string `json:"script"`
}

// parseKapacitorURL checks --kapacitor-url; its errors never show a password.
func parseKapacitorURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("--kapacitor-url: not a URL")
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--kapacitor-url: want http(s)://host:port, got scheme %q", u.Scheme)
	}
	return u, nil
}

// usesUDF reports whether a TICKscript calls @name().
func usesUDF(script, name string) bool {
	return regexp.MustCompile(`@` + regexp.QuoteMeta(name) + `\s*\(`).MatchString(script)
}

// needsRestart picks the tasks a previous daemon process left behind:
// enabled, using the UDF, not connected to this process, and either still
// "executing" (on a dead connection) or stopped by an error that is not a
// failed Init (a bad option would only fail again). A task that is enabled,
// not executing and without error is still starting: left alone.
func needsRestart(t kapacitorTask, udf string, connected map[string]bool) bool {
	if t.Status != "enabled" || !usesUDF(t.Script, udf) || connected[t.ID] {
		return false
	}
	if t.Executing {
		return true
	}
	return t.Error != "" && !strings.Contains(t.Error, "failed to initialize")
}

// run lists Kapacitor's tasks, waiting for its API up to retryFor, and
// restarts those that need it. It returns the IDs it restarted.
func (r *reenabler) run(ctx context.Context) ([]string, error) {
	var tasks []kapacitorTask
	deadline := time.Now().Add(r.retryFor)
	for backoff := 500 * time.Millisecond; ; backoff = min(2*backoff, 15*time.Second) {
		var err error
		tasks, err = r.list(ctx)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("list Kapacitor's tasks: %w", err)
		}
		r.log.Info("Kapacitor's API does not answer yet; retrying", zap.Error(err), zap.Duration("in", backoff))
		if err := r.wait(ctx, backoff); err != nil {
			return nil, err
		}
	}
	connected := r.connected()
	var restarted []string
	var errs []error
	for _, t := range tasks {
		if !needsRestart(t, r.udf, connected) {
			continue
		}
		if err := r.restart(ctx, t); err != nil {
			r.log.Error("cannot restart task", zap.String("task", t.ID), zap.Error(err))
			errs = append(errs, err)
			continue
		}
		r.log.Info("restarted task left on a previous daemon's connection",
			zap.String("task", t.ID), zap.Bool("was_executing", t.Executing), zap.String("was_error", t.Error))
		restarted = append(restarted, t.ID)
	}
	return restarted, errors.Join(errs...)
}

// list returns every task, page by page.
func (r *reenabler) list(ctx context.Context) ([]kapacitorTask, error) {
	const limit = 100
	var all []kapacitorTask
	for offset := 0; ; offset += limit {
		q := url.Values{"fields": {"status", "executing", "error", "script"}, "offset": {strconv.Itoa(offset)}, "limit": {strconv.Itoa(limit)}}
		var page struct {
			Tasks []kapacitorTask `json:"tasks"`
		}
		if err := r.do(ctx, http.MethodGet, "/kapacitor/v1/tasks?"+q.Encode(), nil, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Tasks...)
		if len(page.Tasks) < limit {
			return all, nil
		}
	}
}

func (r *reenabler) restart(ctx context.Context, t kapacitorTask) error {
	path := "/kapacitor/v1/tasks/" + url.PathEscape(t.ID)
	if err := r.setStatus(ctx, path, "disabled"); err != nil {
		return err
	}
	if t.Executing {
		r.awaitRunEnded(ctx, path)
	}
	return r.setStatus(ctx, path, "enabled")
}

func (r *reenabler) setStatus(ctx context.Context, path, status string) error {
	if err := r.do(ctx, http.MethodPatch, path, map[string]string{"status": status}, nil); err != nil {
		return fmt.Errorf("set status %s: %w", status, err)
	}
	return nil
}

// awaitRunEnded waits, up to r.settleFor, until Kapacitor has finished
// with the run of an executing task that was just disabled. Kapacitor 1.5
// watches each run in a goroutine that, when the run ends with an error (as
// a run on a dead UDF connection does), stops the task by its ID and then
// saves the error: a task enabled again before that is stopped at once, or,
// while its new run is still starting, crashes kapacitord (a nil pointer in
// udf.(*Server).Abort). The saved error is the sign that the goroutine is
// done. A run that ended without error saves none: then the wait runs out,
// and no goroutine is left to interfere.
func (r *reenabler) awaitRunEnded(ctx context.Context, path string) {
	deadline := time.Now().Add(r.settleFor)
	for time.Now().Before(deadline) {
		var t kapacitorTask
		if err := r.do(ctx, http.MethodGet, path+"?"+url.Values{"fields": {"error", "executing"}}.Encode(), nil, &t); err == nil && !t.Executing && t.Error != "" {
			return
		}
		if sleepCtx(ctx, 50*time.Millisecond) != nil {
			return
		}
	}
}

// do sends one API request. Its errors name the method and path, never the
// base URL (which may hold a password).
func (r *reenabler) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	u := *r.base
	ref, err := url.Parse(path)
	if err != nil {
		return err
	}
	u.Path = strings.TrimRight(u.Path, "/") + ref.Path
	u.RawQuery = ref.RawQuery
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, ref.Path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := r.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the url.Error would print the whole URL
		}
		return fmt.Errorf("%s %s: %w", method, ref.Path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, ref.Path, err)
	}
	if resp.StatusCode/100 != 2 {
		msg := strings.TrimSpace(string(data))
		if len(msg) > 300 {
			msg = msg[:300] + "..."
		}
		return fmt.Errorf("%s %s: %s: %s", method, ref.Path, resp.Status, msg)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, ref.Path, err)
		}
	}
	return nil
}

// sleepCtx waits d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
