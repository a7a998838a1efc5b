package squadcast

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// TestWaiting: on a fake clock, with a server that holds every request,
// Waiting counts the events held in memory by endpoint label and level
// (the one in flight included, spilled ones not) with the publication
// time of the oldest, and names an inline URL "inline", never the URL.
func TestWaiting(t *testing.T) {
	h := newHoldServer(t)
	cfg := holdConfig(h, t.TempDir(), 1)
	cfg.QueueSize = 4
	s, _, clock, _ := newClockSender(t, cfg)
	assert.Empty(t, s.Waiting(), "nothing waits at first")

	named, err := s.Open(udf.Destination{})
	require.NoError(t, err)
	inline, err := s.Open(udf.Destination{URL: h.URL + "/v2/incidents/api/inline" + secretKey})
	require.NoError(t, err)
	publish := func(p udf.Publisher, id string, l udf.Level) {
		t.Helper()
		ev := webhookEvent(id, 0)
		ev.Level = l
		require.NoError(t, p.Publish(ev))
		require.NoError(t, flushNow(p))
		clock.Advance(10 * time.Second)
	}
	publish(named, "a", udf.Critical) // t0: in flight, held
	<-h.arrived
	publish(named, "b", udf.Warning)  // t0+10s
	publish(named, "a", udf.OK)       // t0+20s: after a's CRITICAL
	publish(inline, "c", udf.Warning) // t0+30s
	publish(named, "d", udf.Critical) // t0+40s: spilled (4 in memory)
	require.Equal(t, 1, s.Stats().Spilled)

	at := func(d time.Duration) time.Time { return clockStart.Add(d * time.Second) }
	want := []WaitingStat{
		{Endpoint: "default", Level: udf.OK, Events: 1, Oldest: at(20)},
		{Endpoint: "default", Level: udf.Warning, Events: 1, Oldest: at(10)},
		{Endpoint: "default", Level: udf.Critical, Events: 1, Oldest: at(0)},
		{Endpoint: InlineLabel, Level: udf.Warning, Events: 1, Oldest: at(30)},
	}
	assert.Equal(t, want, s.Waiting())
	assert.NotContains(t, fmt.Sprint(s.Waiting()), secretKey)
}

// TestWaitingMany: events of many incidents and of several levels are all
// counted, the oldest per level found wherever its incident is.
func TestWaitingMany(t *testing.T) {
	sc := newScheduler(realClock{})
	tg := &target{url: "u", label: "x"}
	var jobs []*job
	base := time.Unix(1000, 0)
	for i := range 1000 {
		jobs = append(jobs, &job{target: tg, id: fmt.Sprint(i % 100), level: udf.Level(i % 4),
			created: base.Add(time.Duration(1000-i) * time.Second)})
	}
	sc.incidents = map[incidentKey]*incident{}
	for _, j := range jobs { // as add does, without scheduling
		k := incidentKey{j.target.url, j.id}
		if sc.incidents[k] == nil {
			sc.incidents[k] = &incident{key: k}
		}
		sc.incidents[k].jobs = append(sc.incidents[k].jobs, j)
	}
	got := sc.waitingStats()
	require.Len(t, got, 4)
	for l, st := range got {
		assert.Equal(t, WaitingStat{Endpoint: "x", Level: udf.Level(l), Events: 250,
			Oldest: base.Add(time.Duration(1000-996-l) * time.Second)}, st)
	}
}

// BenchmarkWaiting is one scrape's walk of a full memory queue: 100,000
// events of 50,000 incidents, two endpoints, four levels.
func BenchmarkWaiting(b *testing.B) {
	sc := newScheduler(realClock{})
	targets := []*target{{url: "u1", label: "a"}, {url: "u2", label: "b"}}
	now := time.Now()
	for i := range 100_000 {
		tg := targets[i%2]
		k := incidentKey{tg.url, fmt.Sprint(i % 50_000)}
		inc := sc.incidents[k]
		if inc == nil {
			inc = &incident{key: k}
			sc.incidents[k] = inc
		}
		inc.jobs = append(inc.jobs, &job{target: tg, id: k.id, level: udf.Level(i / 2 % 4), created: now.Add(time.Duration(i))})
	}
	b.ReportAllocs()
	for b.Loop() {
		if st := sc.waitingStats(); len(st) != 8 {
			b.Fatal(st)
		}
	}
}
