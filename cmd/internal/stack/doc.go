// Package stack starts the pieces of a local Kapacitor → kapacitor-squadcast
// → "Squadcast" chain for end-to-end tests and the demo:
//
//   - StandIn, an HTTP server on 127.0.0.1 standing in for Squadcast that
//     records every request;
//   - Daemon, the kapacitor-squadcast binary built from this module;
//   - Kapacitord, a real kapacitord (v1.5.9, built by .ci/build-kapacitord,
//     path in the environment variable KAPACITORD) with a generated config;
//   - Influxd, a real InfluxDB 1.x (Debian's influxdb package, unpacked by
//     .ci/install-influxd; path in INFLUXD or PATH) on loopback, for batch
//     tasks to query;
//   - RandomWalk, a seeded generator of line-protocol points.
//
// Nothing here depends on package testing: callers own the lifetimes
// (Close/Stop, typically from t.Cleanup). Start the Daemon and Influxd
// before Kapacitord: kapacitord dials every configured UDF socket, and
// connects to InfluxDB, at start-up.
package stack
