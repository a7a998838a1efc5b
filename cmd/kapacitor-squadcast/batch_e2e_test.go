package main

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/cmd/internal/stack"
)

// TestE2EBatchParity checks @squadcast_batch() against Kapacitor's own alert
// node on batch tasks. A seeded random walk is written to a real InfluxDB
// (Debian's influxdb package, started on loopback); for every pair in
// tickscripts/batch — one |alert()...post() task, one @squadcast_batch()
// task, both querying that InfluxDB a minute at a time — kapacitord replays
// the same time range (POST /kapacitor/v1/replays/batch), so both tasks get
// the same batches; each pair must send the same events, incident by
// incident, field for field (details aside), the batch's rows in data
// included.
func TestE2EBatchParity(t *testing.T) {
	st := e2eStartBatch(t, e2eDaemonPath)
	k := st.kap

	hosts := []string{"web-1", "web-2", "db-1", "db-2", "cache-1"}
	start := time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC)
	const n = 360 // an hour of points, every 10s: 60 batches per host
	lines := stack.RandomWalk(7, hosts, n, start, 10*time.Second)
	for i, body := range stack.Batches(lines, 1000) {
		require.NoError(t, st.influx.Write("telegraf", "autogen", body), "writing batch %d to InfluxDB", i)
	}
	stop := start.Add(n * 10 * time.Second)

	pairs := tickPairs(t, "batch")
	require.NotEmpty(t, pairs)
	batchReplayPairs(t, k, pairs, start, stop)

	// The replays are done, so Kapacitor's alert nodes have handed every
	// event to .post() and the daemon has published its events; wait for
	// their requests to stop coming.
	builtin, daemon := e2eSettle(t, st.standIn, 60*time.Second, 2*time.Second, func(posted int) (bool, string) {
		return posted > 0, "no request from Kapacitor yet"
	})

	want, got := e2eByID(e2eDecode(t, builtin)), e2eByID(e2eDecode(t, daemon))
	for _, p := range pairs {
		t.Run(p, func(t *testing.T) { batchComparePair(t, p, want, got) })
	}

	// What @squadcast_batch() emits downstream: one batch per event, its
	// points carrying the event's level, id, message and duration.
	t.Run("downstream", func(t *testing.T) { batchDownstream(t, st, start, stop) })

	// The batch task of docs/tickscript.md
	// (tickscripts/cpu_squadcast_batch.tick), replayed over the same hour:
	// one incident per host, each event's data a five-minute window of that
	// host.
	t.Run("cpu_squadcast_batch", func(t *testing.T) { batchDocumentedTask(t, st, hosts, start, stop, len(daemon)) })
}

// batchReplayPairs defines each pair's two tasks (disabled), replays the
// time range start..stop through each, and waits for the replays to end.
func batchReplayPairs(t *testing.T, k *stack.Kapacitord, pairs []string, start, stop time.Time) {
	t.Helper()
	var replays []string
	for _, p := range pairs {
		for _, task := range []string{p + "_post", p + "_squadcast"} {
			require.NoError(t, k.DefineBatchTask(task, e2eTick(t, filepath.Join("batch", task+".tick")), e2eDBRPs, false), "defining %s", task)
			id, err := k.ReplayBatch(task, start, stop)
			require.NoError(t, err, "replaying %s", task)
			replays = append(replays, id)
		}
	}
	for _, id := range replays {
		_, err := k.WaitReplay(id, 120*time.Second)
		require.NoError(t, err)
	}
}

// batchComparePair checks that pair p's @squadcast_batch() task sent the
// same events as its alert node, whose data hold whole batches.
func batchComparePair(t *testing.T, p string, want, got map[string][]e2eEvent) {
	t.Helper()
	w, g := withPrefix(want, p+":"), withPrefix(got, p+":")
	ids := sortedKeys(w)
	require.NotEmpty(t, ids, "Kapacitor's alert node sent no event for pair %s: the pair tests nothing", p)
	assert.Equal(t, ids, sortedKeys(g), "alert ids")
	levels := e2eCompare(t, ids, w, g)
	n, rows := 0, 0
	for _, id := range ids {
		n += len(w[id])
		for _, ev := range w[id] {
			rows += batchRowCount(ev)
		}
	}
	assert.Greater(t, rows, n, "the events' data should hold whole batches, not one row each")
	t.Logf("%s: %d events over %d ids, levels %v, %d rows of data", p, n, len(ids), levels, rows)
}

// batchEventKey is the id and level of an event, or of a batch downstream.
type batchEventKey struct{ id, level string }

