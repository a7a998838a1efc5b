package stack

import (
	"fmt"
	"math"
	"math/rand"
	"strconv"
	"strings"
	"time"
)

// RandomWalk returns n line-protocol points per host for measurement "cpu"
// with tag "host" and fields usage_idle (float, 0..100, two decimals) and
// load (integer, 0..10), sorted by time and then by host, with explicit
// nanosecond timestamps start, start+step, ... The same seed gives the same
// points.
//
// Each host's usage_idle walks in big steps (up to ±35) and reflects at 0 and
// 100, so it crosses the thresholds the tickscripts use (10, 25, 40) many
// times: every alert level comes and goes.
func RandomWalk(seed int64, hosts []string, n int, start time.Time, step time.Duration) []string {
	rng := rand.New(rand.NewSource(seed))
	idle := make([]float64, len(hosts))
	for i := range idle {
		idle[i] = 30 + rng.Float64()*60
	}
	lines := make([]string, 0, len(hosts)*n)
	for i := range n {
		ts := start.Add(time.Duration(i) * step)
		for h, host := range hosts {
			v := idle[h] + (rng.Float64()*2-1)*35
			if v < 0 {
				v = -v
			}
			if v > 100 {
				v = 200 - v
			}
			v = math.Round(v*100) / 100
			idle[h] = v
			load := int64(math.Round((100 - v) / 10))
			lines = append(lines, Line(host, v, load, ts))
		}
	}
	return lines
}

// Line formats one point of measurement "cpu" for host.
func Line(host string, usageIdle float64, load int64, ts time.Time) string {
	return fmt.Sprintf("cpu,host=%s usage_idle=%s,load=%di %d",
		escapeTag(host), strconv.FormatFloat(usageIdle, 'f', -1, 64), load, ts.UnixNano())
}

func escapeTag(s string) string {
	return strings.NewReplacer(",", `\,`, "=", `\=`, " ", `\ `).Replace(s)
}

// Batches splits lines into line-protocol bodies of at most size lines each.
func Batches(lines []string, size int) []string {
	if size <= 0 {
		size = len(lines)
	}
	var out []string
	for len(lines) > 0 {
		k := min(size, len(lines))
		out = append(out, strings.Join(lines[:k], "\n")+"\n")
		lines = lines[k:]
	}
	return out
}
