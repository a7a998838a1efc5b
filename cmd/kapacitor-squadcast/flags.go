package main

import (
	"flag"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast"
)

// serveFlag is one of serve's flags: its name (also its config file key,
// but for the default endpoint's), its usage, and where it is kept in a
// Config.
type serveFlag struct {
	name, usage string
	field       func(c *Config) any // a pointer into c
}

// serveFlags are serve's flags; serve --help lists them.
var serveFlags = []serveFlag{
	{"config", "TOML config `file` (see examples/kapacitor-squadcast.toml); flags given on the command line override it (default none)",
		func(c *Config) any { return &c.File }},
	{"socket", "unix socket to serve Kapacitor on: the `path` in kapacitor.conf's [udf.functions.squadcast] socket (required)",
		func(c *Config) any { return &c.Socket }},
	{"batch-socket", "unix socket `path` to serve batch tasks on: kapacitor.conf's [udf.functions.squadcast_batch] socket, for @squadcast_batch() (default none)",
		func(c *Config) any { return &c.BatchSocket }},
	{"socket-mode", "permission `bits` of the socket file, in octal",
		func(c *Config) any { return &c.SocketMode }},
	{"socket-group", "`group` (name or id) to give the socket file, e.g. kapacitor's; the daemon must be a member (default the daemon's group)",
		func(c *Config) any { return &c.SocketGroup }},
	{"data-dir", "`directory` for the daemon's state; created if missing (required)",
		func(c *Config) any { return &c.DataDir }},
	{"url", "Squadcast webhook `URL` of the default endpoint (default $" + webhookEnv + "); it holds a secret key: prefer the environment or the config file",
		func(c *Config) any { return &c.defaultEndpoint().URL }},
	{"format", "payload `format` of the default endpoint: kapacitor or incident-webhook",
		func(c *Config) any { return &c.defaultEndpoint().Format }},
	{"workers", "delivery workers: incidents delivered in parallel",
		func(c *Config) any { return &c.Workers }},
	{"queue-size", "events held in memory for delivery; more wait in the outbox on disk, and are read back as these are delivered",
		func(c *Config) any { return &c.QueueSize }},
	{"log-level", "log `level`: debug, info, warn or error",
		func(c *Config) any { return &c.LogLevel }},
	{"log-format", "log `format`: json or console",
		func(c *Config) any { return &c.LogFormat }},
	{"kapacitor-url", "Kapacitor's HTTP API `URL` (e.g. http://localhost:9092); when set, tasks left on a previous daemon process's broken connection are restarted at start-up, and --resolve-deleted-tasks can tell which tasks exist (default off)",
		func(c *Config) any { return &c.KapacitorURL }},
	{"resolve-deleted-tasks", "with --kapacitor-url: resolve the open incidents of a task deleted from Kapacitor (one absent from two of its task lists, --kapacitor-check-interval apart, of the Kapacitor that listed it; a disabled task is kept), then drop its saved alert state; see docs/operations.md (default off)",
		func(c *Config) any { return &c.ResolveDeletedTasks }},
	{"kapacitor-check-interval", "how often --resolve-deleted-tasks lists Kapacitor's tasks; a task counts as deleted once two lists this far apart lack it (at least 100ms)",
		func(c *Config) any { return &c.KapacitorCheckInterval }},
	{"udf-name", "the UDF's `name` in kapacitor.conf ([udf.functions.NAME], and NAME_batch for --batch-socket): which tasks --kapacitor-url restarts",
		func(c *Config) any { return &c.UDFName }},
	{"shutdown-timeout", "on SIGTERM, how long pending deliveries may still take (what is left stays in the outbox)",
		func(c *Config) any { return &c.ShutdownTimeout }},
	{"timeout", "how long one HTTP `attempt` to the default endpoint (and to inline .url()s) may take before it counts as failed and is retried (default 10s)",
		func(c *Config) any { return &c.defaultEndpoint().Timeout }},
	{"rate-limit", "request `rate` limit of the default endpoint, like 300/m, 15/m, 5/s or 1000/h (match your Squadcast plan); tasks' inline .url()s get the same limit, each URL its own (default none)",
		func(c *Config) any { return &c.defaultEndpoint().RateLimit }},
	{"coalesce", "coalesce the default endpoint's events while they wait unsent (a rate limit, a throttling pause, a retry): a later trigger replaces an earlier unsent trigger of the same incident, and a trigger never sent that its resolve follows is dropped with it; fewer requests against Squadcast's per-minute limit, see docs/operations.md (default off: every event is delivered)",
		func(c *Config) any { return &c.defaultEndpoint().Coalesce }},
	{"retry-max-wait", "longest `wait` between two attempts of an event (exponential backoff with jitter from 1s)",
		func(c *Config) any { return &c.RetryMaxWait }},
	{"max-age", "how long an undelivered event is retried before it becomes a dead letter (see 'outbox list')",
		func(c *Config) any { return &c.MaxAge }},
	{"max-frame-size", "largest request `size` Kapacitor may send on a connection, like 16MiB or 512KiB: a longer frame ends that connection (its task fails) before anything is allocated; at least 64KiB",
		func(c *Config) any { return &c.MaxFrameSize }},
	{"memory-limit", "soft memory limit of the daemon, a `size` like 256MiB (Go's GOMEMLIMIT, which it overrides): near it the garbage collector works harder, and memory freed after a burst goes back to the system sooner; the collector's GOGC is 50 unless $GOGC is set; see docs/operations.md, \"Memory\" (default none: $GOMEMLIMIT, else no limit)",
		func(c *Config) any { return &c.MemoryLimit }},
	{"listen", "`address` (host:port) to serve /metrics, /healthz, /readyz and /debug/pprof/ on over HTTP, e.g. 127.0.0.1:9187 (default off)",
		func(c *Config) any { return &c.Listen }},
	{"relay-listen", "`address` (host:port) to serve the relay for Kapacitor's .post() on: POST /relay/<endpoint> takes the alert JSON .post() sends, writes it to the outbox, answers, then delivers it; e.g. 127.0.0.1:9095 (default off). An address other than loopback needs --relay-token-file",
		func(c *Config) any { return &c.RelayListen }},
	{"relay-max-body", "largest request body the relay takes, a `size` like 2MiB (413 above)",
		func(c *Config) any { return &c.RelayMaxBody }},
	{"relay-token-file", "`file` holding the token every relay request must carry as Authorization: Bearer <token> (default none: only on loopback)",
		func(c *Config) any { return &c.RelayTokenFile }},
}

