package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/cmd/internal/stack"
)

// healthScrapeURL is the url tag Telegraf's prometheus input adds: the
// address of examples/telegraf.conf.
const healthScrapeURL = "http://127.0.0.1:9187/metrics"

// healthWriter writes, every 100ms with the current time, the points
// Telegraf's prometheus input (metric_version = 2, examples/telegraf.conf)
// writes for one scrape of the daemon's /metrics: measurement "prometheus",
// one field per sample, the labels and the url and host tags as tags.
type healthWriter struct {
	k    *stack.Kapacitord
	mu   sync.Mutex
	age  float64 // oldest_waiting_event_age_seconds{endpoint="default"}
	dead float64 // deliveries_total{endpoint="default",result="dead_lettered"}
	sent float64 // deliveries_total{endpoint="default",result="delivered"}
	// silent: no scrape is written (the daemon stopped).
	silent bool
	err    error
	stop   chan struct{}
	done   chan struct{}
}

func startHealthWriter(k *stack.Kapacitord) *healthWriter {
	w := &healthWriter{k: k, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case now := <-tick.C:
				if body := w.scrape(now); body != "" {
					if err := w.k.Write("telegraf", "autogen", body); err != nil {
						w.set(func(w *healthWriter) {
							if w.err == nil {
								w.err = err
							}
						})
					}
				}
			}
		}
	}()
	return w
}

// scrape returns the line protocol of one scrape at now, or "" when silent.
func (w *healthWriter) scrape(now time.Time) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.silent {
		return ""
	}
	w.sent++
	ts := strconv.FormatInt(now.UnixNano(), 10)
	tags := "host=h1,url=" + healthScrapeURL
	lines := []string{
		"prometheus,commit=0123abc,goversion=go1.24.0," + tags + ",version=1.0.0 kapacitor_squadcast_build_info=1",
		"prometheus,endpoint=default," + tags + " kapacitor_squadcast_oldest_waiting_event_age_seconds=" + fmt.Sprint(w.age),
		"prometheus,endpoint=default," + tags + ",result=dead_lettered kapacitor_squadcast_deliveries_total=" + fmt.Sprint(w.dead),
		"prometheus,endpoint=default," + tags + ",result=delivered kapacitor_squadcast_deliveries_total=" + fmt.Sprint(w.sent),
		"prometheus," + tags + " kapacitor_squadcast_outbox_pending_events=0",
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l + " " + ts + "\n")
	}
	return b.String()
}

// set changes the writer's state under its lock.
func (w *healthWriter) set(f func(*healthWriter)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f(w)
}

// close stops writing and returns the first write error.
func (w *healthWriter) close() error {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// healthAlert is one line of the .log() handler's file.
type healthAlert struct {
	ID      string `json:"id"`
	Message string `json:"message"`
	Level   string `json:"level"`
}

// healthAlerts reads the alerts logged so far (none when the file does not
// exist yet).
func healthAlerts(t *testing.T, path string) []healthAlert {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	defer f.Close()
	var out []healthAlert
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var a healthAlert
		require.NoError(t, json.Unmarshal(sc.Bytes(), &a), "log line %q", sc.Text())
		out = append(out, a)
	}
	require.NoError(t, sc.Err())
	return out
}

// waitHealthAlert waits until the log holds n alerts and returns them.
func waitHealthAlert(t *testing.T, path string, n int, what string) []healthAlert {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := healthAlerts(t, path)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 20s; alerts so far: %+v", what, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startHealthKapacitord starts kapacitord alone: the health task needs
// neither the daemon nor its UDF, only the points Telegraf writes.
func startHealthKapacitord(t *testing.T) (k *stack.Kapacitord, dir string) {
	t.Helper()
	bin := e2eKapacitord(t)
	dir = t.TempDir()
	kapDir := filepath.Join(dir, "kapacitord")
	require.NoError(t, os.MkdirAll(kapDir, 0o755))
	k, err := stack.StartKapacitord(stack.KapacitordConfig{Binary: bin, Dir: kapDir})
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kapacitord log (tail):\n%s", k.LogTail(60))
		}
		k.Stop()
	})
	return k, dir
}

