// Command udfload measures kapacitor-squadcast's performance against
// baselines measured in the same run, and prints one table (`make bench`):
//
//   - the module's Go benchmarks (go test -bench . -benchmem ./...);
//   - ingest over the UDF socket, spoken as Kapacitor speaks it: the daemon
//     (three level expressions, 1000 groups, one state change per 500
//     points, delivering to a local idle HTTP server) against a UDF on
//     Kapacitor's agent library that drops every point, which this program
//     starts itself (udfload drop-udf);
//   - the same through a real kapacitord (points written over its HTTP API
//     to a task using @squadcast() and to one using the drop UDF);
//   - delivery of 200 incidents opened at once to an endpoint taking 100 ms
//     per request, the daemon against kapacitord's own |alert().post();
//   - the relay for Kapacitor's .post() (serve --relay-listen): delivery
//     of 200 incidents opened at once to the 100 ms endpoint by a
//     kapacitord task whose .post() goes through the relay, against the
//     same .post() straight to the endpoint; the relay's answer latency to
//     alerts posted one at a time, and its requests per second from 8
//     concurrent posters, each against a relay that stores nothing (the
//     same handler with a Sink that keeps no alert, udfload relay-nostore);
//   - latency from a point's arrival at the socket to its event's request
//     reaching an idle endpoint;
//   - storms on a rate-limited endpoint, the daemon's socket server and
//     sender in this process: 300 WARNING incidents opened at once, then
//     5 CRITICAL ones, timed until the CRITICAL triggers are delivered,
//     with priority against first in, first out (the sender's
//     Config.FirstInFirstOut); and the requests spent by 300 incidents
//     that open and resolve at once, with coalescing and without;
//   - memory: the daemon's RSS holding 1,000,000 alerting groups;
//   - the storm: 1,000,000 incidents opened in one burst over the socket
//     (the daemon with its defaults, an idle endpoint): peak anonymous
//     memory and RSS, the RSS 30 s after the last delivery, and the time
//     to deliver them all;
//   - the outbox's cost: the daemon's socket server with its sender against
//     the same with a publisher that discards events.
//
// The kapacitord rows (and the relay's delivery row) need $KAPACITORD (make bench sets it); without it
// they are left out and the table says so.
package main
