// Command kapacitor-squadcast is a Kapacitor socket UDF that turns alert
// state changes into Squadcast incidents.
//
// Usage:
//
//	kapacitor-squadcast serve --socket PATH --data-dir DIR [flags]
//	kapacitor-squadcast serve --config FILE [flags]
//	kapacitor-squadcast check-config --config FILE
//	kapacitor-squadcast send-test [--config FILE] [--endpoint NAME | --url URL] [--format F]
//	kapacitor-squadcast outbox list|retry|drop (--data-dir DIR | --config FILE) [SEQ...]
//	kapacitor-squadcast state list [--task T] (--data-dir DIR | --config FILE)
//	kapacitor-squadcast state drop --task T [--node N] (--data-dir DIR | --config FILE)
//	kapacitor-squadcast doctor --kapacitor-url URL [--relay-url URL]
//	kapacitor-squadcast version
//
// serve runs the daemon: it serves @squadcast() (and, with --batch-socket,
// @squadcast_batch()) on unix sockets with package udf, and delivers the
// alert events with package squadcast. check-config validates a config
// file, send-test sends a test incident to one endpoint, outbox lists,
// retries or drops the events the daemon holds on disk, state lists or
// drops the alert state it saved for each task node, and doctor lists
// what in a running Kapacitor still posts to Squadcast without the daemon.
//
// See README.md, and docs/configuration.md for every flag and config key.
package main
