package udf

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/influxdata/kapacitor/tick/ast"
	"github.com/influxdata/kapacitor/tick/stateful"
	"github.com/influxdata/kapacitor/udf/agent"
)

// Expr is a compiled level expression in Kapacitor's lambda syntax, evaluated
// exactly as the alert node evaluates its crit/warn/info lambdas (kapacitor
// expr.go EvalPredicate): fields first, then tags (a name in both is an
// error), "time" is the point's time, and a name in neither is
// ast.MissingValue.
//
// An Expr holds the state of stateful functions and a reusable scope, so it
// must not be shared between goroutines.
type Expr struct {
	src   string
	expr  stateful.Expression
	refs  []string
	boxes []valueBox // boxes[i] holds the value of refs[i]
	scope *stateful.Scope
}

// valueBox hands the scope a point's value without allocating: Go boxes a
// float64, int64, string, bool or time.Time put into an interface in a new
// allocation, three per point for three level expressions. A valueBox
// holds one interface per kind, made once, whose data word points at the
// box's own field of that kind; EvalBool overwrites the field for each
// point, and the interface reads the new value.
//
// This is sound because nothing keeps these interfaces beyond one
// evaluation: the scope is the Expr's own, set again before every
// evaluation, and Kapacitor's evaluator and stateful functions read values
// out of the interfaces (type switches, assertions) and keep no interface.
// A valueBox must not move once its interfaces are made: boxes are
// allocated once per Expr and never copied.
type valueBox struct {
	f  float64
	i  int64
	s  string
	b  bool
	t  time.Time
	fv any
	iv any
	sv any
	bv any
	tv any
}

func (b *valueBox) init() {
	b.fv, b.iv, b.sv, b.bv, b.tv = boxAt(&b.f), boxAt(&b.i), boxAt(&b.s), boxAt(&b.b), boxAt(&b.t)
}

// boxAt returns an interface of dynamic type T whose value is read from
// *p, now and after *p changes. T must not be pointer-shaped (it is
// float64, int64, string, bool or time.Time here), so the interface's
// second word is a pointer to the value.
func boxAt[T any](p *T) any {
	var v any = *new(T)
	(*[2]unsafe.Pointer)(unsafe.Pointer(&v))[1] = unsafe.Pointer(p)
	return v
}

// CompileExpr parses src, a lambda expression without the "lambda:" prefix,
// e.g. `"usage_idle" < 10 AND "host" != 'db1'`.
func CompileExpr(src string) (*Expr, error) {
	if strings.TrimSpace(src) == "" {
		return nil, fmt.Errorf("empty expression")
	}
	if err := checkLexable(src); err != nil {
		return nil, err
	}
	lambda, err := ast.ParseLambda(src)
	if err != nil {
		return nil, fmt.Errorf("parse error: %w", err)
	}
	se, err := stateful.NewExpression(lambda.Expression)
	if err != nil {
		return nil, fmt.Errorf("compile error: %w", err)
	}
	refs := ast.FindReferenceVariables(lambda.Expression)
	if len(refs) == 0 {
		return nil, fmt.Errorf("the expression references no field or tag (quote names with double quotes: \"usage_idle\" < 10)")
	}
	scope := stateful.NewScope()
	boxes := make([]valueBox, len(refs))
	for i := range boxes {
		boxes[i].init()
	}
	return &Expr{src: src, expr: se, refs: refs, boxes: boxes, scope: scope}, nil
}

// checkLexable rejects the input that crashes Kapacitor's TICK lexer
// (tick/ast lex.go): its lexer runs in a goroutine of its own, so its panic
// would end the whole daemon, beyond any recover. In lexToken, a '/' followed
// by a multi-byte rune takes the position before the start of the input
// (peek and backup undo the width of the wrong rune), so a '/' may not be
// followed by a non-ASCII byte anywhere. Kapacitor's own TICKscript parser
// has the same bug: kapacitord crashes on `=~ /é/` in a script.
func checkLexable(src string) error {
	if !utf8.ValidString(src) {
		return fmt.Errorf("the expression is not valid UTF-8")
	}
	for i := 0; i+1 < len(src); i++ {
		if src[i] == '/' && src[i+1] >= utf8.RuneSelf {
			return fmt.Errorf("a '/' followed by a non-ASCII character (at byte %d) crashes Kapacitor's expression lexer; "+
				"in a regex, write the character as an escape such as \\x{e9}", i)
		}
	}
	return nil
}

// String returns the expression's source.
func (e *Expr) String() string { return e.src }

// EvalBool evaluates the expression against a point.
func (e *Expr) EvalBool(p *agent.Point) (bool, error) {
	for i, name := range e.refs {
		b := &e.boxes[i]
		if name == "time" {
			b.t = time.Unix(0, p.Time).Local()
			e.scope.Set("time", b.tv)
			continue
		}
		v, isField := b.field(p, name)
		if tv, isTag := p.Tags[name]; isTag {
			if isField {
				return false, fmt.Errorf("cannot have field and tags with same name %q", name)
			}
			b.s = tv
			e.scope.Set(name, b.sv)
			continue
		}
		if isField {
			e.scope.Set(name, v)
			continue
		}
		e.scope.Set(name, ast.MissingValue)
	}
	// Type checks function signatures before evaluation, as the alert node does.
	if _, err := e.expr.Type(e.scope); err != nil {
		return false, err
	}
	return e.expr.EvalBool(e.scope)
}

// field looks a field up in the point's typed field maps and returns its
// value boxed in b.
func (b *valueBox) field(p *agent.Point, name string) (interface{}, bool) {
	if v, ok := p.FieldsDouble[name]; ok {
		b.f = v
		return b.fv, true
	}
	if v, ok := p.FieldsInt[name]; ok {
		b.i = v
		return b.iv, true
	}
	if v, ok := p.FieldsString[name]; ok {
		b.s = v
		return b.sv, true
	}
	if v, ok := p.FieldsBool[name]; ok {
		b.b = v
		return b.bv, true
	}
	return nil, false
}
