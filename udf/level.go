package udf

import (
	"fmt"
	"strings"
)

// Level is an alert level, ordered like Kapacitor's: OK < INFO < WARNING < CRITICAL.
type Level int8

// The alert levels, in Kapacitor's order.
const (
	OK Level = iota
	Info
	Warning
	Critical
)

var levelNames = [...]string{"OK", "INFO", "WARNING", "CRITICAL"}

// String returns the level's name as Kapacitor spells it ("OK", "INFO", "WARNING", "CRITICAL").
func (l Level) String() string {
	if l >= OK && l <= Critical {
		return levelNames[l]
	}
	return "unknown"
}

// MarshalText encodes the level as its name, as Kapacitor's alert JSON does.
func (l Level) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText decodes a level name, case-insensitively.
func (l *Level) UnmarshalText(text []byte) error {
	v, err := ParseLevel(string(text))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// ParseLevel parses a level name ("ok", "Info", "WARNING", ...), case-insensitively.
func ParseLevel(s string) (Level, error) {
	for i, n := range levelNames {
		if strings.EqualFold(s, n) {
			return Level(i), nil
		}
	}
	return OK, fmt.Errorf("unknown alert level %q (want OK, INFO, WARNING or CRITICAL)", s)
}
