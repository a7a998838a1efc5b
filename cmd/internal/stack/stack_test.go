package stack

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func post(t *testing.T, url, body string) *http.Response {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	resp.Body.Close()
	return resp
}

func TestStandInRecordsInOrder(t *testing.T) {
	s := NewStandIn()
	t.Cleanup(s.Close)

	for i := range 3 {
		resp := post(t, s.URL+"/v1/x/"+strconv.Itoa(i), fmt.Sprintf(`{"n":%d}`, i))
		assert.Equal(t, http.StatusOK, resp.StatusCode)
	}
	reqs := s.Requests()
	require.Len(t, reqs, 3)
	for i, r := range reqs {
		assert.Equal(t, http.MethodPost, r.Method)
		assert.Equal(t, "/v1/x/"+strconv.Itoa(i), r.Path)
		assert.Equal(t, "application/json", r.Header.Get("Content-Type"))
		assert.JSONEq(t, fmt.Sprintf(`{"n":%d}`, i), string(r.Body))
		assert.Equal(t, http.StatusOK, r.Status)
		if i > 0 {
			assert.False(t, r.Received.Before(reqs[i-1].Received), "arrival times out of order")
		}
	}
	assert.Len(t, s.RequestsTo("/v1/x/1"), 1)
	assert.Empty(t, s.RequestsTo("/other"))
}

func TestStandInFailFirst(t *testing.T) {
	s := NewStandIn()
	t.Cleanup(s.Close)
	s.FailFirst(2, http.StatusTooManyRequests, "3")

	var codes []int
	var retryAfter []string
	for range 4 {
		resp, err := http.Post(s.URL+"/p", "text/plain", strings.NewReader("x"))
		require.NoError(t, err)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
		retryAfter = append(retryAfter, resp.Header.Get("Retry-After"))
	}
	assert.Equal(t, []int{429, 429, 200, 200}, codes)
	assert.Equal(t, []string{"3", "3", "", ""}, retryAfter)
	var recorded []int
	for _, r := range s.Requests() {
		recorded = append(recorded, r.Status)
	}
	assert.Equal(t, codes, recorded, "the recorded statuses are the ones answered")
}

func TestStandInConcurrentAndWaitFor(t *testing.T) {
	s := NewStandIn()
	t.Cleanup(s.Close)
	s.SetDelay(time.Millisecond)

	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(s.URL+"/c", "text/plain", strings.NewReader(strconv.Itoa(i)))
			if err == nil {
				resp.Body.Close()
			}
		}()
	}
	reqs, err := s.WaitFor(20, 10*time.Second)
	require.NoError(t, err)
	assert.Len(t, reqs, 20)
	wg.Wait()

	seen := map[string]bool{}
	for _, r := range s.Requests() {
		seen[string(r.Body)] = true
	}
	assert.Len(t, seen, 20, "every body recorded once")

	_, err = s.WaitFor(21, 50*time.Millisecond)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "got 20 requests, want at least 21")
}

func TestStandInCloseWhileDelaying(t *testing.T) {
	s := NewStandIn()
	s.SetDelay(time.Hour)
	errc := make(chan error, 1)
	go func() {
		resp, err := http.Post(s.URL+"/slow", "text/plain", strings.NewReader("x"))
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	_, err := s.WaitFor(1, 10*time.Second)
	require.NoError(t, err)
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return while a response was being delayed")
	}
	<-errc
	s.Close() // a second Close is harmless
}

func TestRandomWalk(t *testing.T) {
	hosts := []string{"a", "b", "c"}
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	lines := RandomWalk(42, hosts, 300, start, time.Second)
	require.Len(t, lines, 900)
	assert.Equal(t, lines, RandomWalk(42, hosts, 300, start, time.Second), "same seed, same points")
	assert.NotEqual(t, lines, RandomWalk(43, hosts, 300, start, time.Second), "another seed, other points")

	levelOf := func(v float64) int {
		switch {
		case v < 10:
			return 3
		case v < 25:
			return 2
		case v < 40:
			return 1
		}
		return 0
	}
	var lastTS int64
	changes := map[string]int{}
	last := map[string]int{}
	seenLevels := map[int]bool{}
	for i, l := range lines {
		var host string
		var idle float64
		var load, ts int64
		_, err := fmt.Sscanf(strings.NewReplacer(",", " ", "=", " ").Replace(l), "cpu host %s usage_idle %g load %di %d", &host, &idle, &load, &ts)
		require.NoError(t, err, "line %d: %q", i, l)
		assert.Equal(t, hosts[i%len(hosts)], host)
		assert.True(t, idle >= 0 && idle <= 100, "usage_idle %v out of 0..100", idle)
		assert.True(t, load >= 0 && load <= 10, "load %v out of 0..10", load)
		assert.GreaterOrEqual(t, ts, lastTS, "timestamps in order")
		assert.Equal(t, start.Add(time.Duration(i/len(hosts))*time.Second).UnixNano(), ts)
		lastTS = ts
		lv := levelOf(idle)
		seenLevels[lv] = true
		if p, ok := last[host]; ok && p != lv {
			changes[host]++
		}
		last[host] = lv
	}
	assert.Len(t, seenLevels, 4, "every level is reached")
	for _, h := range hosts {
		assert.Greater(t, changes[h], 50, "host %s changes level often", h)
	}
}

