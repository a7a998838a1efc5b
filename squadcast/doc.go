// Package squadcast turns alert events into Squadcast webhook calls: it
// renders the payloads (Kapacitor's alert JSON or Squadcast's Incident
// Webhook JSON), keeps them in a durable outbox (a bbolt file) until
// Squadcast accepts them, and delivers them with retries, one incident at a
// time in order, many incidents in parallel.
//
// New opens a Sender on a Config: the named Endpoints and the data dir of
// its outbox (package outbox: OutboxFile, which also holds the tasks'
// alert state). The Sender is the udf.Sink of the daemon: it resolves each
// task's destination to a publisher, validating the task's Incident Webhook
// options (.tag(), .priority(): DefaultPriorities unless given), which the
// publisher adds to every body; it writes the events and state changes
// it is handed (group commit), and schedules every event's attempts (per
// incident order, backoff, rate limits, dead letters). Render formats an
// event as a payload; Observer reports deliveries, for metrics. Outbox is
// the outbox file as the outbox commands see it. SavedTasks and
// ResolveTask serve --resolve-deleted-tasks: they resolve the incidents of
// a task gone from Kapacitor (udf.ResolveGone) and drop its state, never
// while a node of the task is connected (the Sender is a udf.NodeTracker)
// and never for an id that another task's saved state holds open.
//
// Webhook URLs carry the service's secret key in their last path segment:
// nothing in this package logs them or puts them in an error.
package squadcast
