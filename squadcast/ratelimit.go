package squadcast

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// RateLimit is a request rate for an endpoint: at most Events requests per
// Per, spread evenly (a token bucket of one token, refilled every Per/Events),
// so that no window of length Per holds more than Events requests.
// Squadcast counts triggers and resolves per service per minute (about 15
// on free plans, 300 on Pro). The zero value means no limit.
type RateLimit struct {
	// Events is the number of requests allowed per Per.
	Events int
	// Per is the period: time.Second, time.Minute or time.Hour.
	Per time.Duration
}

// maxRateEvents bounds the count of a rate limit, to keep it meaningful.
const maxRateEvents = 1_000_000

var errRateSyntax = errors.New("want N/s, N/m or N/h (e.g. 300/m), or none")

// ParseRateLimit parses a rate limit written "N/s", "N/m" or "N/h" (N
// requests per second, minute or hour, N from 1 to 1,000,000), e.g. "300/m".
// "" and "none" mean no limit (the zero RateLimit).
func ParseRateLimit(s string) (RateLimit, error) {
	v := strings.TrimSpace(s)
	if v == "" || strings.EqualFold(v, "none") {
		return RateLimit{}, nil
	}
	count, unit, ok := strings.Cut(v, "/")
	if !ok {
		return RateLimit{}, fmt.Errorf("rate limit %q: %w", s, errRateSyntax)
	}
	var per time.Duration
	switch strings.TrimSpace(unit) {
	case "s":
		per = time.Second
	case "m":
		per = time.Minute
	case "h":
		per = time.Hour
	default:
		return RateLimit{}, fmt.Errorf("rate limit %q: unknown unit %q: %w", s, strings.TrimSpace(unit), errRateSyntax)
	}
	n, err := strconv.Atoi(strings.TrimSpace(count))
	if err != nil || n < 1 || n > maxRateEvents {
		return RateLimit{}, fmt.Errorf("rate limit %q: count must be a whole number from 1 to %d: %w", s, maxRateEvents, errRateSyntax)
	}
	return RateLimit{Events: n, Per: per}, nil
}

// IsZero reports whether r is no limit.
func (r RateLimit) IsZero() bool { return r.Events == 0 }

// String returns r as ParseRateLimit reads it ("300/m"), or "none".
func (r RateLimit) String() string {
	if r.IsZero() {
		return "none"
	}
	switch r.Per {
	case time.Second:
		return strconv.Itoa(r.Events) + "/s"
	case time.Minute:
		return strconv.Itoa(r.Events) + "/m"
	case time.Hour:
		return strconv.Itoa(r.Events) + "/h"
	}
	return fmt.Sprintf("%d/%s", r.Events, r.Per)
}

// Set parses s with ParseRateLimit into r, so that *RateLimit is a flag.Value.
func (r *RateLimit) Set(s string) error {
	v, err := ParseRateLimit(s)
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// validate reports a rate limit that ParseRateLimit would not produce.
func (r RateLimit) validate() error {
	switch {
	case r.IsZero():
		return nil
	case r.Events < 0 || r.Events > maxRateEvents:
		return fmt.Errorf("rate limit: %d events is out of range (1 to %d)", r.Events, maxRateEvents)
	case r.Per <= 0:
		return fmt.Errorf("rate limit: period %s is not positive", r.Per)
	}
	return nil
}

// limit is r as a rate.Limit (events per second); rate.Inf for no limit.
func (r RateLimit) limit() rate.Limit {
	if r.IsZero() {
		return rate.Inf
	}
	return rate.Limit(float64(r.Events) / r.Per.Seconds())
}

// stricter reports whether r allows fewer requests than o (no limit allows the most).
func (r RateLimit) stricter(o RateLimit) bool {
	return !r.IsZero() && (o.IsZero() || r.limit() < o.limit())
}
