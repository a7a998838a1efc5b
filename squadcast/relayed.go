package squadcast

import (
	"errors"
	"fmt"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast/outbox"
	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf/relay"
)

// The Sender takes the alerts of Kapacitor's .post() through the relay
// (package udf/relay), as it takes the events of @squadcast() nodes: each
// is written to the outbox before the relay answers (concurrent requests
// share a transaction: group commit), then delivered by the same
// machinery, per incident (endpoint and alert id) in arrival order.

var _ relay.Sink = (*Sender)(nil)

// HasEndpoint reports whether name is a configured endpoint (relay.Sink).
func (s *Sender) HasEndpoint(name string) bool {
	_, ok := s.endpoints[name]
	return ok
}

// Relay takes an alert that Kapacitor's .post() sent to the relay for
// the endpoint (relay.Sink). To an endpoint of Kapacitor's format the body
// goes out byte for byte as Kapacitor sent it, unless it is over MaxBody:
// then it is rendered again from the alert, cut by the rules of every
// payload (see Render). To an Incident Webhook endpoint the alert is
// converted like an @squadcast() event, with the default priorities.
//
// Relay returns once the event is written (committed and synced). An error
// wrapping relay.ErrNotTaken means it was not taken at all (the Sender is
// closing, or memory is full while the outbox cannot be written); any
// other error, that its write failed: it is still delivered from memory,
// and its write retried.
func (s *Sender) Relay(endpoint string, a *relay.Alert, body []byte) error {
	t, ok := s.endpoints[endpoint]
	if !ok {
		return fmt.Errorf("relay to endpoint %q: %w: unknown endpoint", endpoint, relay.ErrNotTaken)
	}
	out, err := relayBody(t.format, a, body)
	if err == nil {
		j := &job{target: t, id: a.ID, level: a.Level, created: s.clock.Now(), body: out, source: SourceRelay,
			opens: a.Level != udf.OK && a.PreviousLevel == udf.OK}
		src := &outbox.Source{Name: t.name}
		if err = s.accept(j, src); err == nil {
			return s.cm.Flush(src, nil, false)
		}
	}
	s.dropped.Add(1)
	return fmt.Errorf("drop relayed event for incident %q (endpoint %s): %w: %w", udf.LoggedID(a.ID), t.name, relay.ErrNotTaken, err)
}

// relayBody is the body to send for a relayed alert in the given format.
func relayBody(format string, a *relay.Alert, body []byte) ([]byte, error) {
	switch {
	case format == FormatKapacitor && len(body) <= MaxBody:
		return body, nil
	case format == FormatKapacitor:
		return Render(FormatKapacitor, relayEvent(a))
	case format == FormatIncidentWebhook:
		return render(FormatIncidentWebhook, relayEvent(a), &incidentOptions{priorities: DefaultPriorities})
	}
	return nil, errors.New("unknown format " + format)
}

// relayEvent is the event of a relayed alert: its fields, and its data's
// first series as the rows of a batch event (its tags are the event's).
func relayEvent(a *relay.Alert) udf.Event {
	ev := udf.Event{ID: a.ID, Message: a.Message, Details: a.Details, Time: a.Time.UTC(), Duration: a.Duration,
		Level: a.Level, PreviousLevel: a.PreviousLevel, Recoverable: a.Recoverable, Group: "nil"}
	if len(a.Series) > 0 {
		sr := a.Series[0]
		ev.Name, ev.Tags, ev.Columns, ev.Values = sr.Name, sr.Tags, sr.Columns, sr.Values
		if ev.Columns == nil {
			ev.Columns = []string{}
		}
	}
	return ev
}
