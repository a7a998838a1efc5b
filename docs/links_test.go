package docs

import (
	"bufio"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// TestMarkdownLinks checks every relative link of every Markdown file in the
// repository: its target file or directory must exist and, when the link has
// a #fragment into a Markdown file, that file must have a heading with that
// GitHub-style anchor. Links to http(s) and mailto are not followed.
func TestMarkdownLinks(t *testing.T) {
	root := repoRoot(t)
	files, err := markdownFiles(root)
	if err != nil {
		t.Fatalf("listing the Markdown files: %v", err)
	}
	if len(files) == 0 {
		t.Fatalf("no Markdown file found under %s", root)
	}
	anchors := map[string]map[string]bool{} // Markdown file → its heading anchors
	anchorsOf := func(path string) (map[string]bool, error) {
		if a, ok := anchors[path]; ok {
			return a, nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		a := headingAnchors(string(b))
		anchors[path] = a
		return a, nil
	}

	var broken []string
	checked := 0
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("reading %s: %v", file, err)
		}
		rel, _ := filepath.Rel(root, file)
		for _, l := range markdownLinks(string(b)) {
			checked++
			if reason := checkLink(root, file, l.target, anchorsOf); reason != "" {
				broken = append(broken, fmt.Sprintf("%s:%d: (%s): %s", rel, l.line, l.target, reason))
			}
		}
	}
	if len(broken) > 0 {
		t.Errorf("%d broken Markdown link(s) of %d checked:\n  %s", len(broken), checked, strings.Join(broken, "\n  "))
	}
	t.Logf("%d links checked in %d Markdown files", checked, len(files))
}

// repoRoot walks up from the working directory to the directory that holds go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod in the working directory or any parent")
		}
		dir = parent
	}
}

// markdownFiles lists the *.md files under root, skipping .git.
func markdownFiles(root string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.EqualFold(filepath.Ext(path), ".md") {
			files = append(files, path)
		}
		return nil
	})
	return files, err
}

// checkLink returns why the link target, found in file, does not resolve, or "".
func checkLink(root, file, target string, anchorsOf func(string) (map[string]bool, error)) string {
	if u, err := url.Parse(target); err == nil {
		switch strings.ToLower(u.Scheme) {
		case "http", "https", "mailto":
			return ""
		}
	}
	pathPart, fragment, hasFragment := strings.Cut(target, "#")
	if i := strings.IndexByte(pathPart, '?'); i >= 0 {
		pathPart = pathPart[:i]
	}
	p, err := url.PathUnescape(pathPart)
	if err != nil {
		return "bad escape in path: " + err.Error()
	}
	var dest string
	switch {
	case p == "":
		dest = file
	case strings.HasPrefix(p, "/"):
		dest = filepath.Join(root, filepath.FromSlash(p))
	default:
		dest = filepath.Join(filepath.Dir(file), filepath.FromSlash(p))
	}
	info, err := os.Stat(dest)
	if err != nil {
		return "no such file or directory"
	}
	if !hasFragment {
		return ""
	}
	if frag, err := url.PathUnescape(fragment); err == nil {
		fragment = frag
	}
	if info.IsDir() {
		return "an anchor into a directory"
	}
	if !strings.EqualFold(filepath.Ext(dest), ".md") {
		if lineAnchor.MatchString(fragment) {
			return ""
		}
		return "an anchor into a file that is not Markdown"
	}
	anchors, err := anchorsOf(dest)
	if err != nil {
		return err.Error()
	}
	if !anchors[strings.ToLower(fragment)] {
		return fmt.Sprintf("no heading with the anchor #%s", fragment)
	}
	return ""
}

// lineAnchor matches GitHub's line anchors into source files (#L10, #L10-L20).
var lineAnchor = regexp.MustCompile(`^L\d+(-L\d+)?$`)

type link struct {
	line   int
	target string
}

var (
	inlineLink = regexp.MustCompile(`!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)(?:\s+(?:"[^"]*"|'[^']*'|\([^)]*\)))?\s*\)`)
	refDef     = regexp.MustCompile(`^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)`)
)

