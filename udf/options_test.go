package udf

import (
	"errors"
	"strings"
	"testing"

	"github.com/influxdata/kapacitor/udf/agent"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// str2 is an option of two string arguments.
func str2(name, a, b string) *agent.Option {
	return &agent.Option{Name: name, Values: []*agent.OptionValue{
		{Type: agent.ValueType_STRING, Value: &agent.OptionValue_StringValue{StringValue: a}},
		{Type: agent.ValueType_STRING, Value: &agent.OptionValue_StringValue{StringValue: b}},
	}}
}

// str is an option of one string argument.
func str(name, v string) *agent.Option {
	return &agent.Option{Name: name, Values: []*agent.OptionValue{{Type: agent.ValueType_STRING, Value: &agent.OptionValue_StringValue{StringValue: v}}}}
}

func TestParseOptions(t *testing.T) {
	crit := str("crit", `"usage_idle" < 10`)
	tests := []struct {
		name    string
		opts    []*agent.Option
		wantErr string // substring; "" = no error
		check   func(t *testing.T, o *TaskOptions)
	}{
		{name: "crit only", opts: []*agent.Option{crit}, check: func(t *testing.T, o *TaskOptions) {
			assert.NotNil(t, o.Levels[Critical])
			assert.Nil(t, o.Levels[Warning])
			assert.Equal(t, Destination{Endpoint: "default"}, o.Destination)
		}},
		{name: "all levels and templates", opts: []*agent.Option{
			crit, str("warn", `"usage_idle" < 20`), str("info", `"host" == 'a'`),
			str("id", "{{ .TaskName }}/{{ index .Tags \"host\" }}"), str("message", "{{ .ID }} {{ .Level }} {{ index .Fields \"value\" }}"),
			str("details", "{{ .Message }} {{ .Duration }}"),
		}, check: func(t *testing.T, o *TaskOptions) {
			for _, l := range []Level{Info, Warning, Critical} {
				assert.NotNil(t, o.Levels[l], l.String())
			}
		}},
		{name: "endpoint", opts: []*agent.Option{crit, str("endpoint", "prod"), str("format", "incident-webhook")}, check: func(t *testing.T, o *TaskOptions) {
			assert.Equal(t, Destination{Endpoint: "prod", Format: "incident-webhook"}, o.Destination)
		}},
		{name: "inline url", opts: []*agent.Option{crit, str("url", "http://127.0.0.1/x")}, check: func(t *testing.T, o *TaskOptions) {
			assert.Equal(t, Destination{URL: "http://127.0.0.1/x"}, o.Destination)
		}},
		{name: "triple quoted", opts: []*agent.Option{str("crit", `"status" == 'down' AND "host" =~ /^db/`)}},
		{name: "no level", opts: []*agent.Option{str("message", "x")}, wantErr: "option .crit: no level"},
		{name: "no options", opts: nil, wantErr: "no level"},
		{name: "unparsable crit", opts: []*agent.Option{str("crit", `"usage_idle" <`)}, wantErr: `option .crit('"usage_idle" <'): parse error`},
		{name: "unparsable warn", opts: []*agent.Option{crit, str("warn", `(("x"`)}, wantErr: `option .warn('(("x"'): parse error`},
		{name: "empty expression", opts: []*agent.Option{str("info", "  ")}, wantErr: "option .info('  '): empty expression"},
		{name: "no reference", opts: []*agent.Option{str("crit", `TRUE`)}, wantErr: "option .crit('TRUE'): the expression references no field or tag"},
		{name: "unquoted name", opts: []*agent.Option{str("crit", `usage_idle < 10`)}, wantErr: "option .crit('usage_idle < 10')"},
		{name: "slash before non-ASCII crashes Kapacitor's lexer", opts: []*agent.Option{str("crit", `"host" =~ /é/`)}, wantErr: `crashes Kapacitor's expression lexer`},
		{name: "invalid UTF-8", opts: []*agent.Option{str("crit", "\"h\" == '\xff'")}, wantErr: "not valid UTF-8"},
		{name: "escaped non-ASCII in regex", opts: []*agent.Option{str("crit", `"host" =~ /\x{e9}t/`)}, check: func(t *testing.T, o *TaskOptions) {
			ok, err := o.Levels[Critical].EvalBool(point("", 0, nil, map[string]string{"host": "été"}))
			require.NoError(t, err)
			assert.True(t, ok)
		}},
		{name: "duplicate", opts: []*agent.Option{crit, crit}, wantErr: `option .crit('"usage_idle" < 10'): given more than once`},
		{name: "unknown option", opts: []*agent.Option{crit, str("critical", "x")}, wantErr: "option .critical: unknown option"},
		{name: "bad template", opts: []*agent.Option{crit, str("message", "{{ .ID ")}, wantErr: "option .message('{{ .ID '): template parse error"},
		{name: "template unknown field", opts: []*agent.Option{crit, str("id", "{{ .Nope }}")}, wantErr: "option .id('{{ .Nope }}'): template error"},
		{name: "endpoint and url", opts: []*agent.Option{crit, str("endpoint", "a"), str("url", "http://x/y")}, wantErr: "option .url: give .endpoint() or .url(), not both"},
		{name: "empty endpoint", opts: []*agent.Option{crit, str("endpoint", "")}, wantErr: "option .endpoint(''): empty endpoint name"},
		{name: "wrong type", opts: []*agent.Option{{Name: "crit", Values: []*agent.OptionValue{{Type: agent.ValueType_BOOL, Value: &agent.OptionValue_BoolValue{BoolValue: true}}}}}, wantErr: "option .crit: argument 1 must be a string, got a boolean"},
		{name: "no argument", opts: []*agent.Option{{Name: "crit"}}, wantErr: "option .crit: takes 1 argument(s), got 0"},
		{name: "no tags or priorities", opts: []*agent.Option{crit}, check: func(t *testing.T, o *TaskOptions) {
			assert.Nil(t, o.Destination.Tags)
			assert.Nil(t, o.Destination.Priorities)
		}},
		// .tag() and .priority() are the Sink's options: they are handed
		// over as written, in order, and validated by the Sink's Open
		// (squadcast.TestIncidentOptions).
		{name: "tags and priorities", opts: []*agent.Option{
			crit, str2("tag", "team", "db"), str2("priority", "critical", "P2"), str2("tag", "env", "prod"), str2("priority", "Info", "p4"),
		}, check: func(t *testing.T, o *TaskOptions) {
			assert.Equal(t, [][2]string{{"team", "db"}, {"env", "prod"}}, o.Destination.Tags)
			assert.Equal(t, [][2]string{{"critical", "P2"}, {"Info", "p4"}}, o.Destination.Priorities)
		}},
		{name: "priority only", opts: []*agent.Option{crit, str2("priority", "WARNING", "P1")}, check: func(t *testing.T, o *TaskOptions) {
			assert.Nil(t, o.Destination.Tags)
			assert.Equal(t, [][2]string{{"WARNING", "P1"}}, o.Destination.Priorities)
		}},
		{name: "values the Sink validates", opts: []*agent.Option{crit, str2("priority", "SEVERE", "P9"), str2("tag", "", "x")}, check: func(t *testing.T, o *TaskOptions) {
			assert.Equal(t, [][2]string{{"", "x"}}, o.Destination.Tags)
			assert.Equal(t, [][2]string{{"SEVERE", "P9"}}, o.Destination.Priorities)
		}},
		{name: "priority one argument", opts: []*agent.Option{crit, str("priority", "P1")}, wantErr: "option .priority: takes 2 argument(s), got 1"},
		{name: "tag one argument", opts: []*agent.Option{crit, str("tag", "team")}, wantErr: "option .tag: takes 2 argument(s), got 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := ParseOptions(tt.opts)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				var oe *OptionError
				assert.True(t, errors.As(err, &oe), "want an *OptionError, got %T", err)
				return
			}
			require.NoError(t, err)
			if tt.check != nil {
				tt.check(t, o)
			}
		})
	}
}

func TestOptionErrorCutsLongValues(t *testing.T) {
	long := `"x" < ` + strings.Repeat("é", 300)
	_, err := ParseOptions([]*agent.Option{str("crit", long)})
	require.Error(t, err)
	assert.Less(t, len(err.Error()), 400)
	assert.True(t, strings.Contains(err.Error(), "..."))
	assert.True(t, strings.ToValidUTF8(err.Error(), "?") == err.Error(), "error text must stay valid UTF-8")
}
