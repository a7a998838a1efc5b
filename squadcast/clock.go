package squadcast

import "time"

// clock is the Sender's time: its scheduler, rate limits, Retry-After dates
// and max age all read it, so that tests can run a simulated clock.
type clock interface {
	// Now returns the current time.
	Now() time.Time
	// At returns a channel that receives a value once the time is t or
	// later, and a function that releases it.
	At(t time.Time) (<-chan time.Time, func())
}

// realClock is the wall clock.
type realClock struct{}

// Now returns the wall-clock time.
func (realClock) Now() time.Time { return time.Now() }

// At returns a timer's channel for t, and a function that stops it.
func (realClock) At(t time.Time) (<-chan time.Time, func()) {
	tm := time.NewTimer(time.Until(t))
	return tm.C, func() { tm.Stop() }
}
