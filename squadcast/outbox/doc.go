// Package outbox is the daemon's storage: one bbolt file in the data dir
// that keeps the events still to deliver, the dead letters and the alert
// state of every task node, so that nothing is lost across a restart.
//
// The file (File, "outbox.db") holds:
//
//	bucket "meta":        key "version" → the layout version in ASCII ("1")
//	bucket "pending":     key seq → Record, for events still to deliver
//	bucket "dead":        key seq → Record, for dead letters
//	bucket "alert_state": one bucket per task node (TaskID NUL NodeID), in
//	                      which key "m" holds the newest point time the
//	                      node's state reflects and keys "g"+group hold
//	                      its alerting groups (GroupState)
//	bucket "kapacitor_listers": key task ID → the identity (server ID) of
//	                      the Kapacitor that last listed the task (see
//	                      Listers); missing in files written before it
//
// seq is an event's sequence number, 8 bytes big-endian: it gives every
// event a place in one global order, kept when an event moves between
// buckets. A Record is a JSON object whose "v" field is its encoding
// version; a group record is a short binary encoding (see state.go).
//
// Writes go through DB.Commit, one transaction for a Batch of values (new
// and rewritten events, deletions, dead letters and alert-state changes,
// with one sync to disk), usually driven by a Committer, which gathers
// what many callers queue into one such batch (group commit). DB.LoadState
// reads one node's alert state; States, TaskNodes and DropState list and
// delete many nodes' at once, for the state commands. CompactIfSparse
// compacts a file left mostly free by a backlog at start, and DB.Shrink
// while it is in use (the Committer runs it once no event is pending).
// Nothing in the package's API exposes bbolt.
package outbox
