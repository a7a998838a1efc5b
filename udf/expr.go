package udf

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

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
	scope *stateful.Scope
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
	return &Expr{src: src, expr: se, refs: refs, scope: scope}, nil
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
	for _, name := range e.refs {
		if name == "time" {
			e.scope.Set("time", time.Unix(0, p.Time).Local())
			continue
		}
		v, isField := fieldValue(p, name)
		if tv, isTag := p.Tags[name]; isTag {
			if isField {
				return false, fmt.Errorf("cannot have field and tags with same name %q", name)
			}
			e.scope.Set(name, tv)
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

// fieldValue looks a field up in the point's typed field maps.
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
