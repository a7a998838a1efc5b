package udf

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/influxdata/kapacitor/udf/agent"
	"go.uber.org/zap"
)

// HandlerConfig is what every connection's Handler shares.
type HandlerConfig struct {
	// Sink resolves destinations, takes events and keeps the alert state.
	Sink Sink
	// Logger logs task lifecycle and errors; it must never receive a URL.
	Logger *zap.Logger
	// Hostname is the .ServerInfo.Hostname template variable.
	Hostname string
	// MaxFrame is the largest request accepted, in bytes (DefaultMaxFrame if 0).
	MaxFrame int
	// Batch makes the handlers serve @squadcast_batch(): they want and
	// provide batches, and alert on each batch as the alert node does.
	Batch bool
	// Observer, when set, hears of points, events and failed Inits.
	Observer Observer
}

// Handler handles the requests of one Kapacitor connection, i.e. one
// @squadcast() node of one task. Its methods are called from one goroutine:
// it holds the task's alert state without locks. Point only evaluates and
// enqueues; nothing in it waits on the network.
type Handler struct {
	cfg HandlerConfig
	log *zap.Logger

	taskID, nodeID string
	opts           *TaskOptions
	pub            Publisher

	rules  rules
	groups map[string]*groupState
	// prev is the level of the last event sent per alert ID (previousLevel),
	// for the IDs whose group does not keep it (see groups.go); absent is OK.
	prev map[string]Level
	// ownLens are the ID prefix lengths of the groups that keep their ID's
	// previousLevel (see owner).
	ownLens []int
	// flaps is each group's level history, with .flapping() only.
	flaps map[string]*flapState

	// asOf is the newest point time seen (ns); dirty holds the groups changed
	// since the last Flush; unflushed says events were published since then.
	asOf      int64
	dirty     map[string]struct{}
	unflushed bool

	// onInit, when set, hears of a successful Init.
	onInit func(taskID string)

	// batch is the batch being read (batch tasks); nil outside a batch.
	batch *batchBuffer

	buf bytes.Buffer
}

// NewHandler returns a Handler for one connection.
func NewHandler(cfg HandlerConfig) *Handler {
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &Handler{
		cfg:    cfg,
		log:    log,
		groups: make(map[string]*groupState),
		prev:   make(map[string]Level),
		flaps:  make(map[string]*flapState),
		dirty:  make(map[string]struct{}),
	}
}

// Info describes @squadcast(): it wants and provides a stream, with its
// options; or, for batch handlers, @squadcast_batch(), which wants and
// provides batches.
func (h *Handler) Info() (*agent.InfoResponse, error) {
	if h.cfg.Batch {
		return &agent.InfoResponse{
			Wants:    agent.EdgeType_BATCH,
			Provides: agent.EdgeType_BATCH,
			Options:  batchOptionInfo,
		}, nil
	}
	return &agent.InfoResponse{
		Wants:    agent.EdgeType_STREAM,
		Provides: agent.EdgeType_STREAM,
		Options:  optionInfo,
	}, nil
}

// Init parses the task's options. A bad option fails the task with a message
// naming it (Kapacitor shows it in `kapacitor show`); the daemon serves on.
func (h *Handler) Init(r *agent.InitRequest) (resp *agent.InitResponse, err error) {
	defer recoverTo(&err)
	h.taskID, h.nodeID = r.GetTaskID(), r.GetNodeID()
	h.log = h.log.With(zap.String("task", h.taskID), zap.String("node", h.nodeID))
	fail := func(err error) (*agent.InitResponse, error) {
		h.log.Warn("task rejected: bad option", zap.Error(err))
		if h.cfg.Observer != nil {
			h.cfg.Observer.InitFailed()
		}
		return &agent.InitResponse{Success: false, Error: err.Error()}, nil
	}
	parse := ParseOptions
	if h.cfg.Batch {
		parse = ParseBatchOptions
	}
	opts, err := parse(r.GetOptions())
	if err != nil {
		return fail(err)
	}
	pub, err := h.cfg.Sink.Open(opts.Destination)
	if err != nil {
		return fail(err)
	}
	h.opts, h.pub = opts, pub
	// From now on the publisher may write this node's events at Flush,
	// with its state: one transaction per burst.
	if err := pub.Flush(nil); err != nil {
		h.log.Warn("cannot flush the new publisher", zap.Error(err))
	}
	h.rules = rulesOf(opts)
	h.rules.batch = h.cfg.Batch
	ns, found, err := h.cfg.Sink.LoadState(h.taskID, h.nodeID)
	if err != nil {
		h.log.Error("cannot load the saved alert state: starting from OK", zap.Error(err))
	} else if found {
		h.setGroups(ns.Groups)
		h.asOf = ns.AsOf
	}
	if h.onInit != nil {
		h.onInit(h.taskID)
	}
	h.log.Info("task connected", zap.Int("groups_alerting", len(h.groups)))
	return &agent.InitResponse{Success: true}, nil
}

