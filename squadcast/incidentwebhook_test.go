package squadcast

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

type webhookBody struct {
	Message     string            `json:"message"`
	Description string            `json:"description"`
	Tags        map[string]string `json:"tags"`
	Status      string            `json:"status"`
	EventID     string            `json:"event_id"`
	Priority    string            `json:"priority,omitempty"`
}

func decodeWebhook(t *testing.T, b []byte) webhookBody {
	t.Helper()
	var w webhookBody
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&w))
	return w
}

func TestRenderIncidentWebhook(t *testing.T) {
	tests := []struct {
		name string
		ev   udf.Event
		inc  incidentOptions // the task's tags and priorities
		want webhookBody
	}{
		{
			name: "critical triggers",
			ev: udf.Event{ID: "cpu:host=a", Message: "cpu high", Details: "usage 99%", Level: udf.Critical,
				Tags: map[string]string{"host": "a", "dc": "eu"}},
			want: webhookBody{Message: "cpu high", Description: "usage 99%", Status: "trigger", EventID: "cpu:host=a",
				Tags: map[string]string{"host": "a", "dc": "eu", "level": "CRITICAL"}},
		},
		{
			name: "warning and info trigger",
			ev:   udf.Event{ID: "w", Message: "m", Details: "d", Level: udf.Warning},
			want: webhookBody{Message: "m", Description: "d", Status: "trigger", EventID: "w", Tags: map[string]string{"level": "WARNING"}},
		},
		{
			name: "info triggers",
			ev:   udf.Event{ID: "i", Message: "m", Details: "d", Level: udf.Info},
			want: webhookBody{Message: "m", Description: "d", Status: "trigger", EventID: "i", Tags: map[string]string{"level": "INFO"}},
		},
		{
			name: "ok resolves",
			ev:   udf.Event{ID: "cpu:host=a", Message: "cpu ok", Details: "fine", Level: udf.OK, PreviousLevel: udf.Critical},
			want: webhookBody{Message: "cpu ok", Description: "fine", Status: "resolve", EventID: "cpu:host=a", Tags: map[string]string{"level": "OK"}},
		},
		{
			name: "level tag wins over a point tag",
			ev:   udf.Event{ID: "x", Message: "m", Details: "d", Level: udf.Critical, Tags: map[string]string{"level": "debug"}},
			want: webhookBody{Message: "m", Description: "d", Status: "trigger", EventID: "x", Tags: map[string]string{"level": "CRITICAL"}},
		},
		{
			name: "task tags win over point tags, level over both; priority on a trigger",
			ev: udf.Event{ID: "x", Message: "m", Details: "d", Level: udf.Warning,
				Tags: map[string]string{"host": "a", "team": "from-point"}},
			inc: incidentOptions{tags: map[string]string{"team": "db", "env": "prod"}, priorities: [udf.Critical + 1]string{udf.Warning: "P3"}},
			want: webhookBody{Message: "m", Description: "d", Status: "trigger", EventID: "x", Priority: "P3",
				Tags: map[string]string{"host": "a", "team": "db", "env": "prod", "level": "WARNING"}},
		},
		{
			name: "no priority on a resolve",
			ev:   udf.Event{ID: "x", Message: "m", Details: "d", Level: udf.OK},
			inc:  incidentOptions{tags: map[string]string{"env": "prod"}, priorities: [udf.Critical + 1]string{"P1", "P1", "P1", "P1"}},
			want: webhookBody{Message: "m", Description: "d", Status: "resolve", EventID: "x", Tags: map[string]string{"env": "prod", "level": "OK"}},
		},
		{
			name: "empty message and description get defaults",
			ev:   udf.Event{ID: "cpu:nil", Level: udf.Critical},
			want: webhookBody{Message: "cpu:nil is CRITICAL", Description: "cpu:nil is CRITICAL", Status: "trigger", EventID: "cpu:nil", Tags: map[string]string{"level": "CRITICAL"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := renderIncidentWebhook(tt.ev, &tt.inc)
			require.NoError(t, err)
			require.Equal(t, tt.want, decodeWebhook(t, got))
			if tt.inc.tags == nil && tt.inc.priorities == ([udf.Critical + 1]string{}) {
				exported, err := RenderIncidentWebhook(tt.ev)
				require.NoError(t, err)
				require.Equal(t, got, exported, "RenderIncidentWebhook renders a task without tags or priorities")
			}
			require.True(t, bytes.HasPrefix(got, []byte(`{"message":`)), "field order: %s", got)
		})
	}
	// The tags map given in the event is not modified.
	tags := map[string]string{"host": "a"}
	_, err := RenderIncidentWebhook(udf.Event{ID: "x", Level: udf.Critical, Tags: tags})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"host": "a"}, tags)
}

