package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast/outbox"
	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

const stateUsage = `Usage:
  kapacitor-squadcast state list [--task T] (--data-dir DIR | --config FILE)
  kapacitor-squadcast state drop --task T [--node N] (--data-dir DIR | --config FILE)

The outbox (DIR/outbox.db) also holds the saved alert state of every task
node that uses @squadcast() or @squadcast_batch(): which groups alert, at
what level, since when. These commands work while the daemon is stopped:

  list   print every task node's state: its alerting groups by level and
         the time of its last change; with --task, each alerting group of
         that task, with its alert id, level and the time it left OK
  drop   delete the saved state of a task, or of one node (--node): for a
         task deleted from Kapacitor, or to start one afresh. When the task
         next starts, its groups start from OK (or from Kapacitor's own
         snapshot of the task, which Kapacitor keeps until the task is
         deleted); an incident left open stays open until its group
         triggers and recovers again

Run 'kapacitor-squadcast state COMMAND --help' for its flags.
`

// stateFlags are the flags of a state command.
type stateFlags struct {
	dataDir, configFile string
	task, node          string
}

// runState runs `state COMMAND [flags]` and returns the exit code.
func runState(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, stateUsage)
		return 2
	}
	switch args[0] {
	case "list":
		return stateCommand("list", "[--task T] ", args[1:], stdout, stderr, stateList)
	case "drop":
		return stateCommand("drop", "--task T [--node N] ", args[1:], stdout, stderr, stateDrop)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, stateUsage)
		return 0
	default:
		fmt.Fprintf(stderr, "kapacitor-squadcast state: unknown command %q\n\n%s", args[0], stateUsage)
		return 2
	}
}

// stateCommand parses a command's flags and runs it; a failure is printed
// to stderr with exit code 1 (2 for a usageError).
func stateCommand(name, flagsUsage string, args []string, stdout, stderr io.Writer,
	run func(f *stateFlags, stdout io.Writer) error) int {
	var f stateFlags
	fs := flag.NewFlagSet("state "+name, flag.ContinueOnError)
	fs.StringVar(&f.dataDir, "data-dir", "", "the daemon's data `directory` (its --data-dir; required unless --config gives it)")
	fs.StringVar(&f.configFile, "config", "", "the daemon's config `file`, to take its data-dir from (default none)")
	if name == "drop" {
		fs.StringVar(&f.task, "task", "", "the `ID` of the task whose saved state to drop (required)")
		fs.StringVar(&f.node, "node", "", "the `ID` of the one node of the task to drop, as 'state list' prints it (default every node of the task)")
	} else {
		fs.StringVar(&f.task, "task", "", "the `ID` of a task: list its alerting groups (default every task, one line a node)")
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: kapacitor-squadcast state %s %s(--data-dir DIR | --config FILE)\n\nFlags:\n", name, flagsUsage)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	fail := func(code int, err error) int {
		fmt.Fprintf(stderr, "kapacitor-squadcast state %s: %v\n", name, err)
		return code
	}
	if name == "drop" && f.task == "" {
		return fail(2, errors.New("--task is required"))
	}
	dataDir, code, err := dataDirOf(f.dataDir, f.configFile)
	if err != nil {
		return fail(code, err)
	}
	f.dataDir = dataDir
	if err := run(&f, stdout); err != nil {
		return fail(1, err)
	}
	return 0
}