// Snapshot returns the alert state for Kapacitor to keep (it asks every
// [task] snapshot-interval and restores it when the task starts again).
func (h *Handler) Snapshot() (resp *agent.SnapshotResponse, err error) {
	defer recoverTo(&err)
	if h.opts == nil {
		return nil, errors.New("snapshot requested before a successful init")
	}
	return &agent.SnapshotResponse{Snapshot: encodeSnapshot(h.asOf, h.groups)}, nil
}

// Restore takes the state Kapacitor kept, unless the state saved in the data
// dir is newer (it is written with every event; a snapshot may be a minute old).
func (h *Handler) Restore(r *agent.RestoreRequest) (resp *agent.RestoreResponse, err error) {
	defer recoverTo(&err)
	if h.opts == nil {
		return nil, errors.New("restore received before a successful init")
	}
	asOf, groups, err := decodeSnapshot(r.GetSnapshot())
	if err != nil {
		// A failed Restore fails the task: start from the saved state instead.
		h.log.Warn("ignoring Kapacitor's snapshot", zap.Error(err))
		return &agent.RestoreResponse{Success: true}, nil
	}
	if asOf <= h.asOf {
		h.log.Info("kept the saved alert state: Kapacitor's snapshot is older",
			zap.Int64("snapshot_as_of", asOf), zap.Int64("saved_as_of", h.asOf))
		return &agent.RestoreResponse{Success: true}, nil
	}
	for g := range h.groups {
		h.dirty[g] = struct{}{}
	}
	h.setGroups(groups)
	for g := range h.groups {
		h.dirty[g] = struct{}{}
	}
	h.asOf = asOf
	h.unflushed = true
	h.log.Info("restored alert state from Kapacitor's snapshot", zap.Int("groups_alerting", len(h.groups)))
	return &agent.RestoreResponse{Success: true}, nil
}

// Flush makes the events published so far durable, with the changed
// alert state, in one transaction when the publisher can (see Publisher),
// so that a crash can repeat an event but never lose one. It is called
// before the connection waits for more input; it costs nothing when
// nothing changed. A failure is logged and retried at the next Flush.
func (h *Handler) Flush() {
	if !h.unflushed && len(h.dirty) == 0 {
		return
	}
	var change *StateChange
	if len(h.dirty) > 0 {
		change = h.stateChange()
	}
	if err := h.pub.Flush(change); err != nil {
		h.log.Error("cannot make alert events and state durable; will retry", zap.Error(err))
		return
	}
	h.clearDirty()
	h.unflushed = false
}

// maxKeptDirty bounds the size of a dirty set that Flush clears for reuse:
// a larger one, left by a burst of changes, is dropped, as clear keeps a
// map's capacity (a burst that changed a million groups would otherwise
// keep tens of megabytes).
const maxKeptDirty = 4096

func (h *Handler) clearDirty() {
	if len(h.dirty) > maxKeptDirty {
		h.dirty = make(map[string]struct{})
		return
	}
	clear(h.dirty)
}

