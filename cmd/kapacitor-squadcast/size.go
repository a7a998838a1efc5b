package main

import (
	"fmt"
	"strconv"
	"strings"
)

// byteSize is a flag value holding a size in bytes, written as a number
// with an optional unit: B, KiB, MiB, GiB (powers of 1024) or KB, MB, GB
// (powers of 1000), e.g. 16MiB, 512KiB, 1048576.
type byteSize int64

var sizeUnits = []struct {
	suffix string
	factor int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9},
	{"B", 1},
}

// String returns the size with the largest binary unit that divides it.
func (s byteSize) String() string {
	n := int64(s)
	for _, u := range []struct {
		suffix string
		factor int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.factor == 0 {
			return strconv.FormatInt(n/u.factor, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// Set parses a size like 16MiB.
func (s *byteSize) Set(v string) error {
	num, factor := strings.TrimSpace(v), int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(num, u.suffix) {
			num, factor = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.factor
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/factor {
		return fmt.Errorf("invalid size %q (want a number of bytes with an optional unit, e.g. 16MiB, 512KiB)", v)
	}
	*s = byteSize(n * factor)
	return nil
}

// Bounds of --max-frame-size: Kapacitor's points must fit, and a frame is
// read into memory whole.
const (
	minFrameSize = 64 << 10
	maxFrameSize = 1 << 30
)

// checkFrameSize checks a --max-frame-size.
func checkFrameSize(s byteSize) error {
	if s < minFrameSize || s > maxFrameSize {
		return fmt.Errorf("must be between %s and %s, got %s", byteSize(minFrameSize), byteSize(maxFrameSize), s)
	}
	return nil
}

// UnmarshalTOML reads a size from a config file: a string like "16MiB".
func (s *byteSize) UnmarshalTOML(v any) error {
	str, ok := v.(string)
	if !ok {
		return fmt.Errorf("want a string like \"16MiB\", got %T", v)
	}
	return s.Set(str)
}

// minMemoryLimit is the smallest --memory-limit: an idle daemon uses about
// 15MiB, and under a limit it cannot keep the garbage collector would run
// all the time.
const minMemoryLimit = 32 << 20

// checkMemoryLimit checks a --memory-limit (0: not set).
func checkMemoryLimit(s byteSize) error {
	if s != 0 && s < minMemoryLimit {
		return fmt.Errorf("must be at least %s, got %s", byteSize(minMemoryLimit), s)
	}
	return nil
}
