//go:build !race

package stack

// raceEnabled is true when this binary was built with -race.
const raceEnabled = false
