package docs

import (
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
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
