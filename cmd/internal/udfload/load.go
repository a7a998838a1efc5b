package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/influxdata/kapacitor/udf/agent"
)

// Values of usage_idle at the two levels the load uses: OK evaluates all
// three level expressions (the most work on the no-change path), CRITICAL
// the first only.
const (
	okIdle   = 90.0
	critIdle = 5.0
)

// levelExprs are the three level expressions of the load, those of
// tickscripts/cpu_squadcast.tick.
var levelExprs = [...]struct{ name, src string }{
	{"crit", `"usage_idle" < 10`},
	{"warn", `"usage_idle" < 25`},
	{"info", `"usage_idle" < 40`},
}

// squadcastOptions are the Init options of the @squadcast() node under load.
func squadcastOptions() []*agent.Option {
	opts := make([]*agent.Option, 0, len(levelExprs))
	for _, l := range levelExprs {
		opts = append(opts, &agent.Option{Name: l.name, Values: []*agent.OptionValue{
			{Type: agent.ValueType_STRING, Value: &agent.OptionValue_StringValue{StringValue: l.src}},
		}})
	}
	return opts
}

// load describes a stream of cpu points: groups hosts in turn, and one
// state change (OK ↔ CRITICAL of the point's host) every changeEvery
// points, at a position that moves within each stretch so that the changes
// spread over the hosts.
type load struct {
	groups      int
	changeEvery int // 0: no changes
	start       time.Time
}

// gen calls emit for points [0, n) with each point's host index, usage_idle
// value and time. It keeps each host's level across calls made with the
// same levels slice (nil starts every host OK).
func (l load) gen(n int, levels []bool, emit func(i, host int, idle float64, t int64)) {
	if levels == nil {
		levels = make([]bool, l.groups)
	}
	t0 := l.start.UnixNano()
	for i := range n {
		host := i % l.groups
		if l.changeEvery > 0 {
			k := i / l.changeEvery
			if i%l.changeEvery == (k*37)%l.changeEvery {
				levels[host] = !levels[host]
			}
		}
		idle := okIdle
		if levels[host] {
			idle = critIdle
		}
		emit(i, host, idle, t0+int64(i)*int64(time.Millisecond))
	}
}

// changes counts the state changes among the first n points.
func (l load) changes(n int) int {
	c := 0
	l.gen(n, nil, func(i, _ int, _ float64, _ int64) {
		if l.changeEvery > 0 && i%l.changeEvery == ((i/l.changeEvery)*37)%l.changeEvery {
			c++
		}
	})
	return c
}

func hostName(h int) string { return fmt.Sprintf("host-%07d", h) }

// point returns the point Kapacitor sends for a cpu point of a stream
// grouped by host (telegraf's cpu fields).
func point(host string, idle float64, t int64) *agent.Point {
	return &agent.Point{
		Time:            t,
		Name:            "cpu",
		Database:        "telegraf",
		RetentionPolicy: "autogen",
		Group:           "host=" + host,
		Dimensions:      []string{"host"},
		Tags:            map[string]string{"host": host, "cpu": "cpu-total"},
		FieldsDouble: map[string]float64{
			"usage_idle": idle, "usage_user": 100 - idle - 2, "usage_system": 1.5, "usage_iowait": 0.5,
		},
	}
}

// pointFrames encodes n points of l as point requests.
func (l load) pointFrames(n int) (*frames, error) {
	f := &frames{}
	names := make([]string, l.groups)
	for h := range names {
		names[h] = hostName(h)
	}
	var err error
	l.gen(n, nil, func(_ int, host int, idle float64, t int64) {
		if err == nil {
			err = f.add(&agent.Request{Message: &agent.Request_Point{Point: point(names[host], idle, t)}})
		}
	})
	return f, err
}

// lineProtocol returns n points of l as line-protocol bodies of batch lines each.
func (l load) lineProtocol(n, batch int) []string {
	var out []string
	var b strings.Builder
	lines := 0
	l.gen(n, nil, func(_ int, host int, idle float64, t int64) {
		b.WriteString("cpu,cpu=cpu-total,host=")
		b.WriteString(hostName(host))
		b.WriteString(" usage_idle=")
		b.WriteString(strconv.FormatFloat(idle, 'f', -1, 64))
		b.WriteString(",usage_user=")
		b.WriteString(strconv.FormatFloat(100-idle-2, 'f', -1, 64))
		b.WriteString(",usage_system=1.5,usage_iowait=0.5 ")
		b.WriteString(strconv.FormatInt(t, 10))
		b.WriteByte('\n')
		if lines++; lines == batch {
			out = append(out, b.String())
			b.Reset()
			lines = 0
		}
	})
	if lines > 0 {
		out = append(out, b.String())
	}
	return out
}
