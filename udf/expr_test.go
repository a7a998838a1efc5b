package udf

import (
	"testing"
	"time"

	"github.com/influxdata/kapacitor/udf/agent"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestExprEval(t *testing.T) {
	p := &agent.Point{
		Time:         time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano(),
		Tags:         map[string]string{"host": "db1", "dup": "t"},
		FieldsDouble: map[string]float64{"usage_idle": 5, "dup": 1},
		FieldsInt:    map[string]int64{"load": 7},
		FieldsString: map[string]string{"status": "down"},
		FieldsBool:   map[string]bool{"up": false},
	}
	tests := []struct {
		expr    string
		want    bool
		wantErr string
	}{
		{expr: `"usage_idle" < 10`, want: true},
		{expr: `"usage_idle" > 10`, want: false},
		{expr: `"load" >= 7 AND "status" == 'down'`, want: true},
		{expr: `"host" =~ /^db/`, want: true},
		{expr: `!"up"`, want: true},
		{expr: `hour("time") == 3`, want: true},
		{expr: `"missing" > 1`, wantErr: "missing"},
		{expr: `isPresent("missing")`, want: false},
		{expr: `isPresent("usage_idle")`, want: true},
		{expr: `"dup" == 1`, wantErr: `cannot have field and tags with same name "dup"`},
		{expr: `"status" + 1`, wantErr: "mismatched type"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			e, err := CompileExpr(tt.expr)
			require.NoError(t, err)
			got, err := e.EvalBool(p)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}