// TestE2EHealthTickscript runs tickscripts/kapacitor_squadcast_health.tick in
// a real kapacitord on the points Telegraf writes from the daemon's metrics,
// with short windows through the script's vars, and reads the alerts its
// .log() handler wrote: nothing while healthy; CRITICAL then OK when the
// oldest event waits too long; CRITICAL then OK when a dead letter appears;
// CRITICAL when the scrapes stop, OK when they come back.
func TestE2EHealthTickscript(t *testing.T) {
	const task = "kapacitor_squadcast_health"
	k, dir := startHealthKapacitord(t)
	logFile := filepath.Join(dir, "health.log")

	// Writing starts before the task, so that its silence check sees the
	// daemon from its first period on.
	w := startHealthWriter(k)
	t.Cleanup(func() { w.close() })
	vars := map[string]stack.TaskVar{
		"logFile":          {Type: "string", Value: logFile},
		"silence":          {Type: "duration", Value: "2s"},
		"deadLetterWindow": {Type: "duration", Value: "2s"},
		"checkEvery":       {Type: "duration", Value: "500ms"},
	}
	require.NoError(t, k.DefineTaskVars(task, e2eTick(t, task+".tick"), e2eDBRPs, vars, true))
	running, err := k.WaitTask(task, 20*time.Second, "two silence periods judged", func(t stack.Task) bool {
		return e2eStat(t, healthDeadmanNode(t), "collected") >= 2
	})
	require.NoError(t, err)
	require.Empty(t, running.Error)
	require.Empty(t, healthAlerts(t, logFile), "alerts while the daemon is healthy")

	w.set(func(w *healthWriter) { w.age = 400 })
	waitHealthAlert(t, logFile, 1, "CRITICAL for the wait")
	w.set(func(w *healthWriter) { w.age = 0 })
	waitHealthAlert(t, logFile, 2, "OK for the wait")
	w.set(func(w *healthWriter) { w.dead = 1 })
	waitHealthAlert(t, logFile, 3, "CRITICAL for the dead letter")
	waitHealthAlert(t, logFile, 4, "OK for the dead letter once out of the window")
	w.set(func(w *healthWriter) { w.silent = true })
	waitHealthAlert(t, logFile, 5, "CRITICAL for the silence")
	w.set(func(w *healthWriter) { w.silent = false })
	waitHealthAlert(t, logFile, 6, "OK for the silence")
	require.NoError(t, w.close(), "writing points")
	time.Sleep(500 * time.Millisecond) // let any extra alert show up

	group := "endpoint=default,host=h1,url=" + healthScrapeURL
	wait, dead, silent := task+":wait:"+group, task+":dead_letters:"+group, task+":silent:host=h1,url="+healthScrapeURL
	got := healthAlerts(t, logFile)
	var seq []string
	for _, a := range got {
		seq = append(seq, a.ID+" "+a.Level)
	}
	assert.Equal(t, []string{
		wait + " CRITICAL", wait + " OK",
		dead + " CRITICAL", dead + " OK",
		silent + " CRITICAL", silent + " OK",
	}, seq, "alerts in order")
	require.Len(t, got, 6)
	assert.Equal(t, "kapacitor-squadcast on h1, endpoint default: the oldest waiting event is 400 s old (CRITICAL)", got[0].Message)
	assert.Equal(t, "kapacitor-squadcast on h1, endpoint default: the oldest waiting event is 0 s old (OK)", got[1].Message)
	assert.Equal(t, "kapacitor-squadcast on h1, endpoint default: dead letters in the window: 1 (CRITICAL; kapacitor-squadcast outbox list shows them)", got[2].Message)
	assert.Equal(t, "kapacitor-squadcast on h1, endpoint default: dead letters in the window: 0 (OK; kapacitor-squadcast outbox list shows them)", got[3].Message)
	assert.Equal(t, "kapacitor-squadcast on h1 ("+healthScrapeURL+"): no metrics (0 points in the last period)", got[4].Message)
	assert.Regexp(t, `^kapacitor-squadcast on h1 \(.*\): reports again \([1-9]\d* points in the last period\)$`, got[5].Message)
}

// healthDeadmanNode names the task's last alert node: the one |deadman()
// adds, at the end of the script.
func healthDeadmanNode(task stack.Task) string {
	best, bestN := "", -1
	for name := range task.NodeStats {
		if rest, ok := strings.CutPrefix(name, "alert"); ok {
			if n, err := strconv.Atoi(rest); err == nil && n > bestN {
				best, bestN = name, n
			}
		}
	}
	return best
}

// TestHealthTelegrafConf checks that examples/telegraf.conf scrapes what
// the health test writes: the daemon's --listen of the example config, in
// the metric_version 2 layout the health TICKscript reads.
func TestHealthTelegrafConf(t *testing.T) {
	var conf struct {
		Inputs struct {
			Prometheus []struct {
				URLs          []string `toml:"urls"`
				MetricVersion int      `toml:"metric_version"`
			} `toml:"prometheus"`
		} `toml:"inputs"`
	}
	_, err := toml.DecodeFile(filepath.Join("..", "..", "examples", "telegraf.conf"), &conf)
	require.NoError(t, err)
	require.Len(t, conf.Inputs.Prometheus, 1, "[[inputs.prometheus]] sections")
	in := conf.Inputs.Prometheus[0]
	assert.Equal(t, []string{healthScrapeURL}, in.URLs)
	assert.Equal(t, 2, in.MetricVersion, "metric_version")

	var daemon struct {
		Listen string `toml:"listen"`
	}
	_, err = toml.DecodeFile(filepath.Join("..", "..", "examples", "kapacitor-squadcast.toml"), &daemon)
	require.NoError(t, err)
	assert.Equal(t, "http://"+daemon.Listen+"/metrics", healthScrapeURL, "the example daemon's listen address")
	assert.Contains(t, e2eTick(t, "kapacitor_squadcast_health.tick"), "var measurement = 'prometheus'")
}
