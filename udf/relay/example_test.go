package relay_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf/relay"
)

// printSink prints what it is given; a real Sink writes it to disk first.
type printSink struct{}

func (printSink) HasEndpoint(name string) bool { return name == "default" }

func (printSink) Relay(endpoint string, a *relay.Alert, body []byte) error {
	fmt.Printf("%s: %s is %s (%d bytes)\n", endpoint, a.ID, a.Level, len(body))
	return nil
}

// The handler serves POST /relay/<endpoint>, here on a mux beside other
// paths, behind a token that Kapacitor sends with [[httppost]] headers.
func ExampleNewHandler() {
	mux := http.NewServeMux()
	mux.Handle("/relay/", relay.NewHandler(relay.Config{Sink: printSink{}, Token: "t0ken"}))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	body := `{"id":"cpu:nil","message":"cpu:nil is CRITICAL","details":"","time":"2024-01-01T00:00:00Z","duration":0,"level":"CRITICAL","data":{"series":null},"previousLevel":"OK","recoverable":true}` + "\n"
	for _, auth := range []string{"Bearer t0ken", "Bearer guess"} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/relay/default", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		answer, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		fmt.Printf("%d %s", resp.StatusCode, answer)
	}
	// Output:
	// default: cpu:nil is CRITICAL (187 bytes)
	// 200 accepted
	// 401 wrong token
}
