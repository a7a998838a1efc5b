package udf

import (
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/influxdata/kapacitor/tick/ast"
	"github.com/influxdata/kapacitor/tick/stateful"
	"github.com/influxdata/kapacitor/udf/agent"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// plainExpr evaluates an expression as Expr did before valueBox: every
// value put into the scope in a new interface. It is the reference the
// reused boxes are checked against.
type plainExpr struct {
	expr  stateful.Expression
	refs  []string
	scope *stateful.Scope
}

func newPlainExpr(t *testing.T, src string) *plainExpr {
	lambda, err := ast.ParseLambda(src)
	require.NoError(t, err)
	se, err := stateful.NewExpression(lambda.Expression)
	require.NoError(t, err)
	return &plainExpr{expr: se, refs: ast.FindReferenceVariables(lambda.Expression), scope: stateful.NewScope()}
}

func (e *plainExpr) evalBool(p *agent.Point) (bool, error) {
	for _, name := range e.refs {
		if name == "time" {
			e.scope.Set("time", time.Unix(0, p.Time).Local())
			continue
		}
		var v interface{}
		isField := true
		if f, ok := p.FieldsDouble[name]; ok {
			v = f
		} else if i, ok := p.FieldsInt[name]; ok {
			v = i
		} else if s, ok := p.FieldsString[name]; ok {
			v = s
		} else if b, ok := p.FieldsBool[name]; ok {
			v = b
		} else {
			isField = false
		}
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
	if _, err := e.expr.Type(e.scope); err != nil {
		return false, err
	}
	return e.expr.EvalBool(e.scope)
}

// TestExprBoxesFollowValues evaluates expressions over a random sequence of
// points whose values, and the kinds of their values, change from point to
// point, with one Expr (reusing its boxes) and with the plain reference
// evaluator: results and errors must be the same at every point, stateful
// functions included.
func TestExprBoxesFollowValues(t *testing.T) {
	exprs := []string{
		`"v" < 10`,
		`"v" > 2.5 AND "w" != 'x'`,
		`"v" == "u"`,
		`sigma("v") > 1.5`,
		`count() > 3 AND "v" >= 0`,
		`spread("v") > 20`,
		`"s" =~ /^a/ OR "b"`,
		`isPresent("v") AND "v" < 50`,
		`strLength("s") > 2`,
		`hour("time") >= 0 AND "v" != 7`,
		`"w" == 'x'`,
	}
	rng := rand.New(rand.NewSource(1))
	strs := []string{"a", "abc", "x", "bcd", ""}
	points := make([]*agent.Point, 400)
	for i := range points {
		p := &agent.Point{Time: int64(i) * int64(time.Minute), Tags: map[string]string{}}
		switch rng.Intn(5) { // v: a float, an int, a string, a bool, or missing
		case 0, 1:
			p.FieldsDouble = map[string]float64{"v": float64(rng.Intn(100)) / 4}
		case 2:
			p.FieldsInt = map[string]int64{"v": int64(rng.Intn(40))}
		case 3:
			p.FieldsString = map[string]string{"v": strs[rng.Intn(len(strs))]}
		}
		if rng.Intn(2) == 0 {
			if p.FieldsDouble == nil {
				p.FieldsDouble = map[string]float64{}
			}
			p.FieldsDouble["u"] = float64(rng.Intn(30))
		}
		if rng.Intn(3) == 0 {
			p.Tags["w"] = strs[rng.Intn(len(strs))]
		} else {
			if p.FieldsString == nil {
				p.FieldsString = map[string]string{}
			}
			p.FieldsString["w"] = strs[rng.Intn(len(strs))]
		}
		if p.FieldsString == nil {
			p.FieldsString = map[string]string{}
		}
		p.FieldsString["s"] = strs[rng.Intn(len(strs))]
		p.FieldsBool = map[string]bool{"b": rng.Intn(2) == 0}
		points[i] = p
	}
	for _, src := range exprs {
		t.Run(src, func(t *testing.T) {
			e, err := CompileExpr(src)
			require.NoError(t, err)
			ref := newPlainExpr(t, src)
			trues := 0
			for i, p := range points {
				got, gotErr := e.EvalBool(p)
				want, wantErr := ref.evalBool(p)
				require.Equal(t, wantErr == nil, gotErr == nil, "point %d: error %v, reference error %v", i, gotErr, wantErr)
				if wantErr != nil {
					assert.Equal(t, wantErr.Error(), gotErr.Error(), "point %d", i)
					continue
				}
				require.Equal(t, want, got, "point %d (%v)", i, p)
				if got {
					trues++
				}
			}
			t.Logf("%d of %d points true", trues, len(points))
		})
	}
}
