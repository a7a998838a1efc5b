package udf

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/influxdata/kapacitor/udf/agent"
	"google.golang.org/protobuf/proto"
)

// A node saves its options with its alert state (StateChange.Options), so
// that the daemon can resolve its incidents once its task is gone from
// Kapacitor (ResolveGone): where its events went, and how, are in them.
//
// The saved form is a version byte, a flags byte (savedBatch for
// @squadcast_batch()), then the options as an agent.InitRequest in
// protobuf: Kapacitor's own encoding of them.
const (
	savedVersion = 1
	savedBatch   = 1
)

// ErrNoOptions means a node's state was saved without its options (by a
// daemon from before they were saved): where its events went is unknown.
var ErrNoOptions = errors.New("the node's state was saved without its options (by an older daemon): where its events went is unknown")

// encodeOptions returns a node's options as saved.
func encodeOptions(batch bool, opts []*agent.Option) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(&agent.InitRequest{Options: opts})
	if err != nil {
		// Options Kapacitor sent were decoded from the same protobuf: they
		// always encode. Saved without them, the node cannot be resolved.
		return nil
	}
	var flags byte
	if batch {
		flags |= savedBatch
	}
	return append([]byte{savedVersion, flags}, b...)
}

// decodeOptions parses saved options as the node's Init did.
func decodeOptions(saved []byte) (*TaskOptions, error) {
	if len(saved) == 0 {
		return nil, ErrNoOptions
	}
	if len(saved) < 2 || saved[0] != savedVersion || saved[1]&^savedBatch != 0 {
		return nil, fmt.Errorf("saved options of version %d, want %d", saved[0], savedVersion)
	}
	var r agent.InitRequest
	if err := proto.Unmarshal(saved[2:], &r); err != nil {
		return nil, fmt.Errorf("decode saved options: %w", err)
	}
	parse := ParseOptions
	if saved[1]&savedBatch != 0 {
		parse = ParseBatchOptions
	}
	opts, err := parse(r.GetOptions())
	if err != nil {
		return nil, fmt.Errorf("parse saved options: %w", err)
	}
	return opts, nil
}

// GoneResolution resolves the incidents of a node whose task is gone.
type GoneResolution struct {
	// Destination is where the node's events went: the resolutions go there too.
	Destination Destination
	// Events are the OK events, one per saved alerting group with an
	// incident; none when the node has .noRecoveries() (its incidents
	// never resolve, as with the alert node).
	Events []Event
}

// ResolveGone returns the events that resolve the saved alerting groups of
// a node whose task is gone (deleted from Kapacitor), as if each group
// recovered at t: its last event's id, level OK, previousLevel its saved
// level, duration t less the time it left OK (0 if that is later),
// recoverable. The message is "<id> is OK (<why>)" and the details the
// default details of that data: the node's own templates are written for
// its points' name, tags and fields, which are not saved. A group whose
// id is empty sent no event (its first ones were held by .flapping()):
// there is no incident to resolve. Its error is ErrNoOptions, or says why
// the saved options cannot be parsed; then nothing can be resolved.
func ResolveGone(taskID, nodeID string, ns NodeState, t time.Time, why string) (GoneResolution, error) {
	opts, err := decodeOptions(ns.Options)
	if err != nil {
		return GoneResolution{}, err
	}
	r := GoneResolution{Destination: opts.Destination}
	if opts.NoRecoveries {
		return r, nil
	}
	t = t.UTC()
	var buf bytes.Buffer
	for _, g := range ns.Groups {
		if g.ID == "" {
			continue
		}
		group := groupName(g.Group)
		d := max(time.Duration(t.UnixNano()-g.FirstTriggered), 0)
		info := DetailsInfo{MessageInfo: MessageInfo{
			IDInfo: IDInfo{TaskName: taskID, Group: group},
			ID:     g.ID, Level: OK.String(), Time: t, Duration: d,
		}}
		info.Message = g.ID + " is OK (" + why + ")"
		details, err := render(defaultTemplates[optDetails], &buf, &info)
		if err != nil {
			details = info.Message
		}
		r.Events = append(r.Events, Event{TaskID: taskID, NodeID: nodeID, ID: g.ID, Message: info.Message, Details: details,
			Time: t, Duration: d, Level: OK, PreviousLevel: g.Level, Recoverable: true, Group: group})
	}
	return r, nil
}
