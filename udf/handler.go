package udf

import (
	"bytes"
	"errors"
	"fmt"

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
	// Clock is the wall clock of .resolveStale(); nil is the system's.
	Clock Clock
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
	// options are the node's options as saved with its state (see
	// ResolveGone); optionsSaved says the saved ones are these.
	options      []byte
	optionsSaved bool

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
	// stale tracks the alerting groups' last data, with .resolveStale() only.
	stale *staleTracker
	clock Clock

	// asOf is the newest point time seen (ns); dirty holds the groups changed
	// since the last Flush; unflushed says events were published since then.
	asOf      int64
	dirty     map[string]struct{}
	unflushed bool

	// tracked says Init told the Sink (a NodeTracker) the node connected.
	tracked bool

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
	clock := cfg.Clock
	if clock == nil {
		clock = wallClock{}
	}
	return &Handler{
		cfg:    cfg,
		clock:  clock,
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
	if opts.ResolveStale > 0 {
		h.stale = newStaleTracker(opts.ResolveStale, h.clock.Now())
	}
	if t, ok := h.cfg.Sink.(NodeTracker); ok && !h.tracked {
		t.NodeConnected(h.taskID, h.nodeID)
		h.tracked = true
	}
	ns, found, err := h.cfg.Sink.LoadState(h.taskID, h.nodeID)
	if err != nil {
		h.log.Error("cannot load the saved alert state: starting from OK", zap.Error(err))
	} else if found {
		h.setGroups(ns.Groups)
		h.asOf = ns.AsOf
	}
	h.options = encodeOptions(h.cfg.Batch, r.GetOptions())
	h.optionsSaved = found && bytes.Equal(ns.Options, h.options)
	if found && !h.optionsSaved {
		h.saveOptions()
	}
	h.resetStale()
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
	return &agent.SnapshotResponse{Snapshot: encodeSnapshot(h.asOf, h.groups, h.incidentLevel)}, nil
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
	h.resetStale()
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
	h.optionsSaved = h.optionsSaved || change != nil
}

// saveOptions saves the node's options with its state at once, for a node
// that has saved state (a connection's first change would save them too,
// but the task may be deleted before it makes one).
func (h *Handler) saveOptions() {
	c := &StateChange{TaskID: h.taskID, NodeID: h.nodeID, AsOf: h.asOf, Options: h.options}
	if err := h.pub.Flush(c); err != nil {
		h.log.Warn("cannot save the node's options with its state; will retry with its next change", zap.Error(err))
		return
	}
	h.optionsSaved = true
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

// Close ends the handler when its connection ends, flushing what the last
// read burst published; then it tells a NodeTracker Sink the node is gone.
func (h *Handler) Close() {
	if h.opts != nil {
		h.Flush()
		h.log.Info("task disconnected", zap.Int("groups_alerting", len(h.groups)))
	}
	if h.tracked {
		h.tracked = false
		h.cfg.Sink.(NodeTracker).NodeDisconnected(h.taskID, h.nodeID)
	}
}

// recoverTo turns a panic in a handler method into an error that ends only
// this connection, never the daemon.
func recoverTo(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("internal error: %v", r)
	}
}
