package main

import (
	"net/url"
	"strings"
)

// tickPost is one alert handler `.post()` found in a TICKscript.
type tickPost struct {
	// URL is the handler's URL: the string argument of .post(), or the
	// value of the var it names; "" when it has none (an .endpoint()) or
	// the var's value is not a plain string.
	URL string
	// Var is the name of the var given to .post(), if one was.
	Var string
	// Endpoint is the [[httppost]] endpoint named by a following
	// .endpoint('NAME'), if any. Kapacitor uses it instead of URL when
	// kapacitor.conf has an endpoint of that name.
	Endpoint string
}

// tickToken is one token of a TICKscript, as far as tickPosts needs them.
type tickToken struct {
	kind byte // 's' string literal, 'r' "reference", 'i' identifier, else the punctuation character itself ('?' for anything else)
	text string
}

// scanTick splits a TICKscript into tokens, skipping white space, comments
// and regex literals. It never fails: what it does not know becomes '?'
// tokens, so that a script Kapacitor accepted is always read to its end.
func scanTick(src string) []tickToken {
	var toks []tickToken
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case strings.HasPrefix(src[i:], "//"):
			i = skipTo(src, i, "\n")
		case strings.HasPrefix(src[i:], "'''"):
			end := strings.Index(src[i+3:], "'''")
			if end < 0 {
				end = len(src) - i - 3
			}
			toks = append(toks, tickToken{'s', src[i+3 : i+3+end]})
			i = min(len(src), i+3+end+3)
		case c == '\'' || c == '"':
			text, next := quoted(src, i)
			kind := byte('s')
			if c == '"' {
				kind = 'r'
			}
			toks = append(toks, tickToken{kind, text})
			i = next
		case (c == '=' || c == '!') && strings.HasPrefix(src[i+1:], "~"):
			// A regex literal follows: /.../ with \/ escapes.
			i += 2
			for i < len(src) && (src[i] == ' ' || src[i] == '\t') {
				i++
			}
			if i < len(src) && src[i] == '/' {
				_, i = quoted(src, i)
			}
			toks = append(toks, tickToken{'?', "=~"})
		case isIdentStart(c):
			j := i
			for j < len(src) && (isIdentStart(src[j]) || src[j] >= '0' && src[j] <= '9') {
				j++
			}
			toks = append(toks, tickToken{'i', src[i:j]})
			i = j
		case strings.IndexByte("|@.(),=+", c) >= 0:
			toks = append(toks, tickToken{c, string(c)})
			i++
		default:
			toks = append(toks, tickToken{'?', string(c)})
			i++
		}
	}
	return toks
}

// skipTo returns the index just after the next sep at or after i, or len(src).
func skipTo(src string, i int, sep string) int {
	if j := strings.Index(src[i:], sep); j >= 0 {
		return i + j + len(sep)
	}
	return len(src)
}

// quoted reads the literal that starts with the quote character src[i]
// (', " or /), where a backslash escapes the quote, and returns its text
// with those escapes undone, and the index after its closing quote.
func quoted(src string, i int) (string, int) {
	q := src[i]
	var b strings.Builder
	for j := i + 1; j < len(src); j++ {
		switch {
		case src[j] == '\\' && j+1 < len(src) && (src[j+1] == q || src[j+1] == '\\'):
			b.WriteByte(src[j+1])
			j++
		case src[j] == q:
			return b.String(), j + 1
		default:
			b.WriteByte(src[j])
		}
	}
	return b.String(), len(src)
}

func isIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// tickPosts returns the `.post()` handlers of a TICKscript, in order. A
// `.post()` takes a string, or a var holding one (`var url = '...'`); an
// `.endpoint('NAME')` after it, before the next `.post()` or the next node
// (`|`, `@`), belongs to it. The script is only read as text: string
// literals, references, comments and regexes are told apart, so a URL in
// a comment is not taken for a handler's.
func tickPosts(script string) []tickPost {
	toks := scanTick(script)
	vars := map[string]string{}
	for i := 0; i+3 < len(toks); i++ {
		if toks[i] == (tickToken{'i', "var"}) && toks[i+1].kind == 'i' && toks[i+2].kind == '=' && toks[i+3].kind == 's' &&
			(i+4 == len(toks) || toks[i+4].kind != '+') {
			vars[toks[i+1].text] = toks[i+3].text
		}
	}
	var posts []tickPost
	for i := 0; i+2 < len(toks); i++ {
		if !isCall(toks, i, "post") {
			continue
		}
		var p tickPost
		if arg := toks[i+3]; i+4 < len(toks) && toks[i+4].kind == ')' {
			switch arg.kind {
			case 's', 'r':
				p.URL = arg.text
			case 'i':
				p.Var, p.URL = arg.text, vars[arg.text]
			}
		}
		for j := i + 3; j+4 < len(toks); j++ {
			if toks[j].kind == '|' || toks[j].kind == '@' || isCall(toks, j, "post") {
				break
			}
			if isCall(toks, j, "endpoint") && toks[j+3].kind == 's' {
				p.Endpoint = toks[j+3].text
			}
		}
		posts = append(posts, p)
	}
	return posts
}

// isCall reports whether toks[i:] starts with `.name(`.
func isCall(toks []tickToken, i int, name string) bool {
	return i+3 < len(toks) && toks[i].kind == '.' && toks[i+1] == (tickToken{'i', name}) && toks[i+2].kind == '('
}

// squadcastHosts are the host names, and the domain, of Squadcast's API.
var squadcastHosts = []string{"api.squadcast.com", "api.eu.squadcast.com", ".squadcast.com"}

// isSquadcastURL reports whether raw is an http(s) URL whose host is
// Squadcast's (or one of extra, matched the same way: a name starting
// with '.' matches the domain's hosts). A URL template (`{{...}}`) is
// matched on the host it names.
func isSquadcastURL(raw string, extra []string) bool {
	raw = strings.TrimSpace(raw)
	rest, ok := cutScheme(raw)
	if !ok {
		return false
	}
	hostport := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		hostport = rest[:i]
	}
	if i := strings.LastIndexByte(hostport, '@'); i >= 0 {
		hostport = hostport[i+1:]
	}
	host := hostport
	if u, err := url.Parse("http://" + hostport); err == nil {
		host = u.Hostname()
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	for _, h := range append(squadcastHosts[:len(squadcastHosts):len(squadcastHosts)], extra...) {
		h = strings.ToLower(strings.TrimSpace(h))
		switch {
		case h == "":
		case strings.HasPrefix(h, "."):
			if strings.HasSuffix(host, h) || host == h[1:] {
				return true
			}
		case host == h:
			return true
		}
	}
	return false
}

// cutScheme returns raw after "http://" or "https://" (any case).
func cutScheme(raw string) (string, bool) {
	lower := strings.ToLower(raw)
	for _, s := range []string{"http://", "https://"} {
		if strings.HasPrefix(lower, s) {
			return raw[len(s):], true
		}
	}
	return "", false
}