// defineFlags defines serveFlags on fs, each bound to its setting in c and
// defaulting to its value there (which --help shows).
func defineFlags(fs *flag.FlagSet, c *Config) {
	for _, f := range serveFlags {
		switch p := f.field(c).(type) {
		case flag.Value:
			fs.Var(p, f.name, f.usage)
		case *string:
			fs.StringVar(p, f.name, *p, f.usage)
		case *squadcast.SecretURL:
			fs.StringVar((*string)(p), f.name, p.Reveal(), f.usage)
		case *int:
			fs.IntVar(p, f.name, *p, f.usage)
		case *bool:
			fs.BoolVar(p, f.name, *p, f.usage)
		case *duration:
			fs.DurationVar((*time.Duration)(p), f.name, time.Duration(*p), f.usage)
		default:
			panic(fmt.Sprintf("flag -%s: no flag for a %T", f.name, p))
		}
	}
}

// overlay sets the setting of flag name in c to its value in given.
func overlay(c, given *Config, name string) {
	if f := flagNamed(name); f != nil {
		reflect.ValueOf(f.field(c)).Elem().Set(reflect.ValueOf(f.field(given)).Elem())
	}
}

// flagNamed returns the flag of that name (in any case), nil for none.
func flagNamed(name string) *serveFlag {
	for i := range serveFlags {
		if strings.EqualFold(serveFlags[i].name, name) {
			return &serveFlags[i]
		}
	}
	return nil
}
