// Package udf speaks Kapacitor's UDF protocol and evaluates alerts as
// Kapacitor's alert node does.
//
// A Server serves Kapacitor's connections on a unix socket, one Handler per
// connection, that is per @squadcast() (or @squadcast_batch()) node of a
// running task. ParseOptions and ParseBatchOptions turn a node's options
// into TaskOptions: level expressions (Expr, Kapacitor's own lambda
// language), templates and the alert node's settings; the options that
// shape the Sink's payload (.tag(), .priority()) are declared here, for
// Kapacitor, but handed to the Sink as written, in the Destination, for it
// to validate. The Handler keeps
// each group's alert state, and hands every alert Event (a change of Level,
// or a re-notification) to the Publisher that a Sink resolved for the
// task's destination; Point only evaluates and enqueues, so Kapacitor's
// keepalives are never delayed. At each Flush the handler hands its
// Publisher the burst's StateChange, and at Init it asks the Sink for the
// node's saved NodeState: how they are kept is the Sink's business (the
// daemon's keeps them on disk with the events; a Sink that is a NodeTracker
// also hears which nodes are connected). The node's options are
// saved with its state, so that ResolveGone can build the events that
// resolve its incidents once its task is deleted. With .resolveStale(d), a
// group silent for d on the Clock is resolved by the connection's own
// goroutine, which wakes for it on a read deadline (see stale.go).
// Observer reports what the handlers do, for metrics.
package udf
