package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	makeTarget  = regexp.MustCompile(`(?m)^([a-z][a-z0-9-]*):`)
	makeCommand = regexp.MustCompile(`(?:^|&&|;|\(|\$ |sudo )\s*make((?:\s+[A-Z_]+=\S+)*(?:\s+[a-z][a-z0-9-]*)+)`)
	makeWord    = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
)

// TestMakeTargets checks that every `make TARGET` of every Markdown file,
// in a code block or a code span, names a target of the Makefile.
func TestMakeTargets(t *testing.T) {
	root := repoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	targets := map[string]bool{}
	for _, m := range makeTarget.FindAllStringSubmatch(string(b), -1) {
		targets[m[1]] = true
	}
	files, err := markdownFiles(root)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, file := range files {
		text, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, file)
		forEachLine(string(text), func(n int, line string, inCode bool) {
			var code []string
			if inCode {
				code = []string{line}
			} else {
				code = codeSpans(line)
			}
			for _, c := range code {
				c, _, _ = strings.Cut(c, "#") // a shell comment
				for _, m := range makeCommand.FindAllStringSubmatch(strings.TrimSpace(c), -1) {
					for _, w := range strings.Fields(m[1]) {
						if !makeWord.MatchString(w) {
							continue // VAR=value
						}
						checked++
						if !targets[w] {
							t.Errorf("%s:%d: make %s: no such target in the Makefile", rel, n, w)
						}
					}
				}
			}
		})
	}
	if checked < 10 {
		t.Errorf("only %d make targets found in the Markdown files", checked)
	}
	t.Logf("%d make targets checked", checked)
}

// codeSpans returns the contents of the `code spans` of a line.
func codeSpans(line string) []string {
	var spans []string
	// With its spaces made NULs, the line's only spaces after
	// blankCodeSpans are the spans'.
	blanked := blankCodeSpans(strings.ReplaceAll(line, " ", "\x00"))
	for i := 0; i < len(line); {
		if blanked[i] != ' ' {
			i++
			continue
		}
		j := i
		for j < len(line) && blanked[j] == ' ' {
			j++
		}
		spans = append(spans, strings.Trim(line[i:j], "` "))
		i = j
	}
	return spans
}