// stateList prints the saved state of every task node, or the groups of
// f.task.
func stateList(f *stateFlags, stdout io.Writer) error {
	db, err := outbox.Open(outbox.Path(f.dataDir), outbox.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer db.Close()
	if f.task != "" {
		return stateListTask(db, f.task, stdout)
	}
	nodes, err := db.States()
	if err != nil {
		return err
	}
	if len(nodes) == 0 {
		fmt.Fprintln(stdout, "no saved alert state")
		return nil
	}
	var total outbox.NodeSummary
	tasks := 0
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK\tNODE\tGROUPS\tCRITICAL\tWARNING\tINFO\tLAST CHANGE")
	for i, n := range nodes {
		if i == 0 || n.Task != nodes[i-1].Task {
			tasks++
		}
		add(&total, n)
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\n", cell(n.Task), cell(n.Node), n.Groups, n.Critical, n.Warning, n.Info, pointTime(n.AsOf))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\n%d task(s), %d node(s), %s\n", tasks, len(nodes), groupCounts(total))
	printCorrupt(nodes, stdout)
	return nil
}

// stateListTask prints the alerting groups of every node of task.
func stateListTask(db *outbox.DB, task string, stdout io.Writer) error {
	nodes, err := db.TaskNodes(task)
	if err != nil {
		return err
	}
	if len(nodes) == 0 {
		return fmt.Errorf("no saved alert state of task %s (see 'state list' for the tasks)", printable(task))
	}
	var total outbox.NodeSummary
	summaries := make([]outbox.NodeSummary, len(nodes))
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tGROUP\tID\tLEVEL\tSINCE")
	for i, n := range nodes {
		summaries[i] = n.NodeSummary
		add(&total, n.NodeSummary)
		for _, g := range n.States {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", cell(n.Node), cell(g.Group), cell(g.ID), udf.Level(g.Level), pointTime(g.FirstTriggered))
		}
	}
	if total.Groups > 0 { // else no table: the total says there is no group
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(stdout)
	}
	fmt.Fprintf(stdout, "task %s: %d node(s), %s\n", cell(task), len(nodes), groupCounts(total))
	printCorrupt(summaries, stdout)
	return nil
}

// stateDrop deletes the saved state of f.task, or of its node f.node.
func stateDrop(f *stateFlags, stdout io.Writer) error {
	path := outbox.Path(f.dataDir)
	// A read-only open first: a missing file is an error, not a new,
	// empty outbox created by the writable open.
	db, err := outbox.Open(path, outbox.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	db.Close()
	if db, err = outbox.Open(path, outbox.Options{}); err != nil {
		return err
	}
	defer db.Close()
	n, err := db.DropState(f.task, f.node)
	if err != nil {
		return err
	}
	what := "task " + printable(f.task)
	if f.node != "" {
		what = "node " + printable(f.node) + " of " + what
	}
	if n == 0 {
		return fmt.Errorf("no saved alert state of %s (see 'state list')", what)
	}
	if f.node != "" {
		fmt.Fprintf(stdout, "dropped the saved state of %s\n", what)
	} else {
		fmt.Fprintf(stdout, "dropped the saved state of %d node(s) of %s\n", n, what)
	}
	return nil
}

// add adds n's counts to total.
func add(total *outbox.NodeSummary, n outbox.NodeSummary) {
	total.Groups += n.Groups
	total.Critical += n.Critical
	total.Warning += n.Warning
	total.Info += n.Info
	total.Corrupt += n.Corrupt
}

// groupCounts prints the alerting groups of s by level.
func groupCounts(s outbox.NodeSummary) string {
	return fmt.Sprintf("%d alerting group(s): %d CRITICAL, %d WARNING, %d INFO", s.Groups, s.Critical, s.Warning, s.Info)
}

// printCorrupt names each node with records that cannot be read, and the
// command that removes them.
func printCorrupt(nodes []outbox.NodeSummary, stdout io.Writer) {
	for _, n := range nodes {
		if n.Corrupt > 0 {
			fmt.Fprintf(stdout, "task %s node %s: %d corrupt record(s); the daemon starts this node from OK: drop its state with 'state drop --task %s --node %s'\n",
				cell(n.Task), cell(n.Node), n.Corrupt, printable(n.Task), printable(n.Node))
		}
	}
}

// pointTime prints a point time (ns) in RFC 3339, UTC; 0 is "-".
func pointTime(ns int64) string {
	if ns == 0 {
		return "-"
	}
	return time.Unix(0, ns).UTC().Format(time.RFC3339)
}

// maxCell is the most runes of a value that a table cell shows.
const maxCell = 60

// cell is printable, cut to maxCell runes ("…" marks the cut): a group
// key or an alert id may be 32 KiB long.
func cell(s string) string {
	if r := []rune(s); len(r) > maxCell {
		s = string(r[:maxCell-1]) + "…"
	}
	return printable(s)
}
