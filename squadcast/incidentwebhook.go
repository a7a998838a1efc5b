package squadcast

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// incidentWebhook is Squadcast's Incident Webhook (API v2) body.
type incidentWebhook struct {
	Message     string            `json:"message"`
	Description string            `json:"description"`
	Tags        map[string]string `json:"tags"`
	Status      string            `json:"status"`
	EventID     string            `json:"event_id"`
	Priority    string            `json:"priority,omitempty"`
}

// Incident Webhook statuses.
const (
	statusTrigger = "trigger"
	statusResolve = "resolve"
)

// RenderIncidentWebhook renders ev as a Squadcast Incident Webhook (API v2)
// body, as a task without .tag() or .priority() would send it: see
// renderIncidentWebhook.
func RenderIncidentWebhook(ev udf.Event) ([]byte, error) {
	return renderIncidentWebhook(ev, &incidentOptions{})
}

// renderIncidentWebhook renders ev as a Squadcast Incident Webhook (API
// v2) body: {"message","description","tags","status","event_id","priority"}.
// The status is "resolve" for level OK and "trigger" otherwise; event_id is
// the alert ID; tags are the point's tags, then the task's .tag()s (which
// win over a point tag of the same key), then "level" (which wins over
// both); priority is the task's priority of the level on a trigger, and
// left out when empty or on a resolve. An empty message becomes "<id> is
// <level>" and an empty description the message, since Squadcast needs
// both to trigger.
//
// A body over MaxBody is shrunk (see MaxBody): the tags, then the
// description, then the message, then the tags further; the "level" tag is
// always kept, and the event_id is never cut.
func renderIncidentWebhook(ev udf.Event, inc *incidentOptions) ([]byte, error) {
	p := incidentWebhook{
		Message:     ev.Message,
		Description: ev.Details,
		Tags:        make(map[string]string, len(ev.Tags)+len(inc.tags)+1),
		Status:      statusTrigger,
		EventID:     ev.ID,
	}
	if ev.Level == udf.OK {
		p.Status = statusResolve
	} else {
		p.Priority = inc.priorities[ev.Level]
	}
	if p.Message == "" {
		p.Message = ev.ID + " is " + ev.Level.String()
	}
	if p.Description == "" {
		p.Description = p.Message
	}
	for k, v := range ev.Tags {
		p.Tags[k] = v
	}
	for k, v := range inc.tags {
		p.Tags[k] = v
	}
	level := ev.Level.String()
	p.Tags["level"] = level

	body, err := encodeJSON(&p, "incident webhook")
	if err != nil || len(body) <= MaxBody {
		return body, err
	}
	// Shrinking keeps the task's .tag()s first, then the point's tags, each
	// in key order.
	all := p.Tags
	var extra, others []string
	for k := range all {
		switch _, isExtra := inc.tags[k]; {
		case k == "level":
		case isExtra:
			extra = append(extra, k)
		default:
			others = append(others, k)
		}
	}
	sort.Strings(extra)
	sort.Strings(others)
	others = append(extra, others...)
	return shrink(&p, "incident webhook", shrinkSteps{
		fitTags: func(budget int) {
			budget -= jsonStringLen("level") + jsonStringLen(level) + 6
			kept, vals, _ := fitEntries(others, func(k string) (interface{}, int) {
				v := cutValue(all[k])
				return v, jsonStringLen(k) + jsonStringLen(v) + 6
			}, budget)
			p.Tags = make(map[string]string, len(kept)+2)
			for i, k := range kept {
				p.Tags[k] = vals[i].(string)
			}
			if n := len(others) - len(kept); n > 0 {
				p.Tags[TruncatedKey] = fmt.Sprintf("%d of %d tags left out", n, len(others))
			}
			p.Tags["level"] = level
		},
		tagsLen: func() int { b, _ := json.Marshal(p.Tags); return len(b) },
		details: &p.Description,
		message: &p.Message,
		id:      p.EventID,
	})
}
