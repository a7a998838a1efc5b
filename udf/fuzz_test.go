package udf

import (
	"bytes"
	"io"
	"testing"

	"github.com/influxdata/kapacitor/udf/agent"
)

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
