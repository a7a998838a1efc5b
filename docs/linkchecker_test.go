package docs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

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
