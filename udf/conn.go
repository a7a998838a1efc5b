package udf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/influxdata/kapacitor/udf/agent"
	"google.golang.org/protobuf/proto"
)

// DefaultMaxFrame is the largest request frame a connection accepts.
const DefaultMaxFrame = 16 << 20

// conn speaks Kapacitor's UDF protocol on one connection: varint-length
// framed protobuf Requests in, Responses out (udf/agent's udf.proto). One
// goroutine reads, dispatches to the Handler and writes, so responses keep
// their order without channels; writes are flushed whenever no more input
// is buffered, which answers keepalives at once and batches the rest.
type conn struct {
	h        *Handler
	src      *source
	r        *bufio.Reader
	w        *bufio.Writer
	maxFrame int

	in  []byte
	out []byte
	req agent.Request
	// points decodes Point requests without allocating; pointReq wraps
	// its points for dispatch.
	points   pointDecoder
	pointReq agent.Request_Point
	// dirtyAfter is the handler's count of changed groups after the last
	// flush: 0, unless that flush failed (see flushDue).
	dirtyAfter int
}

func newConn(rw io.ReadWriter, h *Handler, maxFrame int) *conn {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	src := newSource(rw)
	return &conn{
		h:        h,
		src:      src,
		r:        bufio.NewReaderSize(src, 64<<10),
		w:        bufio.NewWriterSize(rw, 64<<10),
		maxFrame: maxFrame,
	}
}

// serve runs until the peer closes the connection (nil) or a request fails
// (the error, which is also sent to Kapacitor as an ErrorResponse).
func (c *conn) serve() error {
	for {
		idle := c.r.Buffered() == 0 && !c.src.hasPending()
		if idle || c.h.flushDue(c.dirtyAfter) {
			// About to wait for input (or the burst is large): resolve
			// the groups silent for .resolveStale() (only when idle: never
			// inside a burst), make this burst's events durable and send
			// its responses. Input that arrives meanwhile is read ahead,
			// and handled after.
			if idle {
				c.h.ResolveStale()
			}
			if c.h.flushPending() {
				c.src.during(c.h.Flush)
			}
			c.dirtyAfter = len(c.h.dirty)
			if err := c.w.Flush(); err != nil {
				return fmt.Errorf("write: %w", err)
			}
			if idle && c.awaitStale() {
				continue
			}
		}
		if err := c.read(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return c.fail(err)
		}
		res, err := c.dispatch()
		if err != nil {
			return c.fail(err)
		}
		if res != nil {
			if err := c.write(res); err != nil {
				return fmt.Errorf("write: %w", err)
			}
		}
	}
}

// awaitStale waits for input, at a frame boundary, until the handler's
// next .resolveStale() deadline at the latest, on the connection's read
// deadline; it reports whether the deadline came first (the loop then
// resolves and flushes before it waits again). Without a deadline to
// keep, or on a connection without read deadlines, it returns false at
// once and read waits as before. A read error is left for read to meet.
func (c *conn) awaitStale() (woke bool) {
	wait, ok := c.h.StaleWait()
	if !ok || c.src.deadline == nil || c.src.hasPending() {
		return false
	}
	// A deadline already past fails a read without reading, even with
	// input waiting: give waiting input (a keepalive) a chance to come
	// first between two sweeps of a burst of silent groups.
	if err := c.src.deadline(time.Now().Add(max(wait, time.Millisecond))); err != nil {
		return false
	}
	_, err := c.r.Peek(1)
	if derr := c.src.deadline(time.Time{}); derr != nil {
		c.src.err = derr // read meets it
	}
	return errors.Is(err, os.ErrDeadlineExceeded)
}

// fail tells Kapacitor why the connection ends, as the agent library does.
func (c *conn) fail(err error) error {
	_ = c.write(&agent.Response{Message: &agent.Response_Error{Error: &agent.ErrorResponse{Error: err.Error()}}})
	_ = c.w.Flush()
	return err
}

// read reads one frame into c.req. A clean EOF between frames is io.EOF.
func (c *conn) read() error {
	size, err := binary.ReadUvarint(c.r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return io.EOF
		}
		return fmt.Errorf("read frame length: %w", err)
	}
	if size > uint64(c.maxFrame) {
		return fmt.Errorf("frame of %d bytes exceeds the limit of %d bytes", size, c.maxFrame)
	}
	if cap(c.in) < int(size) {
		c.in = make([]byte, size)
	}
	b := c.in[:size]
	if _, err := io.ReadFull(c.r, b); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("connection closed inside a frame of %d bytes", size)
		}
		return fmt.Errorf("read frame: %w", err)
	}
	if p, ok := c.points.decode(b); ok {
		c.pointReq.Point = p
		c.req.Message = &c.pointReq
		return nil
	}
	if err := proto.Unmarshal(b, &c.req); err != nil {
		return fmt.Errorf("decode request: %w", err)
	}
	return nil
}

func (c *conn) write(res *agent.Response) error {
	var err error
	c.out, err = proto.MarshalOptions{}.MarshalAppend(c.out[:0], res)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	var hdr [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(hdr[:], uint64(len(c.out)))
	if _, err := c.w.Write(hdr[:n]); err != nil {
		return err
	}
	_, err = c.w.Write(c.out)
	return err
}

// dispatch hands the request to the handler and returns the response to send, if any.
func (c *conn) dispatch() (*agent.Response, error) {
	switch m := c.req.Message.(type) {
	case *agent.Request_Point:
		p, err := c.h.Point(m.Point)
		if c.h.cfg.Batch {
			// A batch handler keeps every point of the batch until its end.
			c.points.release()
		}
		if err != nil || p == nil {
			return nil, err
		}
		// The point sent back, and the event, share the request's maps.
		c.points.release()
		return &agent.Response{Message: &agent.Response_Point{Point: p}}, nil
	case *agent.Request_Keepalive:
		return &agent.Response{Message: &agent.Response_Keepalive{
			Keepalive: &agent.KeepaliveResponse{Time: m.Keepalive.GetTime()},
		}}, nil
	case *agent.Request_Info:
		info, err := c.h.Info()
		return &agent.Response{Message: &agent.Response_Info{Info: info}}, err
	case *agent.Request_Init:
		init, err := c.h.Init(m.Init)
		return &agent.Response{Message: &agent.Response_Init{Init: init}}, err
	case *agent.Request_Snapshot:
		snap, err := c.h.Snapshot()
		return &agent.Response{Message: &agent.Response_Snapshot{Snapshot: snap}}, err
	case *agent.Request_Restore:
		res, err := c.h.Restore(m.Restore)
		return &agent.Response{Message: &agent.Response_Restore{Restore: res}}, err
	case *agent.Request_Begin:
		return nil, c.h.BeginBatch(m.Begin)
	case *agent.Request_End:
		begin, points, err := c.h.EndBatch(m.End)
		if err != nil || begin == nil {
			return nil, err
		}
		if err := c.write(&agent.Response{Message: &agent.Response_Begin{Begin: begin}}); err != nil {
			return nil, fmt.Errorf("write: %w", err)
		}
		for _, p := range points {
			if err := c.write(&agent.Response{Message: &agent.Response_Point{Point: p}}); err != nil {
				return nil, fmt.Errorf("write: %w", err)
			}
		}
		return &agent.Response{Message: &agent.Response_End{End: &agent.EndBatch{
			Name: m.End.GetName(), Group: m.End.GetGroup(), Tmax: m.End.GetTmax(), Tags: m.End.GetTags(),
		}}}, nil
	case nil:
		return nil, errors.New("empty request")
	default:
		return nil, fmt.Errorf("unknown request %T", m)
	}
}