// Point evaluates the point's level for its group and, when the alert node
// would send an event, publishes it and returns the point to emit downstream
// (nil when there is no event). For a stream, when it returns nil, Point
// keeps nothing of p (neither p nor its maps or slices): the connection
// reuses them for the next point. A batch handler keeps every point until
// the batch ends (the connection then never reuses them).
func (h *Handler) Point(p *agent.Point) (out *agent.Point, err error) {
	defer recoverTo(&err)
	if h.opts == nil {
		return nil, errors.New("point received before a successful init")
	}
	if h.cfg.Observer != nil {
		h.cfg.Observer.PointReceived()
	}
	if h.cfg.Batch {
		return nil, h.batchPoint(p)
	}
	if p.Time > h.asOf {
		h.asOf = p.Time
	}
	st := h.groups[p.Group]
	current := OK
	if st != nil {
		current = st.level
	}
	level, ok := h.level(p, current)
	if !ok {
		return nil, nil
	}
	if st == nil {
		if level == OK {
			// A group that has only been OK sends nothing: keep no state for it.
			return nil, nil
		}
		st = h.newGroup(p.Group)
	}
	lastTriggered := st.lastTriggered
	send := h.rules.update(st, h.flapOf(p.Group), level, p.Time)
	if level != current || st.lastTriggered != lastTriggered {
		h.dirty[p.Group] = struct{}{}
	}
	var ev Event
	if send {
		h.unflushed = true
		ev = h.event(p.Name, p.Group, st, p.Tags, pointFields(p), p.Time, level, st.duration())
	}
	if level == OK && !h.rules.flapping {
		// Recovered: an absent group is an OK one.
		h.dropGroup(p.Group, st)
	}
	if !send {
		return nil, nil
	}
	h.publish(ev, p.Group)
	return alertPoint(p, &ev), nil
}

// publish counts, logs and hands an event to the publisher; a publisher's
// refusal is logged (the event is lost) and does not fail the point.
func (h *Handler) publish(ev Event, group string) {
	if h.cfg.Observer != nil {
		h.cfg.Observer.AlertEvent(ev.Level)
	}
	if ce := h.log.Check(zap.DebugLevel, "alert event"); ce != nil {
		ce.Write(zap.String("id", LoggedID(ev.ID)), zap.Stringer("level", ev.Level), zap.Stringer("previous_level", ev.PreviousLevel),
			zap.String("group", group), zap.Duration("duration", ev.Duration))
	}
	if err := h.pub.Publish(ev); err != nil {
		h.log.Error("alert event lost: cannot enqueue it",
			zap.String("id", LoggedID(ev.ID)), zap.Stringer("level", ev.Level), zap.Error(err))
	}
}

// level returns the point's level: from its level field or tag when the task
// takes levels from points, else from the level expressions. ok is false for
// a point whose level field or tag is missing or not a level: it is skipped.
func (h *Handler) level(p *agent.Point, current Level) (Level, bool) {
	o := h.opts
	var raw string
	var found bool
	switch {
	case o.LevelField != "":
		raw, found = p.FieldsString[o.LevelField]
	case o.LevelTag != "":
		raw, found = p.Tags[o.LevelTag]
	default:
		return determineLevel(&o.Levels, &o.Resets, current, p, h.evalError), true
	}
	l, err := ParseLevel(raw)
	if !found || err != nil {
		h.log.Warn("point skipped: no valid level in it",
			zap.String("group", p.Group), zap.String("level_field", o.LevelField), zap.String("level_tag", o.LevelTag), zap.String("value", raw))
		return OK, false
	}
	return l, true
}

// Close ends the handler when its connection ends, flushing what the last
// read burst published.
func (h *Handler) Close() {
	if h.opts != nil {
		h.Flush()
		h.log.Info("task disconnected", zap.Int("groups_alerting", len(h.groups)))
	}
}

func (h *Handler) evalError(l Level, err error) {
	h.log.Debug("level expression failed; taken as false", zap.Stringer("level", l), zap.Error(err))
}

