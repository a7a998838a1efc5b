package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// docMetric is one row of the metrics table of docs/operations.md, or one
// metric family of a /metrics page.
type docMetric struct {
	typ    string   // counter, gauge or histogram
	labels []string // sorted; a histogram's le left out
}

// TestMetricsMatchDocs scrapes a started daemon (a socket task's event and
// a relayed one delivered, so that every family has a series) and compares
// its kapacitor_squadcast_* metrics with the table in docs/operations.md:
// every documented metric is exported with the documented type and
// labels, and every exported one is documented.
func TestMetricsMatchDocs(t *testing.T) {
	documented := documentedMetrics(t)
	require.GreaterOrEqual(t, len(documented), 15, "the table in docs/operations.md is found")

	standIn, requests := pathRecorder()
	defer standIn.Close()
	relayAddr, metricsAddr := freeAddr(t), freeAddr(t)
	d := startTestDaemon(t, "--url", standIn.URL+"/v1/incidents/kapacitor/"+cfgSecret,
		"--listen", metricsAddr, "--relay-listen", relayAddr)

	k, err := dialUDF(t, d.socket)
	require.NoError(t, err)
	res, err := k.init("cpu", strOpt("crit", `"v" < 10`))
	require.NoError(t, err)
	require.True(t, res.GetSuccess(), res.GetError())
	at := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	require.NoError(t, k.point("a", at, 5)) // CRITICAL
	_, errs, err := k.sync(1)
	require.NoError(t, err)
	require.Empty(t, errs)
	code, answer := postRelay(t, "http://"+relayAddr+"/relay/default", "", relayBody)
	require.Equal(t, 200, code, answer)
	require.Eventually(t, func() bool { return len(requests()) == 2 }, 30*time.Second, 10*time.Millisecond)

	var page string
	require.Eventually(t, func() bool {
		_, page = scrape(t, "http://"+metricsAddr, "/metrics")
		return metricValue(page, `kapacitor_squadcast_deliveries_total{endpoint="default",result="delivered"}`) == 2
	}, 30*time.Second, 20*time.Millisecond, "both deliveries are counted")
	exported := exportedMetrics(page)

	for name, doc := range documented {
		got, ok := exported[name]
		if !assert.True(t, ok, "%s is in docs/operations.md but not on /metrics", name) {
			continue
		}
		assert.Equal(t, doc.typ, got.typ, "%s: type", name)
		assert.Equal(t, doc.labels, got.labels, "%s: labels", name)
	}
	for name := range exported {
		_, ok := documented[name]
		assert.True(t, ok, "%s is on /metrics but not in the table of docs/operations.md", name)
	}
}

// documentedMetrics reads the metrics table of docs/operations.md: its
// rows `| `kapacitor_squadcast_x` | type | `label`, ... | meaning |`.
func documentedMetrics(t *testing.T) map[string]docMetric {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "operations.md"))
	require.NoError(t, err)
	code := regexp.MustCompile("`([^`]+)`")
	out := map[string]docMetric{}
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "| `"+metricsNamespace+"_") {
			continue
		}
		cells := strings.Split(line, "|")
		require.GreaterOrEqual(t, len(cells), 5, "a row of four cells: %s", line)
		name := strings.Trim(strings.TrimSpace(cells[1]), "`")
		m := docMetric{typ: strings.TrimSpace(cells[2]), labels: []string{}}
		for _, l := range code.FindAllStringSubmatch(cells[3], -1) {
			m.labels = append(m.labels, l[1])
		}
		slices.Sort(m.labels)
		_, dup := out[name]
		require.False(t, dup, "%s is documented twice", name)
		out[name] = m
	}
	return out
}

// exportedMetrics reads the kapacitor_squadcast_* families of a /metrics
// page (Prometheus' text format): their TYPE, and the label names of
// their series.
func exportedMetrics(page string) map[string]docMetric {
	label := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"`)
	out := map[string]docMetric{}
	for line := range strings.Lines(page) {
		line = strings.TrimSpace(line)
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" && strings.HasPrefix(f[2], metricsNamespace+"_") {
			out[f[2]] = docMetric{typ: f[3], labels: []string{}}
		}
	}
	for line := range strings.Lines(page) {
		if strings.HasPrefix(line, "#") {
			continue
		}
		series, labels := line, ""
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			series = line[:i]
			if line[i] == '{' {
				labels = line[i:max(i, strings.LastIndexByte(line, '}'))]
			}
		}
		name := familyOf(out, series)
		if name == "" {
			continue
		}
		m := out[name]
		for _, l := range label.FindAllStringSubmatch(labels, -1) {
			if l[1] != "le" && !slices.Contains(m.labels, l[1]) {
				m.labels = append(m.labels, l[1])
			}
		}
		slices.Sort(m.labels)
		out[name] = m
	}
	return out
}

// familyOf returns the family of families that a series belongs to (a
// histogram's _bucket, _sum and _count series included), or "".
func familyOf(families map[string]docMetric, series string) string {
	if _, ok := families[series]; ok {
		return series
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if name, ok := strings.CutSuffix(series, suffix); ok && families[name].typ == "histogram" {
			return name
		}
	}
	return ""
}