// markdownLinks returns the targets of the inline links, images and link
// reference definitions of a Markdown text, outside code blocks and code spans.
func markdownLinks(text string) []link {
	var links []link
	forEachLine(text, func(n int, line string, inCode bool) {
		if inCode {
			return
		}
		if m := refDef.FindStringSubmatch(line); m != nil {
			links = append(links, link{n, strings.Trim(m[1], "<>")})
			return
		}
		line = blankCodeSpans(line)
		for _, m := range inlineLink.FindAllStringSubmatch(line, -1) {
			if t := strings.Trim(m[1], "<>"); t != "" {
				links = append(links, link{n, t})
			}
		}
	})
	return links
}

// blankCodeSpans replaces the code spans of a line (`x`, “x“...) with
// spaces: a run of backticks opens a span that the next run of the same
// length closes; an unclosed run is literal text.
func blankCodeSpans(line string) string {
	b := []byte(line)
	run := func(i int) int { // the length of the backtick run at i
		n := 0
		for i+n < len(b) && b[i+n] == '`' {
			n++
		}
		return n
	}
	for i := 0; i < len(b); {
		n := run(i)
		if n == 0 {
			i++
			continue
		}
		end := -1
		for j := i + n; j < len(b); {
			if m := run(j); m == n {
				end = j + m
				break
			} else if m > 0 {
				j += m
			} else {
				j++
			}
		}
		if end < 0 {
			i += n
			continue
		}
		for k := i; k < end; k++ {
			b[k] = ' '
		}
		i = end
	}
	return string(b)
}

// forEachLine calls fn with each line of text (numbered from 1) and whether
// it is inside (or delimits) a fenced code block.
func forEachLine(text string, fn func(n int, line string, inCode bool)) {
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	fence := "" // the open fence ("```" or "~~~", maybe longer), or ""
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimLeft(line, " ")
		indent := len(line) - len(trimmed)
		switch {
		case fence != "":
			if indent < 4 && strings.HasPrefix(trimmed, fence) && strings.Trim(trimmed, fence[:1]) == "" {
				fence = ""
			}
			fn(n, line, true)
		case indent < 4 && (strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~")):
			fence = trimmed[:len(trimmed)-len(strings.TrimLeft(trimmed, trimmed[:1]))]
			fn(n, line, true)
		default:
			fn(n, line, false)
		}
	}
}

var (
	atxHeading    = regexp.MustCompile(`^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$`)
	setextUnderln = regexp.MustCompile(`^ {0,3}(=+|-{2,})[ \t]*$`)
	headingLink   = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
)

// headingAnchors returns the GitHub anchors of the headings of a Markdown
// text: ATX (# Title) and setext (Title over === or ---) headings outside
// code blocks.
func headingAnchors(text string) map[string]bool {
	anchors := map[string]bool{}
	// As github-slugger does: a heading whose slug is taken gets "-1",
	// "-2"... after it, the first suffix not taken.
	occurrences := map[string]int{}
	add := func(heading string) {
		slug := Slug(heading)
		anchor := slug
		for _, taken := occurrences[anchor]; taken; _, taken = occurrences[anchor] {
			occurrences[slug]++
			anchor = slug + "-" + strconv.Itoa(occurrences[slug])
		}
		occurrences[anchor] = 0
		anchors[anchor] = true
	}
	prev, prevPara := "", false
	forEachLine(text, func(_ int, line string, inCode bool) {
		if inCode {
			prev, prevPara = "", false
			return
		}
		if m := atxHeading.FindStringSubmatch(line); m != nil {
			add(m[2])
			prev, prevPara = "", false
			return
		}
		if prevPara && setextUnderln.MatchString(line) {
			add(strings.TrimSpace(prev))
			prev, prevPara = "", false
			return
		}
		t := strings.TrimSpace(line)
		prevPara = t != "" && !strings.ContainsAny(t[:1], "|>*-+") && !(t[0] >= '0' && t[0] <= '9')
		prev = line
	})
	return anchors
}

