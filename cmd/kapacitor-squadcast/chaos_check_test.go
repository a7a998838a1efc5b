package main

import (
	"fmt"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/cmd/internal/stack"
)

// chaosProblems compares, per incident, the events the daemon delivered
// with the reference's: the first deliveries of distinct events must be the
// reference's events in order (nothing lost, nothing reordered, nothing
// made up), and the last delivered event must be the reference's last (the
// incident ends in the right state). It returns what is wrong, or nothing.
func chaosProblems(want, got map[string][]e2eEvent) []string {
	var problems []string
	for id, w := range want {
		g := got[id]
		firsts := dedupeEvents(g)
		n := min(len(w), len(firsts))
		for i := range n {
			for _, f := range e2eFields {
				if !assertEqualJSON(w[i][f], firsts[i][f]) {
					problems = append(problems, fmt.Sprintf("incident %s, event %d of %d: %s: reference %s, daemon %s", id, i, len(w), f, e2eJSON(w[i][f]), e2eJSON(firsts[i][f])))
					break
				}
			}
		}
		switch {
		case len(firsts) < len(w):
			problems = append(problems, fmt.Sprintf("incident %s: %d of %d events delivered", id, len(firsts), len(w)))
		case len(firsts) > len(w):
			problems = append(problems, fmt.Sprintf("incident %s: %d distinct events delivered, the reference has %d", id, len(firsts), len(w)))
		case eventKey(g[len(g)-1]) != eventKey(w[len(w)-1]):
			problems = append(problems, fmt.Sprintf("incident %s: the last delivery is %s, the reference's last event %s", id, eventKey(g[len(g)-1]), eventKey(w[len(w)-1])))
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			problems = append(problems, fmt.Sprintf("incident %s: delivered by the daemon, unknown to the reference", id))
		}
	}
	return problems
}

func refStats(k *stack.Kapacitord) string {
	a, _ := k.Task("chaos_reference")
	b, _ := k.Task("chaos_squadcast")
	return fmt.Sprintf("%v / %v", a.NodeStats, b.NodeStats)
}

func assertEqualJSON(a, b any) bool { return e2eJSON(a) == e2eJSON(b) }

// eventKey identifies an alert event: its id, time and level.
func eventKey(ev e2eEvent) string {
	return fmt.Sprintf("%v@%v=%v", ev["id"], ev["time"], ev["level"])
}

// dedupeEvents keeps the first occurrence of each event.
func dedupeEvents(evs []e2eEvent) []e2eEvent {
	seen := map[string]bool{}
	var out []e2eEvent
	for _, ev := range evs {
		if k := eventKey(ev); !seen[k] {
			seen[k] = true
			out = append(out, ev)
		}
	}
	return out
}

func okRequests(reqs []stack.Request) []stack.Request {
	var out []stack.Request
	for _, r := range reqs {
		if r.Status/100 == 2 {
			out = append(out, r)
		}
	}
	return out
}

func countStatus(reqs []stack.Request, status int) int {
	n := 0
	for _, r := range reqs {
		if r.Status == status {
			n++
		}
	}
	return n
}
