package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// manPage is one section-1 man page: the command and each subcommand it
// documents. Its text is what `--help` prints for each of them, so the
// page and --help list the same flags: they come from the same FlagSets.
type manPage struct {
	name     string     // the page's name, e.g. kapacitor-squadcast-serve
	summary  string     // the NAME line's description
	overview []string   // the command line whose --help gives the DESCRIPTION (nil: the main usage)
	commands [][]string // the command lines whose --help gives OPTIONS sections
}

// manPages are the pages `kapacitor-squadcast man DIR` writes.
var manPages = []manPage{
	{"kapacitor-squadcast", "turn Kapacitor alerts into Squadcast incidents", nil, nil},
	{"kapacitor-squadcast-serve", "serve Kapacitor's UDF sockets and deliver Squadcast incidents", []string{"serve"}, [][]string{{"serve"}}},
	{"kapacitor-squadcast-check-config", "check a kapacitor-squadcast config file", []string{"check-config"}, [][]string{{"check-config"}}},
	{"kapacitor-squadcast-send-test", "send a test incident to a Squadcast endpoint and resolve it", []string{"send-test"}, [][]string{{"send-test"}}},
	{"kapacitor-squadcast-outbox", "list, retry or drop the daemon's undelivered events", []string{"outbox"}, [][]string{{"outbox", "list"}, {"outbox", "retry"}, {"outbox", "drop"}}},
	{"kapacitor-squadcast-state", "list or drop the alert state of tasks", []string{"state"}, [][]string{{"state", "list"}, {"state", "drop"}}},
	{"kapacitor-squadcast-doctor", "check Kapacitor's tasks and handlers for what to send through the daemon", []string{"doctor"}, [][]string{{"doctor"}}},
}

// manUsage is what `man --help` prints.
const manUsage = "usage: kapacitor-squadcast man DIR\n\nWrites a man page for the command and each subcommand into DIR (created if\nmissing) as NAME.1; make package ships them.\n"

// runMan is the hidden `man DIR` command: it writes every page of
// manPages into DIR as NAME.1. A flag is never taken for DIR: -h and
// --help print the usage, any other is refused.
func runMan(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		fmt.Fprint(stdout, manUsage)
		return 0
	}
	if len(args) != 1 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(stderr, manUsage)
		return 2
	}
	dir := args[0]
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintf(stderr, "kapacitor-squadcast man: %v\n", err)
		return 1
	}
	for _, p := range manPages {
		path := filepath.Join(dir, p.name+".1")
		if err := os.WriteFile(path, []byte(p.roff()), 0o644); err != nil {
			fmt.Fprintf(stderr, "kapacitor-squadcast man: %v\n", err)
			return 1
		}
	}
	return 0
}

// helpOf returns what `kapacitor-squadcast ARGS --help` prints (nil args:
// the main usage).
func helpOf(args []string) string {
	var out bytes.Buffer
	if args == nil {
		run([]string{"--help"}, &out, &out)
	} else {
		run(append(append([]string{}, args...), "--help"), &out, &out)
	}
	return out.String()
}

// roff renders the page.
func (p manPage) roff() string {
	var b strings.Builder
	fmt.Fprintf(&b, ".TH %s 1 \"\" \"kapacitor-squadcast %s\" \"User Commands\"\n", strings.ToUpper(roffEscape(p.name)), roffEscape(version))
	fmt.Fprintf(&b, ".SH NAME\n%s \\- %s\n", roffEscape(p.name), roffEscape(p.summary))
	usage, _ := splitHelp(helpOf(p.overview))
	b.WriteString(".SH DESCRIPTION\n")
	writeText(&b, usage)
	for _, c := range p.commands {
		text, flags := splitHelp(helpOf(c))
		if len(p.commands) > 1 {
			fmt.Fprintf(&b, ".SH %s\n", strings.ToUpper(roffEscape(strings.Join(c, " "))))
			writeText(&b, text)
			b.WriteString(".SS OPTIONS\n")
		} else {
			b.WriteString(".SH OPTIONS\n")
		}
		writeFlags(&b, flags)
	}
	b.WriteString(".SH SEE ALSO\n")
	var see []string
	for _, o := range manPages {
		if o.name != p.name {
			see = append(see, fmt.Sprintf(".BR %s (1)", roffEscape(o.name)))
		}
	}
	b.WriteString(strings.Join(see, ",\n") + "\n")
	b.WriteString(".PP\n/usr/share/doc/kapacitor\\-squadcast/ (examples, TICKscripts and the documentation)\n")
	return b.String()
}

// splitHelp splits a --help text at its "Flags:" line: the text above,
// and the flag.PrintDefaults listing below (empty when there is none).
func splitHelp(help string) (text, flags string) {
	if i := strings.Index(help, "\nFlags:\n"); i >= 0 {
		return help[:i+1], help[i+len("\nFlags:\n"):]
	}
	return help, ""
}

// writeText renders usage text: paragraphs filled, indented lines (command
// lines, lists) kept as they are.
func writeText(b *strings.Builder, text string) {
	b.WriteString(".PP\n")
	verbatim := false
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		indented := strings.HasPrefix(line, " ") || strings.HasPrefix(line, "Usage:")
		switch {
		case strings.TrimSpace(line) == "":
			if verbatim {
				b.WriteString(".fi\n")
				verbatim = false
			}
			b.WriteString(".PP\n")
			continue
		case indented && !verbatim:
			b.WriteString(".nf\n")
			verbatim = true
		case !indented && verbatim:
			b.WriteString(".fi\n")
			verbatim = false
		}
		b.WriteString(roffEscape(line) + "\n")
	}
	if verbatim {
		b.WriteString(".fi\n")
	}
}

// flagLine is a flag's first line in flag.PrintDefaults: "  -name [arg]".
var flagLine = regexp.MustCompile(`^  -(\S+)(?: (.*))?$`)

// writeFlags renders a flag.PrintDefaults listing as tagged paragraphs.
func writeFlags(b *strings.Builder, flags string) {
	if strings.TrimSpace(flags) == "" {
		b.WriteString("None.\n")
		return
	}
	for _, line := range strings.Split(strings.TrimRight(flags, "\n"), "\n") {
		if m := flagLine.FindStringSubmatch(line); m != nil {
			b.WriteString(".TP\n")
			if m[2] == "" {
				fmt.Fprintf(b, ".B \\-\\-%s\n", roffEscape(m[1]))
			} else {
				fmt.Fprintf(b, ".BI \"\\-\\-%s \" %s\n", roffEscape(m[1]), roffEscape(m[2]))
			}
			continue
		}
		b.WriteString(roffEscape(strings.TrimSpace(line)) + "\n")
	}
}

// roffEscape escapes text for roff: backslashes, hyphens (so that they
// print as the ASCII ones to type), and a leading control character.
func roffEscape(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}
