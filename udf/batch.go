package udf

import (
	"errors"
	"sort"
	"time"

	"github.com/influxdata/kapacitor/udf/agent"
)

// batchBuffer holds the batch being read: its begin message and points.
type batchBuffer struct {
	begin  *agent.BeginBatch
	points []*agent.Point
}

// BeginBatch starts buffering a batch (batch handlers only).
func (h *Handler) BeginBatch(b *agent.BeginBatch) (err error) {
	defer recoverTo(&err)
	switch {
	case !h.cfg.Batch:
		return errors.New("@squadcast() takes a stream, but batch data reached it: use @squadcast_batch() in batch tasks")
	case h.opts == nil:
		return errors.New("batch received before a successful init")
	case h.batch != nil:
		return errors.New("a batch began inside another batch")
	}
	size := min(max(b.GetSize(), 0), 1<<16)
	h.batch = &batchBuffer{begin: b, points: make([]*agent.Point, 0, size)}
	return nil
}

// batchPoint adds a point to the batch being read.
func (h *Handler) batchPoint(p *agent.Point) error {
	if h.batch == nil {
		return errors.New("a point of a batch task came outside a batch")
	}
	h.batch.points = append(h.batch.points, p)
	return nil
}

// EndBatch ends the batch being read and alerts on it as the alert node's
// alertState.BufferedBatch does. The batch's level is the highest level of
// its points (the lowest with .all()), each point evaluated against the
// group's level before the batch; the event's time is the time of the first
// point at the highest level, or the batch's time (tmax) for an OK level or
// with .all(); its fields are that point's, its tags the batch's, and its
// data the batch's rows. When an event goes out, the batch is returned to be
// emitted downstream, its points carrying the fields level, message, id and
// duration; otherwise begin is nil. An empty batch sends nothing.
func (h *Handler) EndBatch(end *agent.EndBatch) (begin *agent.BeginBatch, points []*agent.Point, err error) {
	defer recoverTo(&err)
	switch {
	case !h.cfg.Batch:
		return nil, nil, errors.New("@squadcast() takes a stream, but batch data reached it: use @squadcast_batch() in batch tasks")
	case h.opts == nil:
		return nil, nil, errors.New("batch received before a successful init")
	case h.batch == nil:
		return nil, nil, errors.New("a batch ended that did not begin")
	}
	b := h.batch
	h.batch = nil
	if end.GetTmax() > h.asOf {
		h.asOf = end.GetTmax()
	}
	if len(b.points) == 0 {
		return nil, nil, nil
	}
	group := end.GetGroup()
	st, current := h.groupLevel(group)
	level, t, highestPoint := h.batchLevel(b.points, current, end.GetTmax())
	// No event when no point had a valid level (highestPoint is nil).
	var ev Event
	sent := highestPoint != nil &&
		h.alert(group, st, current, level, t, &eventSource{name: end.GetName(), tags: end.GetTags(), fields: highestPoint}, &ev)
	h.noteStale(group, end.GetName())
	if !sent {
		return nil, nil, nil
	}
	ev.Columns, ev.Values = batchRows(end.GetTags(), b.points)
	h.publish(ev, group)
	out := make([]*agent.Point, len(b.points))
	for i, p := range b.points {
		out[i] = alertPoint(p, &ev)
	}
	begin = &agent.BeginBatch{
		Name:   end.GetName(),
		Group:  group,
		Tags:   end.GetTags(),
		Size:   int64(len(out)),
		ByName: b.begin.GetByName(),
	}
	return begin, out, nil
}

// batchLevel returns a batch's level: the highest level of its points
// (the lowest with .all()), each point evaluated against the group's
// level before the batch, current; the event's time: the time of the
// first point at the highest level, or the batch's time, tmax, for an OK
// level or with .all(); and that first point at the highest level, whose
// fields the event carries (nil when no point had a valid level).
func (h *Handler) batchLevel(points []*agent.Point, current Level, tmax int64) (level Level, t int64, highestPoint *agent.Point) {
	lowest, highest := Critical, OK
	for _, p := range points {
		l, ok := h.level(p, current)
		if !ok {
			continue
		}
		lowest = min(lowest, l)
		if l > highest || highestPoint == nil {
			highest, highestPoint = l, p
		}
	}
	if highestPoint == nil {
		return OK, 0, nil
	}
	level = highest
	if h.opts.All {
		level = lowest
	}
	t = highestPoint.GetTime()
	if h.opts.All || level == OK {
		t = tmax
	}
	return level, t, highestPoint
}

// batchRows builds the rows of a batch's alert data as Kapacitor's
// BufferedBatchMessage.ToRow does: the columns are "time", then the first
// point's field names and its tags that are not batch tags, sorted; each
// point's row has its time, then for each column its field, else its tag,
// else nil.
func batchRows(batchTags map[string]string, points []*agent.Point) ([]string, [][]interface{}) {
	first := points[0]
	fields := pointFields(first)
	columns := make([]string, 1, 1+len(fields)+len(first.Tags))
	columns[0] = "time"
	for f := range fields {
		columns = append(columns, f)
	}
	for k := range first.Tags {
		if _, ok := batchTags[k]; !ok {
			columns = append(columns, k)
		}
	}
	sort.Strings(columns[1:])
	values := make([][]interface{}, len(points))
	for i, p := range points {
		row := make([]interface{}, len(columns))
		row[0] = time.Unix(0, p.Time).UTC()
		for j, c := range columns[1:] {
			if v, ok := fieldValue(p, c); ok {
				row[j+1] = v
			} else if v, ok := p.Tags[c]; ok {
				row[j+1] = v
			}
		}
		values[i] = row
	}
	return columns, values
}

// fieldValue returns a point's field by name, whatever its type.
func fieldValue(p *agent.Point, name string) (interface{}, bool) {
	if v, ok := p.FieldsDouble[name]; ok {
		return v, true
	}
	if v, ok := p.FieldsInt[name]; ok {
		return v, true
	}
	if v, ok := p.FieldsString[name]; ok {
		return v, true
	}
	if v, ok := p.FieldsBool[name]; ok {
		return v, true
	}
	return nil, false
}
