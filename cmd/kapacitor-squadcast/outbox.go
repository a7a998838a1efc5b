package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast"
)

const outboxUsage = `Usage:
  kapacitor-squadcast outbox list  (--data-dir DIR | --config FILE)
  kapacitor-squadcast outbox retry (--data-dir DIR | --config FILE)
  kapacitor-squadcast outbox drop  (--data-dir DIR | --config FILE) SEQ...

The outbox (DIR/outbox.db) holds the events the daemon has not delivered
yet, and its dead letters (events given up after a permanent failure or
--max-age). These commands work while the daemon is stopped:

  list   print every pending event and dead letter (never a webhook URL)
  retry  move every dead letter back to pending: the daemon sends them
         when it starts, before the later events of their incidents
  drop   delete events by their sequence number (SEQ, as list prints it)

Run 'kapacitor-squadcast outbox COMMAND --help' for its flags.
`

// runOutbox runs `outbox COMMAND [flags]` and returns the exit code.
func runOutbox(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, outboxUsage)
		return 2
	}
	switch args[0] {
	case "list":
		return outboxCommand("list", "", args[1:], false, stdout, stderr, outboxList)
	case "retry":
		return outboxCommand("retry", "", args[1:], false, stdout, stderr, outboxRetry)
	case "drop":
		return outboxCommand("drop", " SEQ...", args[1:], true, stdout, stderr, outboxDrop)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, outboxUsage)
		return 0
	default:
		fmt.Fprintf(stderr, "kapacitor-squadcast outbox: unknown command %q\n\n%s", args[0], outboxUsage)
		return 2
	}
}

// outboxCommand parses a command's flags (and, when positional, the
// arguments around them), then runs it; a failure is printed to stderr
// with exit code 1.
func outboxCommand(name, argsUsage string, args []string, positional bool, stdout, stderr io.Writer,
	run func(dataDir string, args []string, stdout io.Writer) error) int {
	var dataDir, configFile string
	fs := flag.NewFlagSet("outbox "+name, flag.ContinueOnError)
	fs.StringVar(&dataDir, "data-dir", "", "the daemon's data `directory` (its --data-dir; required unless --config gives it)")
	fs.StringVar(&configFile, "config", "", "the daemon's config `file`, to take its data-dir from (default none)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: kapacitor-squadcast outbox %s (--data-dir DIR | --config FILE)%s\n\nFlags:\n", name, argsUsage)
		fs.PrintDefaults()
	}
	fs.SetOutput(stderr)
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(rest) > 0 && !positional {
		fmt.Fprintf(stderr, "%s: unexpected arguments: %v\n", fs.Name(), rest)
		return 2
	}
	dataDir, code, err := dataDirOf(dataDir, configFile)
	if err != nil {
		fmt.Fprintf(stderr, "kapacitor-squadcast outbox %s: %v\n", name, err)
		return code
	}
	if err = run(dataDir, rest, stdout); err != nil {
		fmt.Fprintf(stderr, "kapacitor-squadcast outbox %s: %v\n", name, err)
		var ue usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	return 0
}

func outboxList(dataDir string, _ []string, stdout io.Writer) error {
	o, err := squadcast.OpenOutbox(squadcast.OutboxPath(dataDir), true)
	if err != nil {
		return err
	}
	defer o.Close()
	entries, err := o.List()
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		fmt.Fprintln(stdout, "the outbox is empty")
		return nil
	}
	now := time.Now()
	counts := map[string]int{}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STATE\tSEQ\tENDPOINT\tINCIDENT\tLEVEL\tAGE\tATTEMPTS\tLAST ERROR")
	for _, e := range entries {
		counts[e.State]++
		if e.State == squadcast.StateCorrupt {
			fmt.Fprintf(tw, "%s\t%d\t-\t-\t-\t-\t-\t%s\n", e.State, e.Seq, printable(e.LastError))
			continue
		}
		lastErr := e.LastError
		if e.DeadReason != "" {
			lastErr = e.DeadReason + ": " + lastErr
		}
		if lastErr == "" {
			lastErr = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%d\t%s\n", e.State, e.Seq, printable(e.Endpoint), printable(e.Incident),
			e.Level, age(now.Sub(e.Created)), e.Attempts, printable(lastErr))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\n%d pending, %d dead", counts[squadcast.StatePending], counts[squadcast.StateDead])
	if n := counts[squadcast.StateCorrupt]; n > 0 {
		fmt.Fprintf(stdout, ", %d corrupt (drop them with 'outbox drop')", n)
	}
	fmt.Fprintln(stdout)
	return nil
}

func outboxRetry(dataDir string, _ []string, stdout io.Writer) error {
	o, err := squadcast.OpenOutbox(squadcast.OutboxPath(dataDir), false)
	if err != nil {
		return err
	}
	defer o.Close()
	n, err := o.RetryDead()
	if err != nil {
		return err
	}
	if n == 0 {
		fmt.Fprintln(stdout, "no dead letters")
		return nil
	}
	fmt.Fprintf(stdout, "moved %d dead letter(s) back to pending; the daemon sends them when it starts\n", n)
	return nil
}

func outboxDrop(dataDir string, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{errors.New("give the sequence numbers (SEQ) of the events to drop, as 'outbox list' prints them")}
	}
	seqs := make([]uint64, len(args))
	for i, a := range args {
		n, err := strconv.ParseUint(a, 10, 64)
		if err != nil || n == 0 {
			return usageError{fmt.Errorf("%q is not a sequence number", a)}
		}
		seqs[i] = n
	}
	o, err := squadcast.OpenOutbox(squadcast.OutboxPath(dataDir), false)
	if err != nil {
		return err
	}
	defer o.Close()
	dropped, err := o.Drop(seqs...)
	if err != nil {
		return err
	}
	found := make(map[uint64]bool, len(dropped))
	for _, n := range dropped {
		found[n] = true
	}
	var missing []string
	for _, n := range seqs {
		if !found[n] {
			missing = append(missing, strconv.FormatUint(n, 10))
		}
	}
	fmt.Fprintf(stdout, "dropped %d event(s)\n", len(dropped))
	if len(missing) > 0 {
		return fmt.Errorf("no event with sequence number %s", strings.Join(missing, ", "))
	}
	return nil
}

// age prints a duration for the table: "42s", "3m12s", "5h2m", "3d4h".
func age(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Hour:
		return d.Truncate(time.Second).String()
	case d < 24*time.Hour:
		return strings.TrimSuffix(d.Truncate(time.Minute).String(), "0s")
	}
	days := d / (24 * time.Hour)
	return fmt.Sprintf("%dd%dh", days, (d-days*24*time.Hour)/time.Hour)
}

// printable keeps a table cell on one line: text with control characters
// is quoted; an empty one is "-".
func printable(s string) string {
	if s == "" {
		return "-"
	}
	if strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return strconv.Quote(s)
	}
	return s
}

// dataDirOf returns the data dir the outbox and state commands work on:
// --data-dir, else the data-dir of the --config file. Its error comes with
// the exit code: 1 for a config file that cannot be read, 2 for a command
// line that names no data dir.
func dataDirOf(dataDir, configFile string) (string, int, error) {
	if dataDir == "" && configFile != "" {
		fc, err := LoadFile(configFile)
		if err != nil {
			return "", 1, err
		}
		if dataDir = fc.DataDir; dataDir == "" {
			return "", 2, fmt.Errorf("config file %s sets no data-dir: give --data-dir", configFile)
		}
	}
	if dataDir == "" {
		return "", 2, errors.New("--data-dir (or --config) is required")
	}
	return dataDir, 0, nil
}