func TestBatches(t *testing.T) {
	assert.Equal(t, []string{"a\nb\n", "c\n"}, Batches([]string{"a", "b", "c"}, 2))
	assert.Equal(t, []string{"a\nb\nc\n"}, Batches([]string{"a", "b", "c"}, 0))
	assert.Empty(t, Batches(nil, 2))
}

func TestKapacitordConfig(t *testing.T) {
	conf := kapacitordConfig(KapacitordConfig{
		UDFSocket: "/tmp/s.sock", UDFName: "squadcast", UDFTimeout: 10 * time.Second,
		HTTPPost: map[string]string{"zeta": "http://127.0.0.1:1/z", "builtin": "http://127.0.0.1:1/b"},
	}, "/d", "127.0.0.1:9", "/d/k.log")
	for _, want := range []string{
		"[[influxdb]]\n  enabled = false",
		"[reporting]\n  enabled = false",
		`bind-address = "127.0.0.1:9"`,
		`boltdb = "/d/kapacitor.db"`,
		`file = "/d/k.log"`,
		"[udf.functions.squadcast]\n  socket = \"/tmp/s.sock\"\n  timeout = \"10s\"",
		"[[httppost]]\n  endpoint = \"builtin\"\n  url = \"http://127.0.0.1:1/b\"",
	} {
		assert.Contains(t, conf, want)
	}
	assert.Less(t, strings.Index(conf, `"builtin"`), strings.Index(conf, `"zeta"`), "endpoints in a stable order")
	assert.NotContains(t, kapacitordConfig(KapacitordConfig{}, "/d", "a:1", "l"), "[udf.")
}

func TestKapacitordConfigBatch(t *testing.T) {
	conf := kapacitordConfig(KapacitordConfig{
		UDFSocket: "/tmp/s.sock", BatchUDFSocket: "/tmp/b.sock", UDFName: "squadcast", UDFTimeout: 10 * time.Second,
		InfluxDBURL: "http://127.0.0.1:8086",
	}, "/d", "127.0.0.1:9", "/d/k.log")
	for _, want := range []string{
		"[[influxdb]]\n  enabled = true\n  default = true\n  name = \"default\"\n  urls = [\"http://127.0.0.1:8086\"]\n  disable-subscriptions = true",
		"[udf.functions.squadcast]\n  socket = \"/tmp/s.sock\"",
		"[udf.functions.squadcast_batch]\n  socket = \"/tmp/b.sock\"\n  timeout = \"10s\"",
	} {
		assert.Contains(t, conf, want)
	}
	assert.Equal(t, 1, strings.Count(conf, "[[influxdb]]"))
}

// TestInfluxd checks the InfluxDB harness against a real influxd: it starts
// on loopback in a temp dir, takes a database, points and queries.
func TestInfluxd(t *testing.T) {
	bin, err := InfluxdBinary()
	if err != nil {
		if os.Getenv("KAPACITOR_SQUADCAST_E2E") == "required" {
			t.Fatalf("%v, and KAPACITOR_SQUADCAST_E2E=required", err)
		}
		t.Skip(err)
	}
	d, err := StartInfluxd(bin, "")
	require.NoError(t, err)
	t.Cleanup(d.Stop)
	assert.True(t, strings.HasPrefix(d.URL, "http://127.0.0.1:"), d.URL)
	require.NoError(t, d.Query("", `CREATE DATABASE "db"`))
	require.NoError(t, d.Write("db", "autogen", Line("h1", 42.5, 6, time.Unix(100, 0))+"\n"))
	err = d.Write("nope", "autogen", Line("h1", 1, 1, time.Unix(100, 0)))
	assert.ErrorContains(t, err, "database not found")
	require.NoError(t, d.Query("db", `SELECT * FROM cpu`))
	assert.ErrorContains(t, d.Query("db", `SELEKT`), "error parsing query")
	dir := d.Dir
	d.Stop()
	_, err = os.Stat(dir)
	assert.True(t, os.IsNotExist(err), "Stop removes the temp dir it made")
}

