package main

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/cmd/internal/stack"
)

// tickLevels returns, per alert id, the levels of the events in order.
func tickLevels(evs []e2eEvent) map[string][]string {
	out := map[string][]string{}
	for _, ev := range evs {
		id := fmt.Sprint(ev["id"])
		out[id] = append(out[id], fmt.Sprint(ev["level"]))
	}
	return out
}

// tickMessages returns, per alert id and level, the message of the last
// such event.
func tickMessages(evs []e2eEvent) map[string]string {
	out := map[string]string{}
	for _, ev := range evs {
		out[fmt.Sprint(ev["id"])+" "+fmt.Sprint(ev["level"])] = fmt.Sprint(ev["message"])
	}
	return out
}

// TestE2ETickscripts runs the ready threshold scripts of tickscripts/ (cpu,
// memory, disk) in a real kapacitord next to each other, writes points that
// cross their thresholds up and down, and checks the incidents each opens
// and resolves at the stand-in: ids, level sequences and messages.
func TestE2ETickscripts(t *testing.T) {
	st := e2eStart(t, e2eDaemonPath)
	k := st.kap
	cases := tickCases()

	written, want := tickDefineAndWrite(t, k, cases)
	_, err := st.standIn.WaitFor(want, 60*time.Second)
	require.NoError(t, err, "events from the three scripts")
	for task, n := range written {
		_, err := k.WaitTask(task, 30*time.Second, fmt.Sprintf("%d points collected", n), func(t stack.Task) bool {
			return e2eStat(t, "squadcast", "collected") == n
		})
		require.NoError(t, err)
	}
	time.Sleep(time.Second) // let any extra event show up before counting
	reqs := st.standIn.Requests()
	for i, r := range reqs {
		assert.Equal(t, e2eDaemonPath, r.Path, "request %d", i)
	}
	evs := e2eDecode(t, reqs)
	gotLevels, gotMessages := tickLevels(evs), tickMessages(evs)

	for _, c := range cases {
		t.Run(c.script, func(t *testing.T) {
			got := map[string][]string{}
			for id, lv := range gotLevels {
				if strings.HasPrefix(id, c.measurement+":") {
					got[id] = lv
				}
			}
			assert.Equal(t, c.levels, got, "incidents and their levels")
			for key, msg := range c.messages {
				assert.Equal(t, msg, gotMessages[key], "message of %s", key)
			}
		})
	}
	assert.Len(t, reqs, want, "requests in all")
}

// tickCase is one script of TestE2ETickscripts, the points written for it
// and the incidents they must make.
type tickCase struct {
	script      string
	measurement string
	// points writes the script's points through point, which adds the
	// next timestamp to a line of the format.
	points func(point func(format string, args ...any))
	// levels: the events per alert id, in order.
	levels map[string][]string
	// messages: "id LEVEL" -> message of that event.
	messages map[string]string
}

