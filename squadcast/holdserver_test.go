package squadcast

import (
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
)

// holdServer holds every request until the client goes away (hold is
// true), or answers with status and records the alert ids in order.
type holdServer struct {
	*server
	hold    atomic.Bool
	status  atomic.Int32
	arrived chan string
	mu      sync.Mutex
	ids     []string
}

func newHoldServer(t *testing.T) *holdServer {
	h := &holdServer{arrived: make(chan string, 10000)}
	h.hold.Store(true)
	h.status.Store(http.StatusOK)
	h.server = newServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body) // read it all, so the server notices the client going away
		body := decodeWebhook(t, b)
		id := body.EventID + "/" + body.Description
		if h.hold.Load() {
			h.arrived <- id
			<-r.Context().Done()
			return
		}
		status := int(h.status.Load())
		if status/100 == 2 {
			h.mu.Lock()
			h.ids = append(h.ids, id)
			h.mu.Unlock()
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, "answer for key "+secretKey)
	})
	return h
}

func (h *holdServer) got() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.ids...)
}

func holdConfig(h *holdServer, dir string, workers int) Config {
	return Config{
		Endpoints: []Endpoint{{Name: "default", URL: h.URL + "/v2/incidents/api/" + secretKey, Format: FormatIncidentWebhook}},
		DataDir:   dir,
		Workers:   workers,
	}
}
