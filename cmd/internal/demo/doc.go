// Command demo shows kapacitor-squadcast at work on one machine, with no
// Squadcast account: it starts a stand-in for Squadcast that prints every
// incident it receives, the daemon, and a real kapacitord ($KAPACITORD),
// defines tickscripts/cpu_squadcast.tick, writes a short scripted story of
// CPU points for three hosts (OK → WARNING → CRITICAL → OK), waits for the
// incidents, prints a summary and shuts everything down.
//
// Run it with `make demo` from the repository root (it builds kapacitord
// first and sets KAPACITORD). It exits 0 on success and 1 with a message on
// any failure, within two minutes.
package main
