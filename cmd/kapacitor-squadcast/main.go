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

// version and revision are set by `make build` with -ldflags "-X main.version=... -X main.revision=...".
var (
	version  = "dev"
	revision = ""
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `kapacitor-squadcast turns Kapacitor alerts into Squadcast incidents.

Usage:
  kapacitor-squadcast serve --socket PATH --data-dir DIR [flags]
  kapacitor-squadcast serve --config FILE [flags]
  kapacitor-squadcast check-config --config FILE
  kapacitor-squadcast send-test [--config FILE] [--endpoint NAME | --url URL] [--format F]
  kapacitor-squadcast outbox list|retry|drop (--data-dir DIR | --config FILE) [SEQ...]
  kapacitor-squadcast state list [--task T] (--data-dir DIR | --config FILE)
  kapacitor-squadcast state drop --task T [--node N] (--data-dir DIR | --config FILE)
  kapacitor-squadcast doctor --kapacitor-url URL [--relay-url URL]
  kapacitor-squadcast version

Run 'kapacitor-squadcast COMMAND --help' for the flags of a command.
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
	case "check-config":
		return runCheckConfig(args[1:], stdout, stderr)
	case "send-test":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return runSendTest(ctx, args[1:], stdout, stderr)
	case "outbox":
		return runOutbox(args[1:], stdout, stderr)
	case "state":
		return runState(args[1:], stdout, stderr)
	case "doctor":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return runDoctor(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "kapacitor-squadcast %s (commit %s, %s)\n", version, commit(), goVersion())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	case "man": // hidden: writes the man pages (make package)
		return runMan(args[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "kapacitor-squadcast: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

// commit returns the VCS revision the binary was built from: the one
// stamped by make, else the one Go records (unless built with -buildvcs=false).
func commit() string {
	if revision != "" {
		return revision
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" && dirty {
			rev += "+dirty"
		}
		if rev != "" {
			return rev
		}
	}
	return "unknown"
}

func goVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.GoVersion
	}
	return "unknown Go version"
}

// usageError is a bad command line or argument: exit status 2.
type usageError struct{ error }

// parseArgs parses a command's flags, printing its usage on -h, and errors
// with the usage. It returns flag.ErrHelp for -h, and a usageError, already
// printed, for a bad flag or an unexpected argument.
func parseArgs(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected arguments: %v\n", fs.Name(), fs.Args())
		return usageError{fmt.Errorf("unexpected arguments: %v", fs.Args())}
	}
	return nil
}

// parseFlags is parseArgs for commands that only stop on its errors: it
// returns false, with the exit status, when the command must not run.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) (int, bool) {
	switch err := parseArgs(fs, args, stderr); {
	case err == nil:
		return 0, true
	case errors.Is(err, flag.ErrHelp):
		return 0, false
	default:
		return 2, false
	}
}