// batchDownstream replays tickscripts/batch/downstream.tick and checks
// that each event the daemon sent has one batch posted downstream,
// carrying its id and level.
func batchDownstream(t *testing.T, st *e2eStack, start, stop time.Time) {
	t.Helper()
	k := st.kap
	require.NoError(t, k.DefineBatchTask("downstream", e2eTick(t, filepath.Join("batch", "downstream.tick")), e2eDBRPs, false))
	before := len(st.standIn.RequestsTo(e2eDaemonPath))
	id, err := k.ReplayBatch("downstream", start, stop)
	require.NoError(t, err)
	_, err = k.WaitReplay(id, 120*time.Second)
	require.NoError(t, err)
	var events []e2eEvent
	var rows []stack.Request
	deadline := time.Now().Add(60 * time.Second)
	for {
		events = e2eDecode(t, st.standIn.RequestsTo(e2eDaemonPath)[before:])
		rows = st.standIn.RequestsTo(e2eDownstream)
		if len(events) > 0 && len(rows) == len(events) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	require.NotEmpty(t, events)
	require.Len(t, rows, len(events), "one batch downstream per event")
	// Each posted batch carries the id and level of one event.
	want := map[batchEventKey]int{}
	for _, ev := range events {
		want[batchEventKey{ev["id"].(string), ev["level"].(string)}]++
	}
	got := map[batchEventKey]int{}
	for i, r := range rows {
		got[batchDownstreamRow(t, i, r)]++
	}
	assert.Equal(t, want, got, "the batches downstream carry the events' ids and levels")
}

// batchDownstreamRow checks the i-th batch posted downstream (one series,
// the event's columns, one id and level for all its points) and returns
// its id and level.
func batchDownstreamRow(t *testing.T, i int, r stack.Request) batchEventKey {
	t.Helper()
	var result struct {
		Series []struct {
			Name    string            `json:"name"`
			Tags    map[string]string `json:"tags"`
			Columns []string          `json:"columns"`
			Values  [][]any           `json:"values"`
		} `json:"series"`
	}
	require.NoError(t, json.Unmarshal(r.Body, &result), "row %d: %s", i, r.Body)
	require.Len(t, result.Series, 1, "row %d: %s", i, r.Body)
	row := result.Series[0]
	assert.Equal(t, "cpu", row.Name, "row %d", i)
	assert.Equal(t, []string{"time", "duration", "id", "level", "load", "message", "usage_idle"}, row.Columns, "row %d", i)
	require.NotEmpty(t, row.Values, "row %d", i)
	id, level := row.Values[0][2].(string), row.Values[0][3].(string)
	for j, v := range row.Values {
		assert.Equal(t, id, v[2], "row %d point %d: one id per batch", i, j)
		assert.Equal(t, level, v[3], "row %d point %d: one level per batch", i, j)
	}
	assert.Equal(t, "downstream:host="+row.Tags["host"], id, "row %d", i)
	return batchEventKey{id, level}
}

// batchDocumentedTask replays tickscripts/cpu_squadcast_batch.tick, the
// batch task docs/tickscript.md shows, and checks its incidents: one per
// host, opened by a problem, state changes only, each event's data at most
// a five-minute window. before is how many requests the daemon had sent
// before the downstream subtest; events of other tasks are told apart by
// their id's prefix.
func batchDocumentedTask(t *testing.T, st *e2eStack, hosts []string, start, stop time.Time, before int) {
	t.Helper()
	k := st.kap
	require.NoError(t, k.DefineBatchTask("cpu_squadcast_batch", e2eTick(t, "cpu_squadcast_batch.tick"), e2eDBRPs, false))
	id, err := k.ReplayBatch("cpu_squadcast_batch", start, stop)
	require.NoError(t, err)
	_, err = k.WaitReplay(id, 120*time.Second)
	require.NoError(t, err)
	var evs map[string][]e2eEvent
	deadline := time.Now().Add(60 * time.Second)
	for {
		evs = withPrefix(e2eByID(e2eDecode(t, st.standIn.RequestsTo(e2eDaemonPath)[before:])), "cpu:")
		if len(evs) == len(hosts) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	require.Len(t, evs, len(hosts), "one incident per host")
	for _, host := range hosts {
		seq := evs["cpu:host="+host]
		require.NotEmpty(t, seq, host)
		assert.NotEqual(t, "OK", seq[0]["level"], "%s: the first event opens the incident", host)
		for i, ev := range seq {
			rows := batchRowCount(ev)
			assert.True(t, rows >= 1 && rows <= 30, "%s event %d: %d rows, want a five-minute window (at most 30)", host, i, rows)
			if i > 0 {
				assert.NotEqual(t, seq[i-1]["level"], ev["level"], "%s event %d: state changes only", host, i)
			}
		}
	}
}

// batchRowCount returns the number of rows in an alert event's data.
func batchRowCount(ev e2eEvent) int {
	data, _ := ev["data"].(map[string]any)
	series, _ := data["series"].([]any)
	n := 0
	for _, s := range series {
		row, _ := s.(map[string]any)
		values, _ := row["values"].([]any)
		n += len(values)
	}
	return n
}
