package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestE2EIncidentWebhookTagsAndPriorities runs tickscripts/cpu_squadcast_incident.tick
// (incident-webhook format, .tag(), .priority()) in a real kapacitord and
// checks the bodies that reach the stand-in: the task's tags added to the
// point's (winning on a clash), "level" set, a priority on each trigger (the
// .priority() override and the defaults) and none on the resolve. Two
// tasks with bad options fail with errors naming the option, and the daemon
// serves on.
func TestE2EIncidentWebhookTagsAndPriorities(t *testing.T) {
	const path = "/v2/incidents/api/INCIDENTKEY"
	st := e2eStart(t, path)
	k := st.kap
	e2eDefineRunning(t, k, "incident", e2eTick(t, "cpu_squadcast_incident.tick"))

	for _, bad := range []struct{ task, file, want string }{
		{"bad_priority", "cpu_squadcast_bad_priority.tick", "option .priority('CRITICAL', 'P9'): the priority must be one of 'P1', 'P2', 'P3', 'P4', 'P5'"},
		{"tag_kapacitor", "cpu_squadcast_tag_kapacitor.tick", "option .tag: only the incident-webhook format has tags and priorities, and this task sends the kapacitor format (endpoint default): add .format('incident-webhook') or remove .tag()"},
	} {
		require.NoError(t, k.DefineTask(bad.task, e2eTick(t, bad.file), e2eDBRPs, true), "defining %s", bad.task)
		task, err := k.WaitTaskError(bad.task, 30*time.Second)
		require.NoError(t, err)
		assert.False(t, task.Executing, "%s is not executing", bad.task)
		assert.Contains(t, task.Error, bad.want, "%s's error", bad.task)
	}

	// One host through INFO, WARNING, CRITICAL and back to OK; its points
	// carry a "team" tag that the task's .tag('team', ...) overrides.
	start := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	var lines []string
	for i, v := range []float64{80, 30, 15, 5, 70} {
		lines = append(lines, fmt.Sprintf("cpu,host=n1,team=point usage_idle=%g %d", v, start.Add(time.Duration(i)*time.Second).UnixNano()))
	}
	require.NoError(t, k.Write("telegraf", "autogen", strings.Join(lines, "\n")))
	reqs, err := st.standIn.WaitFor(4, 60*time.Second)
	require.NoError(t, err, "the four events of the incident task")
	time.Sleep(500 * time.Millisecond) // let a wrong extra request show up
	reqs = st.standIn.Requests()
	require.Len(t, reqs, 4, "INFO, WARNING, CRITICAL, OK")

	type body struct {
		Message     string            `json:"message"`
		Description string            `json:"description"`
		Tags        map[string]string `json:"tags"`
		Status      string            `json:"status"`
		EventID     string            `json:"event_id"`
		Priority    string            `json:"priority"`
	}
	var got []string
	for i, r := range reqs {
		assert.Equal(t, path, r.Path, "request %d", i)
		var b body
		dec := json.NewDecoder(bytes.NewReader(r.Body))
		dec.DisallowUnknownFields()
		require.NoError(t, dec.Decode(&b), "request %d: %s", i, r.Body)
		assert.Equal(t, "cpu:host=n1", b.EventID, "request %d", i)
		assert.Equal(t, "cpu:host=n1 is "+b.Tags["level"], b.Message, "request %d", i)
		assert.NotEmpty(t, b.Description, "request %d", i)
		assert.Equal(t, map[string]string{"host": "n1", "team": "databases", "env": "prod", "level": b.Tags["level"]}, b.Tags, "request %d", i)
		got = append(got, fmt.Sprintf("%s %s %s", b.Status, b.Tags["level"], b.Priority))
	}
	assert.Equal(t, []string{"trigger INFO P5", "trigger WARNING P2", "trigger CRITICAL P1", "resolve OK "}, got)
	assert.True(t, st.daemon.Alive(), "the daemon is still running")
}