// tickCases is the table of TestE2ETickscripts: cpu, memory and disk.
func tickCases() []tickCase {
	return []tickCase{
		{
			script:      "cpu_squadcast.tick",
			measurement: "cpu",
			points: func(point func(string, ...any)) {
				for _, idle := range []float64{80, 35, 20, 5, 90} {
					point("cpu,host=c1 usage_idle=%g,load=1i", idle)
				}
				for _, idle := range []float64{50, 9, 50} {
					point("cpu,host=c2 usage_idle=%g,load=1i", idle)
				}
			},
			levels: map[string][]string{
				"cpu:host=c1": {"INFO", "WARNING", "CRITICAL", "OK"},
				"cpu:host=c2": {"CRITICAL", "OK"},
			},
			messages: map[string]string{
				"cpu:host=c1 CRITICAL": "cpu:host=c1 is CRITICAL",
				"cpu:host=c2 OK":       "cpu:host=c2 is OK",
			},
		},
		{
			script:      "mem_squadcast.tick",
			measurement: "mem",
			points: func(point func(string, ...any)) {
				for _, used := range []float64{50, 91, 96.04, 92, 40} {
					point("mem,host=m1 used_percent=%g,total=8000000000i", used)
				}
				for _, used := range []float64{60, 89.9, 60} { // never over 90%: no incident
					point("mem,host=m2 used_percent=%g,total=8000000000i", used)
				}
			},
			levels: map[string][]string{
				"mem:host=m1": {"WARNING", "CRITICAL", "WARNING", "OK"},
			},
			messages: map[string]string{
				"mem:host=m1 CRITICAL": "m1: memory 96.0% used (CRITICAL)",
				"mem:host=m1 WARNING":  "m1: memory 92.0% used (WARNING)",
				"mem:host=m1 OK":       "m1: memory 40.0% used (OK)",
			},
		},
		{
			script:      "disk_squadcast.tick",
			measurement: "disk",
			points: func(point func(string, ...any)) {
				for _, used := range []float64{70, 85, 95.5, 50} {
					point("disk,host=d1,path=/,device=sda1,fstype=ext4 used_percent=%g,free=1000i", used)
				}
				for _, used := range []float64{60, 79} { // same host, another path: no incident
					point("disk,host=d1,path=/var,device=sda2,fstype=ext4 used_percent=%g,free=1000i", used)
				}
				for _, used := range []float64{91, 10} {
					point("disk,host=d2,path=/data,device=nvme0n1,fstype=xfs used_percent=%g,free=1000i", used)
				}
			},
			levels: map[string][]string{
				"disk:host=d1,path=/":     {"WARNING", "CRITICAL", "OK"},
				"disk:host=d2,path=/data": {"CRITICAL", "OK"},
			},
			messages: map[string]string{
				"disk:host=d1,path=/ CRITICAL":     "d1:/: disk 95.5% used (CRITICAL)",
				"disk:host=d2,path=/data CRITICAL": "d2:/data: disk 91.0% used (CRITICAL)",
				"disk:host=d2,path=/data OK":       "d2:/data: disk 10.0% used (OK)",
			},
		},
	}
}

// tickDefineAndWrite defines each case's task, then writes all their
// points at once, a second apart. It returns the points written per task
// and the number of events the cases expect in all.
func tickDefineAndWrite(t *testing.T, k *stack.Kapacitord, cases []tickCase) (written map[string]int64, want int) {
	t.Helper()
	var lines []string
	ts := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	point := func(format string, args ...any) {
		ts = ts.Add(time.Second)
		lines = append(lines, fmt.Sprintf(format, args...)+" "+strconv.FormatInt(ts.UnixNano(), 10))
	}
	written = map[string]int64{} // task -> points of its measurement
	for _, c := range cases {
		task := strings.TrimSuffix(c.script, ".tick")
		e2eDefineRunning(t, k, task, e2eTick(t, c.script))
		before := len(lines)
		c.points(point)
		written[task] = int64(len(lines) - before)
		for _, lv := range c.levels {
			want += len(lv)
		}
	}
	require.NoError(t, k.Write("telegraf", "autogen", strings.Join(lines, "\n")+"\n"))
	return written, want
}

// deadmanWriter writes a "cpu" point for each live host every 100ms, with
// the current time, until stopped.
type deadmanWriter struct {
	k    *stack.Kapacitord
	mu   sync.Mutex
	live []string
	err  error
	stop chan struct{}
	done chan struct{}
}

func startDeadmanWriter(k *stack.Kapacitord, hosts ...string) *deadmanWriter {
	w := &deadmanWriter{k: k, live: hosts, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case now := <-tick.C:
				w.mu.Lock()
				live := append([]string(nil), w.live...)
				w.mu.Unlock()
				if len(live) == 0 {
					continue
				}
				var b strings.Builder
				for _, h := range live {
					b.WriteString(stack.Line(h, 50, 5, now) + "\n")
				}
				if err := w.k.Write("telegraf", "autogen", b.String()); err != nil {
					w.mu.Lock()
					if w.err == nil {
						w.err = err
					}
					w.mu.Unlock()
				}
			}
		}
	}()
	return w
}

// set changes the hosts that report.
func (w *deadmanWriter) set(hosts ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.live = hosts
}