// event builds an alert event, as the alert node's event() does: for a
// stream, from the point; for a batch, from its name, group and tags and
// the fields of its highest point. The event is sent: its ID becomes the
// group's (key, state st, in h.groups), and its level the ID's previousLevel.
//
// A template that fails for this event (it passed Init's trial render, but
// this data breaks it, e.g. `{{ slice .ID 0 8 }}` on a shorter id) does not
// lose the event, as it would in the alert node: the id falls back to the
// id of the group's previous event (so that its incident still resolves),
// or else to the default id; the message and details fall back to their
// defaults. Each fallback is logged as a warning.
func (h *Handler) event(name, key string, st *groupState, tags map[string]string, fields map[string]interface{}, tns int64, level Level, d time.Duration) Event {
	group := key
	if group == "" {
		group = "nil"
	}
	t := time.Unix(0, tns).UTC()
	info := DetailsInfo{MessageInfo: MessageInfo{
		IDInfo: IDInfo{
			Name:       name,
			TaskName:   h.taskID,
			Group:      group,
			Tags:       tags,
			ServerInfo: ServerInfo{Hostname: h.cfg.Hostname},
		},
		Fields:   fields,
		Level:    level.String(),
		Time:     t,
		Duration: d,
	}}
	var err error
	if info.ID, err = render(h.opts.ID, &h.buf, &info.IDInfo); err != nil {
		lastID := st.alertID()
		info.ID = lastID
		if lastID == "" {
			info.ID, _ = render(defaultTemplates[optID], &h.buf, &info.IDInfo)
		}
		h.templateFailed(optID, group, err, "the group's previous id, else the default")
	}
	if info.Message, err = render(h.opts.Message, &h.buf, &info.MessageInfo); err != nil {
		info.Message, _ = render(defaultTemplates[optMessage], &h.buf, &info.MessageInfo)
		h.templateFailed(optMessage, group, err, "the default")
	}
	details, err := render(h.opts.Details, &h.buf, &info)
	if err != nil {
		var derr error
		if details, derr = render(defaultTemplates[optDetails], &h.buf, &info); derr != nil {
			details = info.Message
		}
		h.templateFailed(optDetails, group, err, "the default")
	}
	prev := h.prevOf(info.ID)
	h.sent(key, st, info.ID, level)
	return Event{
		TaskID:        h.taskID,
		NodeID:        h.nodeID,
		ID:            info.ID,
		Message:       info.Message,
		Details:       details,
		Time:          t,
		Duration:      d,
		Level:         level,
		PreviousLevel: prev,
		Recoverable:   !h.opts.NoRecoveries,
		Name:          name,
		Group:         group,
		Tags:          tags,
		Fields:        fields,
	}
}

// templateFailed logs a template that failed for an event.
func (h *Handler) templateFailed(option, group string, err error, fallback string) {
	h.log.Warn("template failed for this event; the event uses a fallback",
		zap.String("option", option), zap.String("group", group), zap.String("fallback", fallback), zap.Error(err))
}

// pointFields merges a point's typed field maps into one.
func pointFields(p *agent.Point) map[string]interface{} {
	f := make(map[string]interface{}, len(p.FieldsDouble)+len(p.FieldsInt)+len(p.FieldsString)+len(p.FieldsBool))
	for k, v := range p.FieldsDouble {
		f[k] = v
	}
	for k, v := range p.FieldsInt {
		f[k] = v
	}
	for k, v := range p.FieldsString {
		f[k] = v
	}
	for k, v := range p.FieldsBool {
		f[k] = v
	}
	return f
}

// SortedFieldNames returns the names of an event's fields in sorted order,
// the column order of Kapacitor's alert data.
func SortedFieldNames(fields map[string]interface{}) []string {
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// alertPoint is the point emitted downstream for an event: the original
// point with the fields level, message and id (strings) and duration (int,
// ns) set, like the alert node's levelField/messageField/idField/durationField.
// A point field of one of these names is replaced.
func alertPoint(p *agent.Point, ev *Event) *agent.Point {
	out := &agent.Point{
		Time:            p.Time,
		Name:            p.Name,
		Database:        p.Database,
		RetentionPolicy: p.RetentionPolicy,
		Group:           p.Group,
		Dimensions:      p.Dimensions,
		ByName:          p.ByName,
		Tags:            p.Tags,
		FieldsDouble:    withoutAlertFields(p.FieldsDouble, 0),
		FieldsInt:       withoutAlertFields(p.FieldsInt, 1),
		FieldsString:    withoutAlertFields(p.FieldsString, 3),
		FieldsBool:      withoutAlertFields(p.FieldsBool, 0),
	}
	out.FieldsString["level"] = ev.Level.String()
	out.FieldsString["message"] = ev.Message
	out.FieldsString["id"] = ev.ID
	out.FieldsInt["duration"] = int64(ev.Duration)
	return out
}

// withoutAlertFields copies a field map without the fields alertPoint sets,
// with room for extra more.
func withoutAlertFields[V any](m map[string]V, extra int) map[string]V {
	out := make(map[string]V, len(m)+extra)
	for k, v := range m {
		switch k {
		case "level", "message", "id", "duration":
		default:
			out[k] = v
		}
	}
	return out
}

// recoverTo turns a panic in a handler method into an error that ends only
// this connection, never the daemon.
func recoverTo(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("internal error: %v", r)
	}
}
