package udf

import "time"

// Clock is the handlers' wall clock: .resolveStale() measures a group's
// silence on it. Tests give a fake one (HandlerConfig.Clock).
type Clock interface {
	// Now returns the current time.
	Now() time.Time
}

// wallClock is the system's clock.
type wallClock struct{}

// Now returns time.Now().
func (wallClock) Now() time.Time { return time.Now() }