// close stops writing and returns the first write error.
func (w *deadmanWriter) close() error {
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

// waitEvents polls the stand-in until cond holds for the decoded events and
// returns them, or fails the test after timeout.
func waitEvents(t *testing.T, s *stack.StandIn, timeout time.Duration, what string, cond func(map[string][]string) bool) []e2eEvent {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		evs := e2eDecode(t, s.Requests())
		if cond(tickLevels(evs)) {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s; events so far: %v", what, timeout, tickLevels(evs))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// squadcastCollected returns the "collected" counters of the task's
// @squadcast() nodes, in the order they appear in the script.
func squadcastCollected(task stack.Task) []int64 {
	re := regexp.MustCompile(`^squadcast(\d+)$`)
	type node struct{ n, collected int64 }
	var nodes []node
	for name := range task.NodeStats {
		if m := re.FindStringSubmatch(name); m != nil {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			c, _ := task.Stat(name, "collected")
			nodes = append(nodes, node{n, c})
		}
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].n < nodes[j].n })
	out := make([]int64, len(nodes))
	for i, nd := range nodes {
		out[i] = nd.collected
	}
	return out
}

// TestE2EDeadman runs tickscripts/deadman_squadcast.tick with a 2s period
// (Kapacitor's own clock drives it, so points are written in real time):
// while hosts a and b report nothing is sent; when b stops, b's incident
// opens, and resolves when b reports again; when both stop, the
// measurement-wide incident and a's and b's open, and all resolve when the
// points come back.
func TestE2EDeadman(t *testing.T) {
	st := e2eStart(t, e2eDaemonPath)
	k := st.kap
	const task = "deadman"
	all, hostA, hostB := task+":all", task+":host=a", task+":host=b"

	// Writing starts before the task, so that it sees points from its first
	// period on.
	w := startDeadmanWriter(k, "a", "b")
	t.Cleanup(func() { w.close() })
	vars := map[string]stack.TaskVar{"period": {Type: "duration", Value: "2s"}}
	require.NoError(t, k.DefineTaskVars(task, e2eTick(t, "deadman_squadcast.tick"), e2eDBRPs, vars, true))
	_, err := k.WaitTask(task, 30*time.Second, "executing", func(t stack.Task) bool { return t.Executing })
	require.NoError(t, err)

	// Both @squadcast() nodes have judged at least two periods (the per-host
	// node sees a and b each period): nothing was sent while data flowed.
	running, err := k.WaitTask(task, 60*time.Second, "two periods judged by both @squadcast() nodes", func(t stack.Task) bool {
		c := squadcastCollected(t)
		return len(c) == 2 && c[0] >= 2 && c[1] >= 4
	})
	require.NoError(t, err)
	require.Empty(t, running.Error)
	assert.Zero(t, st.standIn.Count(), "events while every host reports: %v", tickLevels(e2eDecode(t, st.standIn.Requests())))

	const wait = 60 * time.Second
	w.set("a")
	waitEvents(t, st.standIn, wait, "CRITICAL for b after b stopped", func(lv map[string][]string) bool {
		return len(lv[hostB]) == 1
	})
	w.set("a", "b")
	waitEvents(t, st.standIn, wait, "OK for b after b came back", func(lv map[string][]string) bool {
		return len(lv[hostB]) == 2
	})
	w.set()
	waitEvents(t, st.standIn, wait, "CRITICAL for all, a and b after every host stopped", func(lv map[string][]string) bool {
		return len(lv[all]) == 1 && len(lv[hostA]) == 1 && len(lv[hostB]) == 3
	})
	w.set("a", "b")
	evs := waitEvents(t, st.standIn, wait, "OK for all, a and b after the hosts came back", func(lv map[string][]string) bool {
		return len(lv[all]) == 2 && len(lv[hostA]) == 2 && len(lv[hostB]) == 4
	})
	require.NoError(t, w.close(), "writing points")

	assert.Equal(t, map[string][]string{
		all:   {"CRITICAL", "OK"},
		hostA: {"CRITICAL", "OK"},
		hostB: {"CRITICAL", "OK", "CRITICAL", "OK"},
	}, tickLevels(evs), "incidents and their levels")
	msgs := tickMessages(evs)
	assert.Equal(t, "b: no data (0 points in the last period)", msgs[hostB+" CRITICAL"])
	assert.Regexp(t, `^b: data flows again \([1-9]\d* points in the last period\)$`, msgs[hostB+" OK"])
	assert.Equal(t, "deadman: no data (0 points in the last period)", msgs[all+" CRITICAL"])
	for _, ev := range evs {
		series := ev["data"].(map[string]any)["series"].([]any)[0].(map[string]any)
		assert.Equal(t, "stats", series["name"], "event %s %s", ev["id"], ev["level"])
	}
}
