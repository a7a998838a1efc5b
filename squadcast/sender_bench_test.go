package squadcast_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast"
	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// benchSenderEvent is a typical event of the cpu task of cmd/internal/udfload.
func benchSenderEvent(i int) udf.Event {
	host := fmt.Sprintf("host-%04d", i%1000)
	return udf.Event{
		TaskID: "cpu", NodeID: "squadcast1",
		ID: "cpu:host=" + host, Message: "cpu:host=" + host + " is CRITICAL",
		Details: `{"Name":"cpu","TaskName":"cpu","Group":"host=` + host + `"}`,
		Time:    time.Date(2026, 1, 1, 0, 0, 0, i, time.UTC), Duration: time.Minute,
		Level: udf.Critical, PreviousLevel: udf.OK, Recoverable: true,
		Name: "cpu", Group: "host=" + host,
		Tags:   map[string]string{"host": host, "cpu": "cpu-total"},
		Fields: map[string]interface{}{"usage_idle": 5.0, "usage_user": 93.0, "usage_system": 1.5, "usage_iowait": 0.5},
	}
}

// benchPublisher returns a publisher of a Sender whose default endpoint is
// a local server that answers 200 at once; the Sender's outbox is in a
// temporary dir. Delivery runs in the background during the benchmark, as
// it does in the daemon.
func benchPublisher(b *testing.B) (udf.Publisher, *squadcast.Sender) {
	b.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	b.Cleanup(srv.Close)
	s, err := squadcast.New(squadcast.Config{
		Endpoints: []squadcast.Endpoint{{Name: squadcast.DefaultEndpoint, URL: srv.URL + "/v1/incidents/kapacitor/benchkey"}},
		DataDir:   b.TempDir(),
		QueueSize: 1 << 24, // never refuse: the benchmark may publish faster than a local server takes
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	pub, err := s.Open(udf.Destination{Endpoint: squadcast.DefaultEndpoint})
	if err != nil {
		b.Fatal(err)
	}
	return pub, s
}

// BenchmarkSenderPublishFlush is the cost on the connection's goroutine of
// publishing events: Publish only (render, encode, enqueue); Publish with
// a Flush (wait until the event is on disk) after every event, the worst
// case of one state change per read burst; and a Flush per 100 events.
func BenchmarkSenderPublishFlush(b *testing.B) {
	for _, tc := range []struct {
		name       string
		flushEvery int // 0: never
	}{
		{"publish-only", 0},
		{"flush-each", 1},
		{"flush-per-100", 100},
	} {
		b.Run(tc.name, func(b *testing.B) {
			pub, _ := benchPublisher(b)
			evs := make([]udf.Event, 1000)
			for i := range evs {
				evs[i] = benchSenderEvent(i)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := pub.Publish(evs[i%len(evs)]); err != nil {
					b.Fatal(err)
				}
				i++
				if tc.flushEvery > 0 && i%tc.flushEvery == 0 {
					if err := pub.Flush(nil); err != nil {
						b.Fatal(err)
					}
				}
			}
			if err := pub.Flush(nil); err != nil {
				b.Fatal(err)
			}
		})
	}
}
