package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/cmd/internal/stack"
)

// TestE2EParity runs every pair of TICKscripts in tickscripts/parity — one
// with Kapacitor's own |alert()...post(), one with @squadcast() — side by
// side in one kapacitord on the same seeded random walk, and checks that
// each pair sends the same events, incident by incident, field for field
// (details aside). Each pair's scripts give their alerts the id
// "<pair>:<group>", which keeps the pairs apart.
func TestE2EParity(t *testing.T) {
	st := e2eStart(t, e2eDaemonPath)
	k := st.kap

	pairs := tickPairs(t, "parity")
	require.NotEmpty(t, pairs)
	for _, p := range pairs {
		e2eDefineRunning(t, k, p+"_post", e2eTick(t, filepath.Join("parity", p+"_post.tick")))
		e2eDefineRunning(t, k, p+"_squadcast", e2eTick(t, filepath.Join("parity", p+"_squadcast.tick")))
	}

	hosts := []string{"web-1", "web-2", "db-1", "db-2", "cache-1"}
	lines := stack.RandomWalk(5, hosts, 300, time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC), 10*time.Second)
	total := int64(len(lines))
	for i, body := range stack.Batches(lines, 500) {
		require.NoError(t, k.Write("telegraf", "autogen", body), "writing batch %d", i)
	}

	// Settled: every task took every point, Kapacitor's handlers posted all
	// their alert nodes triggered, and the counts stopped moving.
	builtin, daemon := e2eSettle(t, st.standIn, 120*time.Second, time.Second, func(posted int) (bool, string) {
		return parityComplete(k, pairs, total, posted)
	})

	want, got := e2eByID(e2eDecode(t, builtin)), e2eByID(e2eDecode(t, daemon))
	for _, p := range pairs {
		t.Run(p, func(t *testing.T) {
			w, g := withPrefix(want, p+":"), withPrefix(got, p+":")
			ids := sortedKeys(w)
			require.NotEmpty(t, ids, "Kapacitor's alert node sent no event for pair %s: the pair tests nothing", p)
			assert.Equal(t, ids, sortedKeys(g), "alert ids")
			levels := e2eCompare(t, ids, w, g)
			n := 0
			for _, id := range ids {
				n += len(w[id])
			}
			t.Logf("%s: %d events over %d ids, levels %v", p, n, len(ids), levels)
		})
	}
}

// tickPairs lists the pairs in tickscripts/DIR: every X with both
// X_post.tick (Kapacitor's |alert()) and X_squadcast.tick (the UDF).
func tickPairs(t *testing.T, dir string) []string {
	t.Helper()
	dir = filepath.Join("..", "..", "tickscripts", dir)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var pairs []string
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), "_post.tick")
		if !ok {
			continue
		}
		_, err := os.Stat(filepath.Join(dir, name+"_squadcast.tick"))
		require.NoError(t, err, "%s has no twin %s_squadcast.tick", e.Name(), name)
		pairs = append(pairs, name)
	}
	return pairs
}

// parityComplete reports whether every task collected every point and
// Kapacitor posted every event its alert nodes triggered.
func parityComplete(k *stack.Kapacitord, pairs []string, points int64, posted int) (bool, string) {
	var triggered int64
	var missing []string
	for _, p := range pairs {
		post, err1 := k.Task(p + "_post")
		sq, err2 := k.Task(p + "_squadcast")
		if err1 != nil || err2 != nil {
			return false, fmt.Sprintf("pair %s: %v %v", p, err1, err2)
		}
		if sq.Error != "" {
			return false, fmt.Sprintf("%s_squadcast failed: %s", p, sq.Error)
		}
		triggered += e2eStat(post, "alert", "alerts_triggered")
		if c := e2eStat(post, "alert", "collected"); c != points {
			missing = append(missing, fmt.Sprintf("%s_post collected %d", p, c))
		}
		if c := e2eStat(sq, "squadcast", "collected"); c != points {
			missing = append(missing, fmt.Sprintf("%s_squadcast collected %d", p, c))
		}
	}
	if int64(posted) != triggered {
		missing = append(missing, fmt.Sprintf("alert nodes triggered %d, posted %d", triggered, posted))
	}
	return len(missing) == 0, fmt.Sprintf("of %d points: %s", points, strings.Join(missing, ", "))
}

func withPrefix(m map[string][]e2eEvent, prefix string) map[string][]e2eEvent {
	out := map[string][]e2eEvent{}
	for id, evs := range m {
		if strings.HasPrefix(id, prefix) {
			out[id] = evs
		}
	}
	return out
}

func sortedKeys(m map[string][]e2eEvent) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
