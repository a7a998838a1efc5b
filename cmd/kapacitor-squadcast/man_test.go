package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// helpFlag is a flag in a --help listing, manFlag one in a rendered page.
var (
	helpFlag = regexp.MustCompile(`(?m)^  -([a-z][a-z0-9-]*)`)
	manFlag  = regexp.MustCompile(`(?m)^\.BI? "?\\-\\-([a-z][a-z0-9\\-]*)`)
)

func flagNames(re *regexp.Regexp, text string) []string {
	var names []string
	for _, m := range re.FindAllStringSubmatch(text, -1) {
		names = append(names, strings.ReplaceAll(m[1], `\-`, "-"))
	}
	slices.Sort(names)
	return names
}

// TestManPagesListTheFlagsOfHelp checks that each command's section of its
// man page lists exactly the flags its --help lists.
func TestManPagesListTheFlagsOfHelp(t *testing.T) {
	for _, p := range manPages {
		page := p.roff()
		for _, c := range p.commands {
			var out bytes.Buffer
			if code := run(append(append([]string{}, c...), "--help"), &out, &out); code != 0 {
				t.Fatalf("%v --help: exit %d", c, code)
			}
			want := flagNames(helpFlag, out.String())
			if len(want) == 0 {
				t.Fatalf("%v --help lists no flags:\n%s", c, out.String())
			}
			section := page
			if len(p.commands) > 1 {
				section = sectionOf(t, page, ".SH "+strings.ToUpper(strings.Join(c, " ")))
			}
			if got := flagNames(manFlag, section); !slices.Equal(got, want) {
				t.Errorf("%s, %v: man page lists %v, --help %v", p.name, c, got, want)
			}
		}
	}
}

// sectionOf returns the part of page from the heading to the next .SH.
func sectionOf(t *testing.T, page, heading string) string {
	t.Helper()
	i := strings.Index(page, heading+"\n")
	if i < 0 {
		t.Fatalf("no %q in the page", heading)
	}
	rest := page[i+len(heading)+1:]
	if j := strings.Index(rest, "\n.SH "); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

// TestManServePageHasEveryServeFlag checks the serve page against the flag
// table itself, not only against --help.
func TestManServePageHasEveryServeFlag(t *testing.T) {
	var page string
	for _, p := range manPages {
		if p.name == "kapacitor-squadcast-serve" {
			page = p.roff()
		}
	}
	got := flagNames(manFlag, page)
	for _, f := range serveFlags {
		if !slices.Contains(got, f.name) {
			t.Errorf("the serve page lacks --%s", f.name)
		}
	}
	if len(got) != len(serveFlags) {
		t.Errorf("the serve page lists %d flags, serveFlags has %d", len(got), len(serveFlags))
	}
}

// TestManCommandWritesAPagePerCommand runs the hidden man command and
// checks there is a page for every command the main usage shows.
func TestManCommandWritesAPagePerCommand(t *testing.T) {
	dir := t.TempDir()
	var stderr bytes.Buffer
	if code := run([]string{"man", dir}, &stderr, &stderr); code != 0 {
		t.Fatalf("man: exit %d: %s", code, stderr.String())
	}
	commands := regexp.MustCompile(`(?m)^  kapacitor-squadcast ([a-z-]+)`).FindAllStringSubmatch(usage, -1)
	if len(commands) == 0 {
		t.Fatal("no commands in the usage")
	}
	for _, c := range commands {
		if c[1] == "version" {
			continue // no flags: on the main page
		}
		b, err := os.ReadFile(filepath.Join(dir, "kapacitor-squadcast-"+c[1]+".1"))
		if err != nil {
			t.Errorf("command %s: %v", c[1], err)
			continue
		}
		if !strings.HasPrefix(string(b), ".TH KAPACITOR\\-SQUADCAST\\-"+strings.ToUpper(strings.ReplaceAll(c[1], "-", `\-`))+" 1 ") {
			t.Errorf("command %s: page starts %q", c[1], strings.SplitN(string(b), "\n", 2)[0])
		}
	}
	main, err := os.ReadFile(filepath.Join(dir, "kapacitor-squadcast.1"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(main), "kapacitor\\-squadcast version") {
		t.Errorf("the main page does not show the version command:\n%s", main)
	}
	if code := run([]string{"man"}, &stderr, &stderr); code != 2 {
		t.Errorf("man without DIR: exit %d, want 2", code)
	}
}

// TestManTakesNoFlagForDir: `man --help` prints the usage and `man -x`
// is refused, and neither writes a directory named after the flag.
func TestManTakesNoFlagForDir(t *testing.T) {
	t.Chdir(t.TempDir())
	for arg, want := range map[string]int{"--help": 0, "-h": 0, "-help": 0, "--out": 2, "-": 2} {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"man", arg}, &stdout, &stderr); code != want {
			t.Errorf("man %s: exit %d, want %d", arg, code, want)
		}
		if !strings.Contains(stdout.String()+stderr.String(), "usage: kapacitor-squadcast man DIR") {
			t.Errorf("man %s: no usage in %q", arg, stdout.String()+stderr.String())
		}
		if _, err := os.Stat(arg); !os.IsNotExist(err) {
			t.Errorf("man %s wrote %s (stat: %v)", arg, arg, err)
		}
	}
}
