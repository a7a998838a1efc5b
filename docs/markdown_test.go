package docs

import (
	"bufio"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

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