// kapacitordOrSkip returns $KAPACITORD, skipping the test when it is not set
// unless KAPACITOR_SQUADCAST_E2E=required.
func kapacitordOrSkip(t *testing.T) string {
	t.Helper()
	bin := os.Getenv(KapacitordEnv)
	if bin == "" {
		if os.Getenv("KAPACITOR_SQUADCAST_E2E") == "required" {
			t.Fatalf("%s is not set and KAPACITOR_SQUADCAST_E2E=required: run `make test` (it builds kapacitord)", KapacitordEnv)
		}
		t.Skipf("%s is not set: skipping the test against a real kapacitord (`make test` builds one and sets it)", KapacitordEnv)
	}
	return bin
}

func startKapacitordT(t *testing.T, cfg KapacitordConfig) *Kapacitord {
	t.Helper()
	k, err := StartKapacitord(cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kapacitord log tail:\n%s", k.LogTail(60))
		}
		k.Stop()
	})
	return k
}

// TestKapacitordBuiltinPost checks the harness against a real kapacitord:
// Kapacitor's own alert node posts to a StandIn through an [[httppost]]
// endpoint, and Kapacitor's counters match what arrived.
func TestKapacitordBuiltinPost(t *testing.T) {
	kapacitordOrSkip(t)
	s := NewStandIn()
	t.Cleanup(s.Close)
	k := startKapacitordT(t, KapacitordConfig{HTTPPost: map[string]string{"builtin": s.URL + "/builtin"}})

	script, err := os.ReadFile(filepath.Join("..", "..", "..", "tickscripts", "cpu_alert_post.tick"))
	require.NoError(t, err)
	dbrps := []DBRP{{DB: "telegraf", RP: "autogen"}}
	require.NoError(t, k.DefineTask("cpu_alert_post", string(script), dbrps, true))
	task, err := k.Task("cpu_alert_post")
	require.NoError(t, err)
	assert.Equal(t, "enabled", task.Status)
	assert.True(t, task.Executing)
	assert.Empty(t, task.Error)

	hosts := []string{"h1", "h2"}
	lines := RandomWalk(1, hosts, 100, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), 10*time.Second)
	for _, b := range Batches(lines, 70) {
		require.NoError(t, k.Write("telegraf", "autogen", b))
	}
	task, err = k.WaitTask("cpu_alert_post", 30*time.Second, "all points collected by the alert node", func(t Task) bool {
		n, _ := t.Stat("alert", "collected")
		return n == int64(len(lines))
	})
	require.NoError(t, err)
	triggered, ok := task.Stat("alert", "alerts_triggered")
	require.True(t, ok, "alert node stats: %v", task.NodeStats)
	require.Greater(t, triggered, int64(20), "the walk changes levels often")
	reqs, err := s.WaitFor(int(triggered), 30*time.Second)
	require.NoError(t, err)
	require.Len(t, reqs, int(triggered))

	levels := map[string]int{}
	for _, r := range reqs {
		assert.Equal(t, "/builtin", r.Path)
		var ev struct {
			ID            string `json:"id"`
			Message       string `json:"message"`
			Details       string `json:"details"`
			Time          time.Time
			Duration      int64  `json:"duration"`
			Level         string `json:"level"`
			PreviousLevel string `json:"previousLevel"`
			Recoverable   bool   `json:"recoverable"`
			Data          struct {
				Series []struct {
					Name    string            `json:"name"`
					Tags    map[string]string `json:"tags"`
					Columns []string          `json:"columns"`
					Values  [][]any           `json:"values"`
				} `json:"series"`
			} `json:"data"`
		}
		dec := json.NewDecoder(bytes.NewReader(r.Body))
		dec.DisallowUnknownFields()
		require.NoError(t, dec.Decode(&ev), "body %s", r.Body)
		assert.Contains(t, []string{"cpu:host=h1", "cpu:host=h2"}, ev.ID)
		assert.Equal(t, ev.ID+" is "+ev.Level, ev.Message)
		assert.NotEqual(t, ev.Level, ev.PreviousLevel, "stateChangesOnly")
		assert.True(t, ev.Recoverable)
		assert.GreaterOrEqual(t, ev.Duration, int64(0))
		require.Len(t, ev.Data.Series, 1)
		assert.Equal(t, "cpu", ev.Data.Series[0].Name)
		assert.Equal(t, []string{"time", "load", "usage_idle"}, ev.Data.Series[0].Columns)
		levels[ev.Level]++
	}
	t.Logf("%d events by level: %v; first body: %s", len(reqs), levels, reqs[0].Body)
	assert.Len(t, levels, 4, "all four levels were sent")
}
