package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/influxdata/kapacitor/udf/agent"
	"google.golang.org/protobuf/proto"
)

// readFrame reads one frame and decodes it into msg, as Kapacitor reads a
// UDF's responses (agent.ReadMessage).
func readFrame(r *bufio.Reader, buf *[]byte, msg proto.Message) error {
	return agent.ReadMessage(buf, r, msg)
}

// frames is a run of pre-encoded point requests. Kapacitor encodes each
// point as it sends it; encoding them ahead keeps the driver's own CPU use
// low, so that on a small machine the figures are the UDF's, not the
// driver's. The bytes on the wire and the write pattern are Kapacitor's.
type frames struct {
	data []byte
	// ends[i] is the end offset of frame i in data; a frame's header ends
	// at hdr[i].
	ends, hdr []int
}

func (f *frames) add(msg proto.Message) error {
	data, err := proto.Marshal(msg)
	if err != nil {
		return fmt.Errorf("encode %T: %w", msg, err)
	}
	f.data = binary.AppendUvarint(f.data, uint64(len(data)))
	f.hdr = append(f.hdr, len(f.data))
	f.data = append(f.data, data...)
	f.ends = append(f.ends, len(f.data))
	return nil
}

func (f *frames) len() int { return len(f.ends) }

// frame returns frame i's length header and message.
func (f *frames) frame(i int) (hdr, msg []byte) {
	start := 0
	if i > 0 {
		start = f.ends[i-1]
	}
	return f.data[start:f.hdr[i]], f.data[f.hdr[i]:f.ends[i]]
}

// client is Kapacitor's side of one UDF connection: one task node. It
// writes requests as Kapacitor's udf.Server does (agent.WriteMessage on
// the unbuffered socket: one write for the length, one for the message)
// and reads responses on a goroutine of its own.
type client struct {
	conn net.Conn

	mu        sync.Mutex
	waiters   map[int64]chan struct{} // keepalive time → closed on its response
	initDone  chan *agent.InitResponse
	points    int64 // point responses read
	err       error // the first error response or read error
	readerEnd chan struct{}
}

// dial connects to a UDF socket and starts reading its responses.
func dial(socket string) (*client, error) {
	conn, err := net.DialTimeout("unix", socket, 10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("dial the UDF socket: %w", err)
	}
	c := &client{conn: conn, waiters: make(map[int64]chan struct{}), initDone: make(chan *agent.InitResponse, 1), readerEnd: make(chan struct{})}
	go c.readLoop()
	return c, nil
}

func (c *client) readLoop() {
	defer close(c.readerEnd)
	r := bufio.NewReader(c.conn)
	var buf []byte
	for {
		res := &agent.Response{}
		if err := readFrame(r, &buf, res); err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				c.fail(fmt.Errorf("read a response: %w", err))
			}
			return
		}
		switch m := res.Message.(type) {
		case *agent.Response_Init:
			c.initDone <- m.Init
		case *agent.Response_Keepalive:
			c.mu.Lock()
			if w, ok := c.waiters[m.Keepalive.GetTime()]; ok {
				close(w)
				delete(c.waiters, m.Keepalive.GetTime())
			}
			c.mu.Unlock()
		case *agent.Response_Point:
			c.mu.Lock()
			c.points++
			c.mu.Unlock()
		case *agent.Response_Error:
			c.fail(fmt.Errorf("the UDF answered an error: %s", m.Error.GetError()))
			return
		}
	}
}

func (c *client) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
	for t, w := range c.waiters {
		close(w)
		delete(c.waiters, t)
	}
}

// Err returns the first error the connection saw.
func (c *client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Points returns how many points the UDF has sent back.
func (c *client) Points() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.points
}

// send writes one request as Kapacitor does.
func (c *client) send(req *agent.Request) error {
	if err := agent.WriteMessage(req, c.conn); err != nil {
		return fmt.Errorf("write a request: %w", err)
	}
	return nil
}

// init sends Init with the options and waits for a successful answer.
func (c *client) init(taskID string, opts []*agent.Option) error {
	err := c.send(&agent.Request{Message: &agent.Request_Init{Init: &agent.InitRequest{TaskID: taskID, NodeID: "udf1", Options: opts}}})
	if err != nil {
		return err
	}
	select {
	case res := <-c.initDone:
		if !res.GetSuccess() {
			return fmt.Errorf("init failed: %s", res.GetError())
		}
		return nil
	case <-c.readerEnd:
		return fmt.Errorf("connection ended before init was answered: %v", c.Err())
	case <-time.After(30 * time.Second):
		return errors.New("no answer to init within 30s")
	}
}

// keepalive sends a keepalive request stamped t and returns a channel closed
// when its answer arrives (or the connection fails). A UDF answers requests
// in order, so the answer means every request before it was handled.
func (c *client) keepalive(t int64) (<-chan struct{}, error) {
	w := make(chan struct{})
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, c.err
	}
	c.waiters[t] = w
	c.mu.Unlock()
	return w, c.send(&agent.Request{Message: &agent.Request_Keepalive{Keepalive: &agent.KeepaliveRequest{Time: t}}})
}

// sync sends a keepalive and waits for its answer.
func (c *client) sync(timeout time.Duration) error {
	w, err := c.keepalive(time.Now().UnixNano())
	if err != nil {
		return err
	}
	select {
	case <-w:
		return c.Err()
	case <-time.After(timeout):
		return fmt.Errorf("no keepalive answer within %s", timeout)
	}
}

// writeFrames writes frames [from, to) as Kapacitor writes points: two
// writes per point, no buffering.
func (c *client) writeFrames(f *frames, from, to int) error {
	for i := from; i < to; i++ {
		hdr, msg := f.frame(i)
		if _, err := c.conn.Write(hdr); err != nil {
			return fmt.Errorf("write a point: %w", err)
		}
		if _, err := c.conn.Write(msg); err != nil {
			return fmt.Errorf("write a point: %w", err)
		}
	}
	return nil
}

// close ends the connection as Kapacitor does when a task stops.
func (c *client) close() {
	c.conn.Close()
	<-c.readerEnd
}
