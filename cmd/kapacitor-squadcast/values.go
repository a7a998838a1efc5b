package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast"
)

// socketMode is the permission bits of the socket file, written in octal.
type socketMode os.FileMode

// String returns the mode in octal, like "0660".
func (m *socketMode) String() string { return fmt.Sprintf("%04o", uint32(*m)) }

// Set parses an octal mode such as "0660" or "660".
func (m *socketMode) Set(s string) error {
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0o"), 8, 32)
	if err != nil || v > 0o777 {
		return fmt.Errorf("%q is not a permission mode in octal from 0000 to 0777 (like 0660)", s)
	}
	*m = socketMode(v)
	return nil
}

// UnmarshalTOML takes the mode as a string: a TOML integer would be read
// in decimal (660 is not 0660), so it is refused.
func (m *socketMode) UnmarshalTOML(v any) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("write the mode as a string in octal, like \"0660\" (got %T)", v)
	}
	return m.Set(s)
}

// duration is a TOML duration: a string such as "10s" or "5m". A bare
// number is refused (it would be nanoseconds). Its flags are
// time.Duration flags (see defineFlags).
type duration time.Duration

// UnmarshalTOML parses a duration string.
func (d *duration) UnmarshalTOML(v any) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("write a duration as a string, like \"10s\" or \"5m\" (got %T)", v)
	}
	x, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration (like \"10s\", \"5m\" or \"24h\")", s)
	}
	*d = duration(x)
	return nil
}

// rateLimit is an endpoint's request rate limit as written, like "300/m"
// ("" or "none": no limit). A config file's is parsed when its endpoint is
// checked, so that the error names the endpoint; --rate-limit's is parsed
// by Set, so that a bad one is a usage error.
type rateLimit string

// Set checks s and keeps it: *rateLimit is the flag.Value of --rate-limit.
func (r *rateLimit) Set(s string) error {
	if _, err := squadcast.ParseRateLimit(s); err != nil {
		return err
	}
	*r = rateLimit(s)
	return nil
}

// String returns the limit as written.
func (r *rateLimit) String() string { return string(*r) }

// parse returns the limit.
func (r rateLimit) parse() (squadcast.RateLimit, error) {
	return squadcast.ParseRateLimit(string(r))
}