func TestRenderIncidentWebhookExact(t *testing.T) {
	got, err := RenderIncidentWebhook(udf.Event{ID: "a&b", Message: "<m>", Details: "d", Level: udf.Critical, Tags: map[string]string{"h": "1"}})
	require.NoError(t, err)
	require.Equal(t, `{"message":"\u003cm\u003e","description":"d","tags":{"h":"1","level":"CRITICAL"},"status":"trigger","event_id":"a\u0026b"}`+"\n", string(got))
	got, err = renderIncidentWebhook(udf.Event{ID: "i", Message: "m", Details: "d", Level: udf.Critical},
		&incidentOptions{priorities: [udf.Critical + 1]string{udf.Critical: "P2"}})
	require.NoError(t, err)
	require.Equal(t, `{"message":"m","description":"d","tags":{"level":"CRITICAL"},"status":"trigger","event_id":"i","priority":"P2"}`+"\n", string(got))
}

func TestRenderIncidentWebhookTruncation(t *testing.T) {
	longID := strings.Repeat("id-", 300)
	tests := []struct {
		name        string
		message     string
		description string
		wantMessage bool // the message had to be cut too
	}{
		{name: "ascii", description: strings.Repeat("a", 100<<10)},
		{name: "just over", description: strings.Repeat("b", MaxBody)},
		{name: "multibyte", description: strings.Repeat("日本語ü", 20<<10)},
		{name: "html escapes grow 6x", description: strings.Repeat("<&>", 10<<10)},
		{name: "mixed", description: strings.Repeat("x<ü\n\"\\\u2028\x01🙂", 5<<10)},
		{name: "invalid utf-8", description: strings.Repeat("ok\xff\xfe", 10<<10)},
		{name: "huge message too", message: strings.Repeat("m", 40<<10), description: strings.Repeat("d", 40<<10), wantMessage: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := udf.Event{ID: longID, Message: tt.message, Details: tt.description, Level: udf.Critical,
				Tags: map[string]string{"host": "a"}}
			if ev.Message == "" {
				ev.Message = "msg"
			}
			got, err := RenderIncidentWebhook(ev)
			require.NoError(t, err)
			require.LessOrEqual(t, len(got), MaxBody)
			// Not cut much more than needed: within a few escaped runes of the limit.
			require.Greater(t, len(got), MaxBody-16)
			w := decodeWebhook(t, got)
			require.Equal(t, longID, w.EventID, "event_id is never truncated")
			require.Equal(t, "trigger", w.Status)
			require.Equal(t, map[string]string{"host": "a", "level": "CRITICAL"}, w.Tags)
			require.True(t, strings.HasSuffix(w.Description, TruncationMarker), "description marked")
			require.True(t, utf8.ValidString(w.Description))
			cut := strings.TrimSuffix(w.Description, TruncationMarker)
			if utf8.ValidString(tt.description) {
				require.True(t, strings.HasPrefix(tt.description, cut), "description cut at a rune boundary")
			}
			if tt.wantMessage {
				require.True(t, strings.HasSuffix(w.Message, TruncationMarker), "message marked")
				require.True(t, strings.HasPrefix(tt.message, strings.TrimSuffix(w.Message, TruncationMarker)))
			} else {
				require.Equal(t, ev.Message, w.Message)
			}
		})
	}

	// A body under the limit is left alone.
	small := strings.Repeat("s", 20<<10)
	got, err := RenderIncidentWebhook(udf.Event{ID: "x", Message: "m", Details: small, Level: udf.Critical})
	require.NoError(t, err)
	require.Equal(t, small, decodeWebhook(t, got).Description)
}

// TestRenderIncidentWebhookKeepsTaskTags: when the tags must be bounded,
// the task's .tag()s are kept before the point's.
func TestRenderIncidentWebhookKeepsTaskTags(t *testing.T) {
	tags := make(map[string]string)
	for i := range 2000 {
		tags[fmt.Sprintf("t%04d", i)] = strings.Repeat("v", 20)
	}
	inc := incidentOptions{tags: map[string]string{"zz-team": "db"}}
	got, err := renderIncidentWebhook(udf.Event{ID: "x", Message: "m", Details: "d", Level: udf.Critical, Tags: tags}, &inc)
	require.NoError(t, err)
	require.LessOrEqual(t, len(got), MaxBody)
	w := decodeWebhook(t, got)
	require.Equal(t, "db", w.Tags["zz-team"], "the task's tag sorts last but is kept first")
	require.Equal(t, "CRITICAL", w.Tags["level"])
	require.Contains(t, w.Tags[TruncatedKey], "tags left out")
}