// Slug returns the anchor GitHub gives a heading: its text (links reduced
// to their text) in lower case, spaces turned into '-', and every character
// other than a letter, a digit, '-' or '_' removed.
func Slug(heading string) string {
	heading = headingLink.ReplaceAllString(heading, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TestLinkChecker checks the checker itself on small texts.
func TestLinkChecker(t *testing.T) {
	slugs := map[string]string{
		"Options of `@squadcast()`":            "options-of-squadcast",
		"From `|alert()` to `@squadcast()`":    "from-alert-to-squadcast",
		"`kapacitor-squadcast outbox`":         "kapacitor-squadcast-outbox",
		"Limits and hostile input":             "limits-and-hostile-input",
		"Make install and make release":        "make-install-and-make-release",
		"A [linked](other.md) heading_x":       "a-linked-heading_x",
		"Über: 1.5.9, 1.8.3!":                  "über-159-183",
		"  What's   new?  ":                    "whats---new",
		"C++ & Go":                             "c--go",
		"Metrics, health (and logs)":           "metrics-health-and-logs",
		"Kapacitor → kapacitor-squadcast":      "kapacitor--kapacitor-squadcast",
		"Delivery":                             "delivery",
		"The `serve` flags: `--socket PATH`":   "the-serve-flags---socket-path",
		"Step 2. Tell Kapacitor about the UDF": "step-2-tell-kapacitor-about-the-udf",
	}
	for in, want := range slugs {
		if got := Slug(in); got != want {
			t.Errorf("Slug(%q) = %q, want %q", in, got, want)
		}
	}

	md := "# Title\n\n## Usage\n\n## Usage\n\n## Usage\n\nSetext\n------\n\n```sh\n# not a heading\n[not](a-link.md)\n```\n\n" +
		"See [here](#usage-1), `[code](not-a-link.md)`, ![img](pic.png \"title\") and [x](<a b.md#top>).\n\n[ref]: ../x.md#y\n"
	anchors := headingAnchors(md)
	for _, a := range []string{"title", "usage", "usage-1", "usage-2", "setext"} {
		if !anchors[a] {
			t.Errorf("anchor %q missing from %v", a, anchors)
		}
	}
	if anchors["not-a-heading"] {
		t.Errorf("a line in a code block was taken for a heading")
	}
	var got []string
	for _, l := range markdownLinks(md) {
		got = append(got, fmt.Sprintf("%d:%s", l.line, l.target))
	}
	want := []string{"17:#usage-1", "17:pic.png", "17:a b.md#top", "19:../x.md#y"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("links = %q, want %q", got, want)
	}

	// checkLink against a temporary tree.
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "docs"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "README.md"), []byte("# Top\n## Quick start\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "docs", "a.md"), []byte("# A\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n"), 0o644))
	from := filepath.Join(dir, "docs", "a.md")
	anchorsOf := func(p string) (map[string]bool, error) {
		b, err := os.ReadFile(p)
		return headingAnchors(string(b)), err
	}
	cases := map[string]bool{ // target → resolves
		"../README.md":               true,
		"../README.md#quick-start":   true,
		"../README.md#Quick-Start":   true,
		"../README.md#quick-starts":  false,
		"#a":                         true,
		"#b":                         false,
		"../main.go":                 true,
		"../main.go#L1":              true,
		"../main.go#top":             false,
		"/docs/a.md":                 true,
		"../docs":                    true,
		"../docs#a":                  false,
		"missing.md":                 false,
		"../README.md?plain=1":       true,
		"https://example.com/x#y":    true,
		"mailto:someone@example.com": true,
	}
	for target, ok := range cases {
		reason := checkLink(dir, from, target, anchorsOf)
		if (reason == "") != ok {
			t.Errorf("checkLink(%q) = %q, want resolving %v", target, reason, ok)
		}
	}
}
