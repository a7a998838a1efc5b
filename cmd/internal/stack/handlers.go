package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
)

// TopicHandler is an alert topic's handler, as `kapacitor
// define-topic-handler FILE.yaml` defines it: ID, Kind ("post", "log",
// "slack", ...) and the kind's Options (for "post": "url" or "endpoint",
// and "headers").
type TopicHandler struct {
	ID      string         `json:"id"`
	Kind    string         `json:"kind"`
	Options map[string]any `json:"options,omitempty"`
}

// DefineTopicHandler creates a handler on topic (POST
// /kapacitor/v1/alerts/topics/TOPIC/handlers), creating the topic if it
// has none yet. Kapacitor checks the options against the kind (an unknown
// option is a 400, returned as an *APIError) but contacts nothing: a post
// handler's URL is only used when an alert is published to the topic.
func (k *Kapacitord) DefineTopicHandler(topic string, h TopicHandler) error {
	body, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("define topic handler %s/%s: %w", topic, h.ID, err)
	}
	return k.do(context.Background(), "define topic handler "+topic+"/"+h.ID, http.MethodPost,
		"/kapacitor/v1/alerts/topics/"+url.PathEscape(topic)+"/handlers", bytes.NewReader(body), "application/json", nil)
}
