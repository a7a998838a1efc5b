// Command kapacitor-squadcast is a Kapacitor socket UDF that turns alert
// state changes into Squadcast incidents. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `kapacitor-squadcast turns Kapacitor alerts into Squadcast incidents.

Usage:
  kapacitor-squadcast serve --socket PATH --data-dir DIR [flags]
  kapacitor-squadcast version

Run 'kapacitor-squadcast serve --help' for the flags of serve.
`

// run is main without os.Exit: it returns the process's exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return runServe(ctx, args[1:], stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "kapacitor-squadcast %s (%s)\n", version, goVersion())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "kapacitor-squadcast: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

func goVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.GoVersion
	}
	return "unknown Go version"
}

// parseFlags parses a command's flags, printing its usage on -h and errors.
// It returns false with the exit code when the command must not run.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) (int, bool) {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected arguments: %v\n", fs.Name(), fs.Args())
		return 2, false
	}
	return 0, true
}
