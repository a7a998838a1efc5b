package squadcast

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/influxdata/kapacitor/udf/agent"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// incidentEndpoints are endpoints whose default sends the Incident Webhook.
func incidentEndpoints() endpoints {
	return newEndpoints([]Endpoint{{Name: "default", URL: secretURL, Format: FormatIncidentWebhook}})
}

// TestIncidentOptions: the .tag() and .priority() calls a task gives (as
// udf hands them over in Destination) are validated when the task's
// destination is resolved, with the errors Init shows.
func TestIncidentOptions(t *testing.T) {
	type pairs = [][2]string
	tests := []struct {
		name       string
		endpoint   string
		tags       pairs
		priorities pairs
		wantErr    string // substring; "" = no error
		wantTags   map[string]string
		wantPrio   [udf.Critical + 1]string
	}{
		{name: "default priorities, no tags", wantPrio: [udf.Critical + 1]string{udf.OK: "", udf.Info: "P5", udf.Warning: "P3", udf.Critical: "P1"}},
		{name: "tags and priorities", tags: pairs{{"team", "db"}, {"env", "prod"}}, priorities: pairs{{"critical", "P2"}, {"Info", "p4"}},
			wantTags: map[string]string{"team": "db", "env": "prod"}, wantPrio: [udf.Critical + 1]string{udf.Info: "P4", udf.Warning: "P3", udf.Critical: "P2"}},
		{name: "priority only", priorities: pairs{{"WARNING", "P1"}}, wantPrio: [udf.Critical + 1]string{udf.Info: "P5", udf.Warning: "P1", udf.Critical: "P1"}},
		{name: "priority unknown level", priorities: pairs{{"SEVERE", "P1"}}, wantErr: "option .priority('SEVERE', 'P1'): the level must be CRITICAL, WARNING or INFO"},
		{name: "priority for OK", priorities: pairs{{"OK", "P1"}}, wantErr: "option .priority('OK', 'P1'): the level must be"},
		{name: "priority out of range", priorities: pairs{{"CRITICAL", "P6"}}, wantErr: "option .priority('CRITICAL', 'P6'): the priority must be one of 'P1'"},
		{name: "priority not a P", priorities: pairs{{"CRITICAL", "high"}}, wantErr: "option .priority('CRITICAL', 'high'): the priority must be one of"},
		{name: "priority P10", priorities: pairs{{"INFO", "P10"}}, wantErr: "option .priority('INFO', 'P10')"},
		{name: "priority twice for a level", priorities: pairs{{"INFO", "P4"}, {"info", "P3"}}, wantErr: "option .priority('info', 'P3'): the priority of INFO is given more than once"},
		{name: "tag empty key", tags: pairs{{"", "x"}}, wantErr: "option .tag('', 'x'): empty tag key"},
		{name: "tag level", tags: pairs{{"level", "x"}}, wantErr: "option .tag('level', 'x'): the tag 'level' is the event's level"},
		{name: "tag twice", tags: pairs{{"a", "1"}, {"a", "2"}}, wantErr: "option .tag('a', '2'): the tag 'a' is given more than once"},
		{name: "tag not UTF-8", tags: pairs{{"k", "\xff"}}, wantErr: "option .tag('k', '\xff'): not valid UTF-8"},
		{name: "a bad tag before an unknown endpoint", endpoint: "nope", tags: pairs{{"", "x"}}, wantErr: "option .tag('', 'x'): empty tag key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := udf.Destination{Endpoint: tt.endpoint, Tags: tt.tags, Priorities: tt.priorities}
			tg, inc, err := incidentEndpoints().resolve(d)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				var oe *udf.OptionError
				assert.True(t, errors.As(err, &oe), "want an *OptionError, got %T", err)
				assert.Nil(t, tg)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantTags, inc.tags)
			assert.Equal(t, tt.wantPrio, inc.priorities)
		})
	}
}

