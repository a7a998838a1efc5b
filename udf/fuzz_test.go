package udf

import (
	"bytes"
	"io"
	"math"
	"strings"
	"testing"

	"github.com/influxdata/kapacitor/udf/agent"
)

// FuzzParseOptions: no option value makes Init panic, and every rejection
// is an *OptionError naming an option.
func FuzzParseOptions(f *testing.F) {
	for _, s := range []string{`"usage_idle" < 10`, `"a" =~ /x/ AND "b" != 'c'`, `sigma("v") > 3`, `(`, `"x" <`, `'''q'''`, `{{ .ID }}`} {
		f.Add(s, "{{ .ID }} is {{ .Level }}")
	}
	f.Add(`"v" > 1`, DefaultMessageTemplate)
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

// FuzzExpr: any expression compiles or is refused with an error, and a
// compiled one evaluates against any point (missing, NaN, infinite, string
// or boolean values, a name both field and tag) without panicking.
func FuzzExpr(f *testing.F) {
	for _, s := range []string{`"v" > 90`, `"v" < 10 OR "host" == 'a'`, `isPresent("x")`, `sigma("v") > 2`, `"s" =~ /^a.*$/`,
		`abs("v") > 1.5e300`, `"v" / 0 > 1`, `hour("time") > 1`, `count() > 3`, `!"b"`, `"v" + 'x' == 1`} {
		f.Add(s, "v", 95.0, "host", "a")
	}
	f.Fuzz(func(t *testing.T, src, field string, v float64, tag, tagValue string) {
		e, err := CompileExpr(src)
		if err != nil {
			if e != nil {
				t.Fatal("an error and an expression")
			}
			return
		}
		points := []*agent.Point{
			{Name: "m", Time: 1, FieldsDouble: map[string]float64{field: v}, Tags: map[string]string{tag: tagValue}},
			{Name: "m", Time: 2, FieldsString: map[string]string{field: tagValue}, FieldsBool: map[string]bool{"b": true}},
			{Name: "m", Time: 3, FieldsInt: map[string]int64{field: int64(v)}, Tags: map[string]string{field: tagValue}},
			{Name: "m", Time: 4}, // every reference missing
		}
		for _, p := range points {
			_, _ = e.EvalBool(p)
		}
	})
}

// FuzzTemplate: a template either fails Init naming its option, or renders
// an event for any point: a template that fails for a point falls back,
// and no event is lost.
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{`{{ .ID }} is {{ .Level }}`, `{{ json . }}`, `{{ index .Tags "host" }}`, `{{ with .Tags.zone }}{{ slice . 0 4 }}{{ end }}`,
		`{{ .Fields.v | printf "%.2f" }}`, `{{ range $k, $v := .Tags }}{{ $k }}={{ $v }},{{ end }}`, `{{ .Time.Unix }} {{ .Duration }}`, `{{ .ServerInfo.Hostname }}`} {
		f.Add(s, "host", "a", 95.0)
	}
	f.Fuzz(func(t *testing.T, tmpl, tag, tagValue string, v float64) {
		for _, option := range []string{"id", "message", "details"} {
			rec := &recorder{}
			h := NewHandler(HandlerConfig{Sink: rec})
			res, err := h.Init(&agent.InitRequest{TaskID: "t", NodeID: "n", Options: []*agent.Option{str("crit", `"v" > 90 OR "v" != "v"`), str(option, tmpl)}})
			if err != nil {
				t.Fatalf("init ends the connection: %v", err)
			}
			if !res.Success {
				if !strings.HasPrefix(res.Error, "option ."+option) {
					t.Fatalf("the error does not name .%s: %s", option, res.Error)
				}
				continue
			}
			p := &agent.Point{Name: "cpu", Group: tag + "=" + tagValue, Time: 1, Tags: map[string]string{tag: tagValue}, FieldsDouble: map[string]float64{"v": v, "w": math.NaN()}}
			out, err := h.Point(p)
			if err != nil {
				t.Fatalf("point: %v", err)
			}
			if (v > 90 || math.IsNaN(v)) != (out != nil) || len(rec.Events()) != map[bool]int{true: 1, false: 0}[out != nil] {
				t.Fatalf("v=%v: emitted %v, events %d", v, out != nil, len(rec.Events()))
			}
		}
	})
}
