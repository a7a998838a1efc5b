package udf

import (
	"bytes"
	"io"
	"testing"

	"github.com/influxdata/kapacitor/udf/agent"
)

// FuzzIncidentOptions: any .tag() and .priority() arguments either parse,
// giving a priority P1..P5 to every non-OK level, or are rejected with an
// *OptionError naming the option.
func FuzzIncidentOptions(f *testing.F) {
	f.Add("team", "db", "CRITICAL", "P2")
	f.Add("level", "x", "ok", "P1")
	f.Add("", "", "warning", "p9")
	f.Add("k\xff", "v", "Info", "P10")
	f.Fuzz(func(t *testing.T, key, value, level, priority string) {
		o, err := ParseBatchOptions([]*agent.Option{str("crit", `"v" < 1`), str2("tag", key, value), str2("priority", level, priority)})
		if err != nil {
			oe, ok := err.(*OptionError)
			if !ok || (oe.Option != "tag" && oe.Option != "priority") {
				t.Fatalf("want an *OptionError naming .tag or .priority, got %T %v", err, err)
			}
			return
		}
		if o.Tags[key] != value {
			t.Fatalf("tag %q = %q, want %q", key, o.Tags[key], value)
		}
		for l := Info; l <= Critical; l++ {
			if p := o.Priorities[l]; len(p) != 2 || p[0] != 'P' || p[1] < '1' || p[1] > '5' {
				t.Fatalf("priority of %s is %q", l, p)
			}
		}
	})
}

// FuzzParseOptions: no option value makes Init panic, and every rejection
// is an *OptionError naming an option.
func FuzzParseOptions(f *testing.F) {
	for _, s := range []string{`"usage_idle" < 10`, `"a" =~ /x/ AND "b" != 'c'`, `sigma("v") > 3`, `(`, `"x" <`, `'''q'''`, `{{ .ID }}`} {
		f.Add(s, "{{ .ID }} is {{ .Level }}")
	}
	f.Fuzz(func(t *testing.T, expr, tmpl string) {
		o, err := ParseOptions([]*agent.Option{str("crit", expr), str("message", tmpl)})
		if err != nil {
			oe, ok := err.(*OptionError)
			if !ok || oe.Option == "" {
				t.Fatalf("want an *OptionError naming an option, got %T %v", err, err)
			}
			return
		}
		// A compiled expression evaluates (or fails) without panicking.
		p := point("g", 1, map[string]float64{"v": 1, "usage_idle": 5}, map[string]string{"host": "h"})
		_, _ = o.Levels[Critical].EvalBool(p)
	})
}

// FuzzConn: any byte stream from a peer ends its connection cleanly.
func FuzzConn(f *testing.F) {
	init := frame(&testing.T{}, &agent.Request{Message: &agent.Request_Init{Init: &agent.InitRequest{Options: []*agent.Option{str("crit", `"v" > 1`)}}}})
	pt := frame(&testing.T{}, &agent.Request{Message: &agent.Request_Point{Point: &agent.Point{Name: "m", Group: "g", FieldsDouble: map[string]float64{"v": 2}}}})
	f.Add(append(append([]byte{}, init...), pt...))
	f.Add([]byte{0xff, 0xff, 0x01})
	f.Add(init[:len(init)/2])
	f.Fuzz(func(t *testing.T, data []byte) {
		rw := &pipe{r: bytes.NewReader(data)}
		c := newConn(rw, NewHandler(HandlerConfig{Sink: &recorder{}}), 1<<16)
		_ = c.serve()
	})
}

type pipe struct {
	r io.Reader
	w bytes.Buffer
}

func (p *pipe) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p *pipe) Write(b []byte) (int, error) { return p.w.Write(b) }
