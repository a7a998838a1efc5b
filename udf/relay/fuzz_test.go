package relay

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// FuzzParseAlert: no body makes ParseAlert panic; a refusal wraps
// ErrNotJSON exactly when the body is not JSON, or else ErrNotAlert, in
// one short line; an accepted alert holds what Alert and Series promise.
func FuzzParseAlert(f *testing.F) {
	f.Add([]byte(kapacitorBody))
	f.Add([]byte(`{"id":"x","level":"OK","data":{"series":[{"columns":["time","v","s","b"],"values":[["2024-01-01T00:00:00.5+01:00",-1e300,"s",false],["2024-01-01T00:00:00Z",null,"",true]]}]}}`))
	for _, b := range badBodies {
		f.Add([]byte(b.body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		a, err := ParseAlert(body)
		if err != nil {
			if a != nil {
				t.Fatal("an alert with an error")
			}
			if errors.Is(err, ErrNotJSON) == json.Valid(body) || errors.Is(err, ErrNotJSON) == errors.Is(err, ErrNotAlert) {
				t.Fatalf("json.Valid %v, error %v", json.Valid(body), err)
			}
			if msg := err.Error(); strings.ContainsAny(msg, "\r\n") || len(msg) > 512 {
				t.Fatalf("error not one short line: %q", msg)
			}
			return
		}
		checkAlert(t, a)
	})
}

// checkAlert fails t if a breaks what Alert and Series promise.
func checkAlert(t *testing.T, a *Alert) {
	t.Helper()
	if a.ID == "" || a.Level < udf.OK || a.Level > udf.Critical || a.PreviousLevel < udf.OK || a.PreviousLevel > udf.Critical {
		t.Fatalf("bad alert %+v", a)
	}
	for _, s := range a.Series {
		for _, row := range s.Values {
			if len(row) != len(s.Columns) {
				t.Fatalf("row of %d values for %d columns", len(row), len(s.Columns))
			}
			for j, v := range row {
				switch v := v.(type) {
				case time.Time:
					if s.Columns[j] != "time" {
						t.Fatalf("a time in column %q", s.Columns[j])
					}
					continue
				case nil, bool, string:
				case json.Number:
					if _, err := v.Float64(); err != nil && !strings.Contains(err.Error(), "range") {
						t.Fatalf("bad number %q: %v", v, err)
					}
				default:
					t.Fatalf("value of type %T", v)
				}
				if s.Columns[j] == "time" {
					t.Fatalf("%T in the time column", v)
				}
			}
		}
	}
}
