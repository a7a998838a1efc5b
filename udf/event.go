package udf

import (
	"fmt"
	"sort"
	"time"
	"unicode/utf8"

	"github.com/influxdata/kapacitor/udf/agent"
	"go.uber.org/zap"
)

// Event is one alert event: a level change (or, later, a re-notification)
// for one alert id, with everything a payload needs. Its fields mean what the
// same names mean in Kapacitor's alert node and its alert JSON.
type Event struct {
	// TaskID and NodeID identify the Kapacitor task and node that produced the event.
	TaskID string
	NodeID string

	ID       string
	Message  string
	Details  string
	Time     time.Time // the point's time, in UTC (a stale resolution's: see Handler.staleEvent)
	Duration time.Duration
	Level    Level
	// PreviousLevel is the level of the previous event sent for the same ID (OK for the first).
	PreviousLevel Level
	// Recoverable is false when the task suppresses recoveries.
	Recoverable bool
	// Stale, for an OK event sent because the group received no data for
	// the task's .resolveStale() duration, is that duration; 0 for every
	// other event.
	Stale time.Duration

	// Name is the measurement name; Group is Kapacitor's group ("nil" without groupBy).
	Name  string
	Group string
	// Tags and Fields are the point's; fields are float64, int64, string or bool.
	Tags   map[string]string
	Fields map[string]interface{}

	// Columns and Values, for an event of a batch task, hold the batch's
	// points as the rows of the alert's data, as the alert node's
	// BufferedBatchMessage.ToRow builds them: Columns are "time", then the
	// first point's field names and its tags that are not the batch's,
	// sorted; Values hold one row per point, its time a time.Time in UTC
	// and nil where a point lacks a column. Both are nil for a stream event
	// (whose data is its point: Tags and Fields).
	Columns []string
	Values  [][]interface{}
}

// maxLoggedID is the longest alert id a log line or an error shows in full.
const maxLoggedID = 256

// LoggedID returns id as logs and errors show it: in full up to 256 bytes,
// else its first 256 bytes (whole characters) and its length, so that an id
// built by a runaway template does not make a log line of tens of KB.
func LoggedID(id string) string {
	if len(id) <= maxLoggedID {
		return id
	}
	cut := maxLoggedID
	for cut > 0 && !utf8.RuneStart(id[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes)", id[:cut], len(id))
}

// eventData is what an event is built from.
type eventData struct {
	name string
	// key is the group key; st its state, in h.groups.
	key    string
	st     *groupState
	tags   map[string]string
	fields map[string]interface{}
	// t is the event's time (ns), d its duration.
	t     int64
	level Level
	d     time.Duration
	// stale is the .resolveStale() duration for a stale resolution, else 0:
	// its ID is then the group's last, not rendered.
	stale time.Duration
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
func (h *Handler) event(e eventData) Event {
	group := groupName(e.key)
	t := time.Unix(0, e.t).UTC()
	info := DetailsInfo{MessageInfo: MessageInfo{
		IDInfo: IDInfo{
			Name:       e.name,
			TaskName:   h.taskID,
			Group:      group,
			Tags:       e.tags,
			ServerInfo: ServerInfo{Hostname: h.cfg.Hostname},
		},
		Fields:   e.fields,
		Level:    e.level.String(),
		Time:     t,
		Duration: e.d,
		Stale:    e.stale,
	}}
	if info.ID = e.st.alertID(); e.stale == 0 || info.ID == "" {
		info.ID = h.renderID(&info.IDInfo, e.st, group)
	}
	details := h.renderText(&info, group)
	prev := h.prevOf(info.ID)
	h.sent(e.key, e.st, info.ID, e.level)
	return Event{
		TaskID:        h.taskID,
		NodeID:        h.nodeID,
		ID:            info.ID,
		Message:       info.Message,
		Details:       details,
		Time:          t,
		Duration:      e.d,
		Level:         e.level,
		PreviousLevel: prev,
		Recoverable:   !h.opts.NoRecoveries,
		Stale:         e.stale,
		Name:          e.name,
		Group:         group,
		Tags:          e.tags,
		Fields:        e.fields,
	}
}

// renderID renders the id template, falling back to the group's previous
// id, or else to the default id.
func (h *Handler) renderID(info *IDInfo, st *groupState, group string) string {
	id, err := render(h.opts.ID, &h.buf, info)
	if err == nil {
		return id
	}
	id = st.alertID()
	if id == "" {
		id, _ = render(defaultTemplates[optID], &h.buf, info)
	}
	h.templateFailed(optID, group, err, "the group's previous id, else the default")
	return id
}

// renderText renders info's message (into info) and returns its details,
// each falling back to its default.
func (h *Handler) renderText(info *DetailsInfo, group string) string {
	var err error
	if info.Message, err = render(h.opts.Message, &h.buf, &info.MessageInfo); err != nil {
		info.Message, _ = render(defaultTemplates[optMessage], &h.buf, &info.MessageInfo)
		h.templateFailed(optMessage, group, err, "the default")
	}
	details, err := render(h.opts.Details, &h.buf, info)
	if err != nil {
		var derr error
		if details, derr = render(defaultTemplates[optDetails], &h.buf, info); derr != nil {
			details = info.Message
		}
		h.templateFailed(optDetails, group, err, "the default")
	}
	return details
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

// groupName is a group key as events and templates show it: Kapacitor's
// "nil" without groupBy.
func groupName(key string) string {
	if key == "" {
		return "nil"
	}
	return key
}
