package udf

// Sink is where the handlers hand what they produce: it resolves a task's
// destination options to a Publisher, and keeps each task node's alert
// state across restarts. The daemon's Sink is durable (squadcast.Sender:
// its outbox file keeps both); udf knows nothing of how.
type Sink interface {
	// Open is called from Init, after udf has validated the task's
	// options, except the Sink's own (Destination.Tags and .Priorities),
	// which Open validates. An error it returns fails that task only,
	// and is shown to the operator in `kapacitor show`, so it must name
	// the bad option and never contain a webhook URL. *OptionError is the
	// expected error type.
	Open(Destination) (Publisher, error)
	// LoadState returns the alert state a node saved with its last Flush;
	// found is false when it saved none. An error starts the node from OK.
	LoadState(taskID, nodeID string) (state NodeState, found bool, err error)
}

// NodeTracker is a Sink told which nodes are connected: a Handler whose
// Sink implements it calls NodeConnected in Init, just before it loads the
// node's state (LoadState), and NodeDisconnected when the connection of a
// node it told of ends (Close, after its last Flush). NodeConnected may
// wait: the daemon's Sink holds it while it resolves the incidents of the
// node's task as deleted, so that the node then loads the state left
// after that (see squadcast.Sender.ResolveTask).
type NodeTracker interface {
	NodeConnected(taskID, nodeID string)
	NodeDisconnected(taskID, nodeID string)
}

// Destination says where a task's events go, and how the Sink renders
// them, as given by its options. Exactly one of Endpoint and URL is set;
// Format may be empty for the default.
type Destination struct {
	// Endpoint is the name of a configured endpoint (option .endpoint), "default" unless set.
	Endpoint string
	// URL is an inline webhook URL (option .url). It is a secret: never log or print it.
	URL string
	// Format is the payload format (option .format): "kapacitor" or "incident-webhook".
	Format string
	// Tags are the task's .tag(key, value) calls, in the order given,
	// each its key and value as written; nil without any.
	// Priorities are its .priority(level, priority) calls, in the order
	// given, each its level and priority as written; nil without any.
	// These options are the Sink's (they set fields of its payload): udf
	// hands them over unchecked, and the Sink validates them in Open,
	// refusing them with an *OptionError naming .tag or .priority.
	Tags, Priorities [][2]string
}

// Publisher takes the events of one task node.
//
// Publish must return quickly: it is called on the goroutine that reads
// Kapacitor's connection, so it may only enqueue (never wait on the
// network). An error is logged by the caller and counted; the event is
// then lost, so Publish fails only when it must.
//
// Flush is called before the connection waits for more input: when it
// returns nil, the events published so far and change (nil when the
// state did not change) are durable, written together when they can be
// (one sync to disk for both), the events never after the state. (One
// flush per read burst, not per event, keeps the hot path fast; a crash
// can only lose what Kapacitor sent and the daemon had not yet read, and
// may repeat an event but never lose one.) From the first Flush on (Init
// makes one, with nothing to write), a durable Publisher may hold the
// events it is given until the next Flush, to write them with the state.
type Publisher interface {
	Publish(Event) error
	Flush(change *StateChange) error
}

// SavedGroup is the saved alert state of one alerting group: one whose
// incident is open, i.e. whose last event was not OK (an OK group is not
// saved: absent is OK).
type SavedGroup struct {
	// Group is Kapacitor's group key ("" without groupBy).
	Group string
	// Level is INFO, WARNING or CRITICAL: that of the group's last event
	// (its level may differ while .flapping() holds events back).
	Level Level
	// FirstTriggered and LastTriggered are point times (ns): when the
	// group left OK, and the time of its last event.
	FirstTriggered int64
	LastTriggered  int64
	// ID is the alert id of the group's last event.
	ID string
}

// NodeState is the saved alert state of one task node.
type NodeState struct {
	// AsOf is the newest point time (ns) the state reflects.
	AsOf int64
	// Groups are the node's alerting groups.
	Groups []SavedGroup
	// Options are the node's options as its StateChange saved them
	// (opaque; see ResolveGone); nil when none were saved.
	Options []byte
}

// StateChange is the changes of one node's alert state since its last
// Flush: the groups that alert now, and those that are OK again.
type StateChange struct {
	TaskID, NodeID string
	// AsOf is the newest point time (ns) the state reflects.
	AsOf int64
	// Put holds the changed groups that alert; Delete names the changed
	// groups that are OK again.
	Put    []SavedGroup
	Delete []string
	// Options, when not nil, are the node's options, to save with its
	// state (opaque; see ResolveGone): the first change of each
	// connection gives them, unless the saved ones are the same.
	Options []byte
}

// stateChange takes the changes of the groups in h.dirty.
func (h *Handler) stateChange() *StateChange {
	c := &StateChange{TaskID: h.taskID, NodeID: h.nodeID, AsOf: h.asOf}
	if !h.optionsSaved {
		c.Options = h.options
	}
	for g := range h.dirty {
		// A group is saved at its incident's level (see incidentLevel):
		// one kept at OK with its incident closed (for its .flapping()
		// history) is saved as absent, as only alerting groups are.
		if st, ok := h.groups[g]; ok && h.incidentLevel(st) != OK {
			c.Put = append(c.Put, SavedGroup{Group: g, Level: h.incidentLevel(st),
				FirstTriggered: st.firstTriggered, LastTriggered: st.lastTriggered, ID: st.alertID()})
		} else {
			c.Delete = append(c.Delete, g)
		}
	}
	return c
}
