package relay

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// nopSink accepts every alert and keeps nothing.
type nopSink struct{}

func (nopSink) HasEndpoint(string) bool            { return true }
func (nopSink) Relay(string, *Alert, []byte) error { return nil }

func BenchmarkParseAlert(b *testing.B) {
	body := []byte(kapacitorBody)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := ParseAlert(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServeHTTP: one accepted request, token checked, without the
// network and with a Sink that stores nothing.
func BenchmarkServeHTTP(b *testing.B) {
	h := NewHandler(Config{Sink: nopSink{}, Token: secret})
	b.ReportAllocs()
	b.SetBytes(int64(len(kapacitorBody)))
	for b.Loop() {
		r := httptest.NewRequest("POST", "/relay/default", strings.NewReader(kapacitorBody))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer "+secret)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}
