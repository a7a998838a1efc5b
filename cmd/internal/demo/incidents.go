package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/cmd/internal/stack"
)

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

// incidentLog holds the incidents the stand-in received, in order.
type incidentLog struct {
	mu        sync.Mutex
	incidents []incident
}

// record is the stand-in's OnRequest: it keeps and prints the incident.
func (l *incidentLog) record(r stack.Request) {
	in := parseIncident(r)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.incidents = append(l.incidents, in)
	fmt.Printf("  squadcast ← %s  %-7s  %-14s  %-8s  %s\n", in.at.Format("15:04:05.000"), in.action, in.id, in.level, in.msg)
}

// report prints the summary and fails unless the stand-in received the
// story's incidents, every one readable.
func (l *incidentLog) report() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	printSummary(l.incidents)
	if len(l.incidents) != wantIncidents {
		return fmt.Errorf("got %d incidents, want %d", len(l.incidents), wantIncidents)
	}
	for _, in := range l.incidents {
		if in.action == "?" {
			return fmt.Errorf("the stand-in could not read an incident: %s", in.msg)
		}
	}
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
