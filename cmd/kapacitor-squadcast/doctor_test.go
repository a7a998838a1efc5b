package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Keys that doctor must never print.
const (
	doctorTaskKey     = "TaskKey0123456789abcdef"
	doctorEndpointKey = "EndpointKey0123456789abc"
	doctorHandlerKey  = "HandlerKey0123456789abcd"
	doctorVarKey      = "VarKey0123456789abcdefgh"
	doctorPassword    = "kapPassw0rd"
)

// doctorFake serves Kapacitor 1.5's API answers, in the shapes of
// client/v1 (Tasks, ConfigSection, Topics, TopicHandlers), for a few tasks,
// [[httppost]] endpoints and topic handlers. httppost answers 403 when
// forbidden, as Kapacitor does with [config-override] disabled.
func doctorFake(t *testing.T, tasks []map[string]any, endpoints []map[string]any, handlers map[string][]map[string]any, httppostForbidden bool) *httptest.Server {
	t.Helper()
	link := func(href string) map[string]string { return map[string]string{"rel": "self", "href": href} }
	answer := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		require.NoError(t, json.NewEncoder(w).Encode(v))
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /kapacitor/v1/tasks", func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, []string{"status", "executing", "error", "script"}, r.URL.Query()["fields"])
		page := tasks
		if r.URL.Query().Get("offset") != "0" {
			page = nil
		}
		answer(w, 200, map[string]any{"link": link("/kapacitor/v1/tasks"), "tasks": page})
	})
	mux.HandleFunc("GET /kapacitor/v1/config/httppost", func(w http.ResponseWriter, r *http.Request) {
		if httppostForbidden {
			answer(w, 403, map[string]string{"error": "config override service is not enabled"})
			return
		}
		var elems []map[string]any
		for _, e := range endpoints {
			opts := map[string]any{"endpoint": "", "url": "", "headers": nil, "basic-auth": false, "alert-template": "",
				"alert-template-file": "", "row-template": "", "row-template-file": ""}
			for k, v := range e {
				opts[k] = v
			}
			elems = append(elems, map[string]any{"link": link("/kapacitor/v1/config/httppost/" + opts["endpoint"].(string)),
				"options": opts, "redacted": []string{"basic-auth"}})
		}
		answer(w, 200, map[string]any{"link": link("/kapacitor/v1/config/httppost"), "elements": elems})
	})
	mux.HandleFunc("GET /kapacitor/v1/alerts/topics", func(w http.ResponseWriter, r *http.Request) {
		topics := []map[string]any{}
		for id := range handlers {
			base := "/kapacitor/v1/alerts/topics/" + id
			topics = append(topics, map[string]any{"link": link(base), "id": id, "level": "OK", "collected": 0,
				"events-link":   map[string]string{"rel": "events", "href": base + "/events"},
				"handlers-link": map[string]string{"rel": "handlers", "href": base + "/handlers"}})
		}
		answer(w, 200, map[string]any{"link": link("/kapacitor/v1/alerts/topics"), "topics": topics})
	})
	mux.HandleFunc("GET /kapacitor/v1/alerts/topics/{topic}/handlers", func(w http.ResponseWriter, r *http.Request) {
		topic := r.PathValue("topic")
		hs := []map[string]any{}
		for _, h := range handlers[topic] {
			h["link"] = link("/kapacitor/v1/alerts/topics/" + topic + "/handlers/" + h["id"].(string))
			h["match"] = ""
			hs = append(hs, h)
		}
		answer(w, 200, map[string]any{"link": link(r.URL.Path), "topic": topic, "handlers": hs})
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "admin" || p != doctorPassword {
			answer(w, 401, map[string]string{"error": "authentication failed"})
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// doctorKapacitorURL is the fake's URL with user:password.
func doctorKapacitorURL(srv *httptest.Server) string {
	return strings.Replace(srv.URL, "http://", "http://admin:"+doctorPassword+"@", 1)
}

// assertNoSecret checks that no output shows a key or the password.
func assertNoSecret(t *testing.T, texts ...string) {
	t.Helper()
	for _, text := range texts {
		for _, sec := range []string{doctorTaskKey, doctorEndpointKey, doctorHandlerKey, doctorVarKey, doctorPassword, "/v1/incidents"} {
			assert.NotContains(t, text, sec)
		}
	}
}

func TestDoctorFindings(t *testing.T) {
	sq := "https://api.squadcast.com/v1/incidents/kapacitor/"
	tasks := []map[string]any{
		{"id": "cpu_alert", "status": "enabled", "executing": true, "error": "",
			"script": "stream|from().measurement('cpu')|alert().crit(lambda: \"v\" > 1).post('" + sq + doctorTaskKey + "').header('X', 'y')"},
		{"id": "mem_alert", "status": "disabled", "executing": false, "error": "",
			"script": "var u = '" + sq + doctorVarKey + "'\nstream|alert().post(u)\n|alert().post().endpoint('squadcast')"},
		{"id": "other", "status": "enabled", "executing": true, "error": "",
			"script": "stream|alert().post('http://hooks.internal/x').post().endpoint('builtin')"},
		{"id": "broken", "status": "enabled", "executing": false,
			"error":  "squadcast2: failed to initialize processes option .url: bad URL " + sq + doctorTaskKey,
			"script": "stream|from()@squadcast().crit('\"v\" > 1')"},
		{"id": "running", "status": "enabled", "executing": true, "error": "", "script": "stream|from()@squadcast()"},
		{"id": "batch_off", "status": "disabled", "executing": false, "error": "", "script": "batch|query('q')@squadcast_batch()"},
		{"id": "batch_stopped", "status": "enabled", "executing": false, "error": "", "script": "batch|query('q')@squadcast_batch()"},
	}
	endpoints := []map[string]any{
		{"endpoint": "squadcast", "url": sq + doctorEndpointKey, "headers": map[string]string{"Content-Type": "application/json"}},
		{"endpoint": "builtin", "url": "http://hooks.internal/builtin"},
		{"endpoint": "example", "url": "http://example.com"},
	}
	handlers := map[string][]map[string]any{
		"cpu": {
			{"id": "sc", "kind": "post", "options": map[string]any{"url": "https://api.eu.squadcast.com/v2/incidents/api/" + doctorHandlerKey}},
			{"id": "via-endpoint", "kind": "post", "options": map[string]any{"endpoint": "squadcast"}},
			{"id": "log", "kind": "log", "options": map[string]any{"path": "/tmp/alerts.log"}},
		},
		"main:other:alert2": {},
	}
	srv := doctorFake(t, tasks, endpoints, handlers, false)

	code, out, errOut := runCLI("doctor", "--kapacitor-url", doctorKapacitorURL(srv))
	assert.Equal(t, 1, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	assert.Empty(t, errOut)
	assertNoSecret(t, out, errOut)
	relay := "http://127.0.0.1:9095/relay/default"
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{
		"Kapacitor " + srv.URL + ": 7 task(s), 3 [[httppost]] endpoint(s), 3 topic handler(s)",
		"task cpu_alert: replace .post('https://api.squadcast.com/[redacted]') by .post('" + relay + "').header('Authorization', 'Bearer <token>')",
		"task mem_alert: set var u = '" + relay + "' (was 'https://api.squadcast.com/[redacted]') and add .header('Authorization', 'Bearer <token>') after its .post(u)",
		`[[httppost]] squadcast: set url = "` + relay + `" (was https://api.squadcast.com/[redacted]) and headers = { Authorization = "Bearer <token>" } in kapacitor.conf, then restart Kapacitor; used by task mem_alert, topic handler cpu/via-endpoint`,
		`topic handler cpu/sc: set options.url to "` + relay + `" (was https://api.eu.squadcast.com/[redacted]) and options.headers.Authorization to "Bearer <token>"`,
		"@squadcast() task broken: enabled but not executing (error: squadcast2: failed to initialize processes option .url: bad URL https://api.squadcast.com/[redacted]); fix it, then `kapacitor disable broken; kapacitor enable broken`",
		"@squadcast_batch() task batch_stopped: enabled but not executing (no error: it may still be starting); fix it, then `kapacitor disable batch_stopped; kapacitor enable batch_stopped`",
		"6 finding(s)",
	}
	require.GreaterOrEqual(t, len(lines), len(want), out)
	assert.Equal(t, want, lines[:len(want)])
	assert.Contains(t, out, "--relay-token-file")
}

func TestDoctorNothingToDo(t *testing.T) {
	tasks := []map[string]any{
		{"id": "relayed", "status": "enabled", "executing": true, "script": "stream|alert().post('http://127.0.0.1:9095/relay/default')"},
		{"id": "udf", "status": "enabled", "executing": true, "script": "stream|from()@squadcast()"},
		{"id": "off", "status": "disabled", "executing": false, "script": "stream|from()@squadcast()"},
	}
	endpoints := []map[string]any{{"endpoint": "example", "url": "http://example.com"}}
	srv := doctorFake(t, tasks, endpoints, map[string][]map[string]any{"t": {{"id": "h", "kind": "post", "options": map[string]any{"url": "http://127.0.0.1:9095/relay/default"}}}}, false)
	code, out, errOut := runCLI("doctor", "--kapacitor-url", doctorKapacitorURL(srv))
	assert.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	assert.Contains(t, out, "nothing posts to Squadcast without the daemon")
	assertNoSecret(t, out, errOut)

	// --squadcast-hosts makes the relay's own host one to move (and --relay-url is used).
	code, out, _ = runCLI("doctor", "--kapacitor-url", doctorKapacitorURL(srv), "--squadcast-hosts", "127.0.0.1", "--relay-url", "http://relay.example:9095/relay/eu")
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "task relayed: replace .post('http://127.0.0.1:9095/[redacted]') by .post('http://relay.example:9095/relay/eu')")
	assert.Contains(t, out, "topic handler t/h: set options.url to \"http://relay.example:9095/relay/eu\"")
}

func TestDoctorHTTPPostHidden(t *testing.T) {
	srv := doctorFake(t, nil, nil, nil, true)
	code, out, errOut := runCLI("doctor", "--kapacitor-url", doctorKapacitorURL(srv))
	assert.Equal(t, 1, code)
	assert.Empty(t, errOut)
	assert.Contains(t, out, "cannot read the [[httppost]] endpoints (GET /kapacitor/v1/config/httppost: 403 Forbidden: ")
	assert.Contains(t, out, "config override service is not enabled")
	assertNoSecret(t, out)
}

func TestDoctorErrors(t *testing.T) {
	srv := doctorFake(t, nil, nil, nil, false)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	host := strings.TrimPrefix(closed.URL, "http://")
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no url", nil, 2, "--kapacitor-url is required"},
		{"bad url", []string{"--kapacitor-url", "localhost:9092"}, 2, "--kapacitor-url: want http(s)://host:port"},
		{"bad relay", []string{"--kapacitor-url", srv.URL, "--relay-url", "127.0.0.1:9095"}, 2, "--relay-url: want http(s)://host:port"},
		{"argument", []string{"--kapacitor-url", srv.URL, "extra"}, 2, "unexpected arguments"},
		{"unknown flag", []string{"--nope"}, 2, "flag provided but not defined: -nope"},
		{"unreachable", []string{"--kapacitor-url", "http://admin:" + doctorPassword + "@" + host}, 1,
			"kapacitor-squadcast doctor: cannot read Kapacitor's API at http://" + host + ": list tasks: GET /kapacitor/v1/tasks: "},
		{"wrong password", []string{"--kapacitor-url", "http://admin:wrong@" + strings.TrimPrefix(srv.URL, "http://")}, 1,
			"list tasks: GET /kapacitor/v1/tasks: 401 Unauthorized: {\"error\":\"authentication failed\"}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(append([]string{"doctor"}, tt.args...)...)
			assert.Equal(t, tt.code, code)
			assert.Empty(t, out)
			assert.Contains(t, errOut, tt.stderr)
			assertNoSecret(t, errOut)
		})
	}
	code, out, _ := runCLI("doctor", "--help")
	assert.Equal(t, 0, code)
	assert.Empty(t, out)
	code, out, _ = runCLI("help")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "kapacitor-squadcast doctor --kapacitor-url URL")
}
