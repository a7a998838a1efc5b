package udf

import (
	"encoding/json"
	"fmt"
)

// snapshotV1 is the snapshot given to Kapacitor: versioned JSON, small
// because only alerting groups are in it.
type snapshotV1 struct {
	Version int             `json:"version"`
	AsOf    int64           `json:"as_of"`
	Groups  []snapshotGroup `json:"groups"`
}

type snapshotGroup struct {
	Group string `json:"group"`
	Level Level  `json:"level"`
	First int64  `json:"first"`
	Last  int64  `json:"last"`
	ID    string `json:"id"`
}

// encodeSnapshot encodes the groups whose level (their incident's, see
// Handler.incidentLevel) is not OK.
func encodeSnapshot(asOf int64, groups map[string]*groupState, level func(*groupState) Level) []byte {
	s := snapshotV1{Version: 1, AsOf: asOf, Groups: make([]snapshotGroup, 0, len(groups))}
	for g, st := range groups {
		l := level(st)
		if l == OK {
			continue // kept for its .flapping() history only: absent is OK
		}
		s.Groups = append(s.Groups, snapshotGroup{Group: g, Level: l, First: st.firstTriggered, Last: st.lastTriggered, ID: st.alertID()})
	}
	b, _ := json.Marshal(s) // plain data: cannot fail
	return b
}

func decodeSnapshot(b []byte) (asOf int64, groups []SavedGroup, err error) {
	if len(b) == 0 {
		return 0, nil, fmt.Errorf("empty snapshot")
	}
	var s snapshotV1
	if err := json.Unmarshal(b, &s); err != nil {
		return 0, nil, fmt.Errorf("decode snapshot: %w", err)
	}
	if s.Version != 1 {
		return 0, nil, fmt.Errorf("snapshot version %d, want 1", s.Version)
	}
	for _, g := range s.Groups {
		if g.Level <= OK || g.Level > Critical {
			return 0, nil, fmt.Errorf("snapshot group %q has bad level %d", g.Group, g.Level)
		}
		groups = append(groups, SavedGroup{Group: g.Group, Level: g.Level, FirstTriggered: g.First, LastTriggered: g.Last, ID: g.ID})
	}
	return s.AsOf, groups, nil
}