// TestIncidentOptionErrorCutsLongValues: a long .tag() value is cut in the
// error, as every option value is.
func TestIncidentOptionErrorCutsLongValues(t *testing.T) {
	_, _, err := incidentEndpoints().resolve(udf.Destination{Tags: [][2]string{{"", strings.Repeat("é", 300)}}})
	require.ErrorContains(t, err, "empty tag key")
	assert.Less(t, len(err.Error()), 500)
	assert.Contains(t, err.Error(), "...")
	assert.True(t, utf8.ValidString(err.Error()), "error text must stay valid UTF-8")
}

// TestPublisherTagsAndPriorities: the events of a task with .tag() and
// .priority() carry them in every Incident Webhook body: the task's tags
// win over a point tag of the same key, each trigger has its level's
// priority (the .priority() override or the default), a resolve none.
func TestPublisherTagsAndPriorities(t *testing.T) {
	bodies := make(chan webhookBody, 4)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		var b webhookBody
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		bodies <- b
		w.WriteHeader(http.StatusAccepted)
	})
	s, _, _ := newTestSender(t, Config{Endpoints: []Endpoint{
		{Name: "default", URL: srv.URL + "/v2/incidents/api/" + secretKey, Format: FormatIncidentWebhook}}})
	h := udf.NewHandler(udf.HandlerConfig{Sink: s})
	str := func(name string, vals ...string) *agent.Option {
		o := &agent.Option{Name: name}
		for _, v := range vals {
			o.Values = append(o.Values, &agent.OptionValue{Type: agent.ValueType_STRING, Value: &agent.OptionValue_StringValue{StringValue: v}})
		}
		return o
	}
	res, err := h.Init(&agent.InitRequest{TaskID: "t", NodeID: "n", Options: []*agent.Option{
		str("crit", `"v" < 10`), str("warn", `"v" < 20`), str("info", `"v" < 30`),
		str("tag", "team", "db"), str("priority", "WARNING", "P2")}})
	require.NoError(t, err)
	require.True(t, res.Success, res.Error)
	for i, v := range []float64{25, 15, 5, 50} { // INFO, WARNING, CRITICAL, OK
		_, err := h.Point(&agent.Point{Name: "cpu", Time: int64(i), FieldsDouble: map[string]float64{"v": v}, Tags: map[string]string{"team": "point"}})
		require.NoError(t, err)
		h.Flush()
	}
	var got []string
	for range 4 {
		b := <-bodies
		got = append(got, b.Tags["level"]+":"+b.Priority)
		assert.Equal(t, "db", b.Tags["team"], "the task's tag wins over the point's")
	}
	assert.Equal(t, []string{"INFO:P5", "WARNING:P2", "CRITICAL:P1", "OK:"}, got)
	h.Close()
}

// FuzzIncidentOptions: any .tag() and .priority() arguments either
// resolve, giving a priority P1..P5 to every non-OK level, or are
// rejected with an *OptionError naming the option.
func FuzzIncidentOptions(f *testing.F) {
	f.Add("team", "db", "CRITICAL", "P2")
	f.Add("level", "x", "ok", "P1")
	f.Add("", "", "warning", "p9")
	f.Add("k\xff", "v", "Info", "P10")
	es := incidentEndpoints()
	f.Fuzz(func(t *testing.T, key, value, level, priority string) {
		_, inc, err := es.resolve(udf.Destination{Tags: [][2]string{{key, value}}, Priorities: [][2]string{{level, priority}}})
		if err != nil {
			oe, ok := err.(*udf.OptionError)
			if !ok || (oe.Option != "tag" && oe.Option != "priority") {
				t.Fatalf("want an *OptionError naming .tag or .priority, got %T %v", err, err)
			}
			return
		}
		if inc.tags[key] != value {
			t.Fatalf("tag %q = %q, want %q", key, inc.tags[key], value)
		}
		for l := udf.Info; l <= udf.Critical; l++ {
			if p := inc.priorities[l]; len(p) != 2 || p[0] != 'P' || p[1] < '1' || p[1] > '5' {
				t.Fatalf("priority of %s is %q", l, p)
			}
		}
	})
}
