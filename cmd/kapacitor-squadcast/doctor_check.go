package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast"
)

// doctorFinding is one thing in Kapacitor that needs attention.
type doctorFinding struct {
	// What names it: "task cpu_alert", "[[httppost]] squadcast",
	// "topic handler cpu/squadcast", "@squadcast() task t".
	What string
	// Fix says what to change; it never holds a webhook key.
	Fix string
}

// httppostEndpoint is one [[httppost]] element of Kapacitor's config, as
// GET /kapacitor/v1/config/httppost shows it (client.ConfigElement:
// options by their kapacitor.conf names; basic-auth is redacted to a bool).
type httppostEndpoint struct {
	Options struct {
		Endpoint      string            `json:"endpoint"`
		URL           string            `json:"url"`
		Headers       map[string]string `json:"headers"`
		AlertTemplate string            `json:"alert-template"`
		AlertFile     string            `json:"alert-template-file"`
	} `json:"options"`
}

// topicHandler is one handler of a topic (client.TopicHandler).
type topicHandler struct {
	ID      string         `json:"id"`
	Kind    string         `json:"kind"`
	Options map[string]any `json:"options"`
	Topic   string         `json:"-"`
}

// kapacitorState is what doctor reads from Kapacitor's API.
type kapacitorState struct {
	Tasks    []kapacitorTask
	HTTPPost []httppostEndpoint
	// HTTPPostErr is why the [[httppost]] endpoints could not be read
	// (Kapacitor answers 403 when [config-override] is disabled).
	HTTPPostErr error
	Handlers    []topicHandler
}

// readKapacitor reads the tasks, the [[httppost]] endpoints and every
// topic's handlers. Only a failure to list the tasks, or the topics, is
// an error: the [[httppost]] endpoints may be hidden by configuration.
func readKapacitor(ctx context.Context, api *reenabler) (kapacitorState, error) {
	var st kapacitorState
	var err error
	if st.Tasks, err = api.list(ctx); err != nil {
		return st, fmt.Errorf("list tasks: %w", err)
	}
	var section struct {
		Elements []httppostEndpoint `json:"elements"`
	}
	if err := api.do(ctx, http.MethodGet, "/kapacitor/v1/config/httppost", nil, &section); err != nil {
		st.HTTPPostErr = err
	}
	st.HTTPPost = section.Elements
	var topics struct {
		Topics []struct {
			ID string `json:"id"`
		} `json:"topics"`
	}
	if err := api.do(ctx, http.MethodGet, "/kapacitor/v1/alerts/topics", nil, &topics); err != nil {
		return st, fmt.Errorf("list topics: %w", err)
	}
	for _, t := range topics.Topics {
		var hs struct {
			Handlers []topicHandler `json:"handlers"`
		}
		if err := api.do(ctx, http.MethodGet, "/kapacitor/v1/alerts/topics/"+url.PathEscape(t.ID)+"/handlers", nil, &hs); err != nil {
			return st, fmt.Errorf("list the handlers of topic %s: %w", t.ID, err)
		}
		for _, h := range hs.Handlers {
			h.Topic = t.ID
			st.Handlers = append(st.Handlers, h)
		}
	}
	return st, nil
}

// doctorRules are what the findings depend on besides Kapacitor's state.
type doctorRules struct {
	relayURL string   // where events should go: http://ADDR/relay/ENDPOINT
	extra    []string // --squadcast-hosts
	udfName  string   // the UDF's name: NAME and NAME_batch tasks are checked
}

