package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Replay is what Kapacitor reports about a replay (GET /kapacitor/v1/replays/ID).
type Replay struct {
	ID string `json:"id"`
	// Status is "running", "finished" or "failed".
	Status string `json:"status"`
	// Error is why it failed ("" if it did not).
	Error string `json:"error"`
	// Progress goes from 0 to 1.
	Progress float64 `json:"progress"`
}

// ReplayBatch starts replaying a batch task over [start, stop] (POST
// /kapacitor/v1/replays/batch): Kapacitor runs the task's queries for every
// period of its schedule in that range against InfluxDB and feeds the
// batches to a copy of the task, with the fast clock and the data's own
// times. The task need not be enabled. It returns the replay's ID.
func (k *Kapacitord) ReplayBatch(task string, start, stop time.Time) (string, error) {
	body, err := json.Marshal(map[string]any{
		"task":           task,
		"start":          start.UTC().Format(time.RFC3339Nano),
		"stop":           stop.UTC().Format(time.RFC3339Nano),
		"clock":          "fast",
		"recording-time": true,
	})
	if err != nil {
		return "", fmt.Errorf("replay batch task %s: %w", task, err)
	}
	var r Replay
	if err := k.do(context.Background(), "replay batch task "+task, http.MethodPost, "/kapacitor/v1/replays/batch", bytes.NewReader(body), "application/json", &r); err != nil {
		return "", err
	}
	return r.ID, nil
}

// WaitReplay polls a replay until it is no longer running and returns it,
// or fails after timeout. A failed replay is returned with an error holding
// Kapacitor's reason.
func (k *Kapacitord) WaitReplay(id string, timeout time.Duration) (Replay, error) {
	deadline := time.Now().Add(timeout)
	for {
		var r Replay
		err := k.do(context.Background(), "get replay "+id, http.MethodGet, "/kapacitor/v1/replays/"+url.PathEscape(id), nil, "", &r)
		if err == nil && r.Status != "running" {
			if r.Status != "finished" {
				return r, fmt.Errorf("replay %s %s: %s", id, r.Status, r.Error)
			}
			return r, nil
		}
		if time.Now().After(deadline) {
			return r, fmt.Errorf("replay %s still %q after %s (progress %.2f, last error %v)", id, r.Status, timeout, r.Progress, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