// findings lists what needs attention: handlers posting to Squadcast
// directly (tasks, [[httppost]] endpoints, topic handlers), then enabled
// @squadcast() tasks that are not executing.
func (r doctorRules) findings(st kapacitorState) []doctorFinding {
	// [[httppost]] endpoints that post to Squadcast, by name, and who uses them.
	direct := map[string]httppostEndpoint{}
	users := map[string][]string{}
	for _, e := range st.HTTPPost {
		if isSquadcastURL(e.Options.URL, r.extra) {
			direct[e.Options.Endpoint] = e
		}
	}
	defined := map[string]bool{}
	for _, e := range st.HTTPPost {
		defined[e.Options.Endpoint] = true
	}
	var out []doctorFinding
	for _, t := range st.Tasks {
		for _, p := range tickPosts(t.Script) {
			switch {
			case p.Endpoint != "" && defined[p.Endpoint]:
				if _, ok := direct[p.Endpoint]; ok {
					users[p.Endpoint] = appendOnce(users[p.Endpoint], "task "+t.ID)
				}
			case isSquadcastURL(p.URL, r.extra):
				out = append(out, doctorFinding{What: "task " + t.ID, Fix: r.taskFix(p)})
			}
		}
	}
	var handlers []doctorFinding
	for _, h := range st.Handlers {
		if h.Kind != "post" {
			continue
		}
		name := "topic handler " + h.Topic + "/" + h.ID
		ep, _ := h.Options["endpoint"].(string)
		u, _ := h.Options["url"].(string)
		switch {
		case ep != "" && defined[ep]:
			if _, ok := direct[ep]; ok {
				users[ep] = appendOnce(users[ep], name)
			}
		case isSquadcastURL(u, r.extra):
			handlers = append(handlers, doctorFinding{What: name, Fix: fmt.Sprintf(
				"set options.url to %q (was %s) and options.headers.Authorization to \"Bearer <token>\"", r.relayURL, squadcast.RedactURL(u))})
		}
	}
	out = append(out, r.endpointFindings(direct, users)...)
	out = append(out, handlers...)
	return append(out, r.stoppedTasks(st.Tasks)...)
}

// taskFix says how to route a task's .post() through the relay.
func (r doctorRules) taskFix(p tickPost) string {
	was := "'" + squadcast.RedactURL(p.URL) + "'"
	if p.Var != "" {
		return fmt.Sprintf("set var %s = '%s' (was %s) and add .header('Authorization', 'Bearer <token>') after its .post(%s)",
			p.Var, r.relayURL, was, p.Var)
	}
	return fmt.Sprintf("replace .post(%s) by .post('%s').header('Authorization', 'Bearer <token>')", was, r.relayURL)
}

// endpointFindings says how to route each [[httppost]] endpoint that posts
// to Squadcast through the relay, naming what uses it.
func (r doctorRules) endpointFindings(direct map[string]httppostEndpoint, users map[string][]string) []doctorFinding {
	names := make([]string, 0, len(direct))
	for name := range direct {
		names = append(names, name)
	}
	sort.Strings(names)
	var out []doctorFinding
	for _, name := range names {
		e := direct[name]
		fix := fmt.Sprintf("set url = %q (was %s) and headers = { Authorization = \"Bearer <token>\" } in kapacitor.conf, then restart Kapacitor",
			r.relayURL, squadcast.RedactURL(e.Options.URL))
		if e.Options.AlertTemplate != "" || e.Options.AlertFile != "" {
			fix += "; remove its alert-template: the relay takes Kapacitor's alert JSON as .post() sends it"
		}
		if u := users[name]; len(u) > 0 {
			fix += "; used by " + strings.Join(u, ", ")
		} else {
			fix += "; no task or topic handler uses it now"
		}
		out = append(out, doctorFinding{What: "[[httppost]] " + name, Fix: fix})
	}
	return out
}

// stoppedTasks lists the tasks using the UDF (NAME or NAME_batch) that are
// enabled but not executing, with Kapacitor's error for them.
func (r doctorRules) stoppedTasks(tasks []kapacitorTask) []doctorFinding {
	var out []doctorFinding
	for _, t := range tasks {
		if t.Status != "enabled" || t.Executing {
			continue
		}
		name := ""
		for _, n := range []string{r.udfName, r.udfName + "_batch"} {
			if usesUDF(t.Script, n) {
				name = n
			}
		}
		if name == "" {
			continue
		}
		why := "no error: it may still be starting"
		if t.Error != "" {
			why = "error: " + redactURLs(strings.Join(strings.Fields(t.Error), " "))
		}
		out = append(out, doctorFinding{
			What: fmt.Sprintf("@%s() task %s", name, t.ID),
			Fix:  fmt.Sprintf("enabled but not executing (%s); fix it, then `kapacitor disable %s; kapacitor enable %s`", why, t.ID, t.ID),
		})
	}
	return out
}

func appendOnce(list []string, s string) []string {
	for _, v := range list {
		if v == s {
			return list
		}
	}
	return append(list, s)
}
