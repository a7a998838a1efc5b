package main

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/squadcast"
)

// readFile reads a config file into c, over what c holds, and checks it.
// Errors name the file and the key (and the endpoint) that is wrong, and
// never show a webhook URL's path or query.
func (c *Config) readFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config file: %w", err)
	}
	if err := c.decode(string(b)); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	c.File = path
	return nil
}

// decode decodes config file text into c, over what c holds: unknown keys
// are errors. It then checks the settings the text gave and its endpoints
// (reading their url-files), and puts the default endpoint first.
func (c *Config) decode(text string) error {
	md, err := toml.Decode(text, c)
	if err != nil {
		// The library's errors name the line and key; they may quote a
		// value, which a URL could be: redact those.
		msg := strings.TrimPrefix(err.Error(), "toml: ")
		if m := tomlErr.FindStringSubmatch(msg); m != nil {
			msg = "line " + m[1] + ": " + m[2] + ": " + m[3]
		}
		return errors.New(redactURLs(msg))
	}
	if err := unknownKeys(md); err != nil {
		return errors.New(redactURLs(err.Error()))
	}
	if err := c.checkFile(md, endpointKeys(text)); err != nil {
		// Values are quoted in some messages: never a URL's path.
		return errors.New(redactURLs(err.Error()))
	}
	return nil
}

// defaultEndpointFlags are the serve flags that set the default endpoint:
// no top-level key of a config file, but keys of its [[endpoint]] tables.
var defaultEndpointFlags = []string{"url", "format", "timeout", "rate-limit", "coalesce"}

// unknownKeys reports the first key of the file that is not a setting,
// naming the endpoint table it is in.
func unknownKeys(md toml.MetaData) error {
	undecoded := map[string]bool{}
	for _, k := range md.Undecoded() {
		undecoded[k.String()] = true
	}
	if len(undecoded) == 0 {
		return nil
	}
	endpoint := -1
	for _, k := range md.Keys() {
		if len(k) == 1 && k[0] == "endpoint" {
			endpoint++
		}
		if !undecoded[k.String()] {
			continue
		}
		if len(k) == 2 && k[0] == "endpoint" && endpoint >= 0 {
			return fmt.Errorf("endpoint #%d: unknown key %q (want name, url, url-file, format, timeout, headers, rate-limit or coalesce)", endpoint+1, k[1])
		}
		if len(k) == 1 && slices.Contains(defaultEndpointFlags, k[0]) {
			return fmt.Errorf("unknown key %q: --%s sets the default endpoint; in a file, give %s in an [[endpoint]] table with name = \"default\"", k[0], k[0], k[0])
		}
		return fmt.Errorf("unknown key %q (the keys are the long names of serve's flags but config, url, format, timeout, rate-limit and coalesce, and [[endpoint]] tables)", k.String())
	}
	return fmt.Errorf("unknown keys %v", md.Undecoded())
}

// redactURLs replaces http(s) URLs in s by their redacted form.
func redactURLs(s string) string {
	return urlInText.ReplaceAllStringFunc(s, squadcast.RedactURL)
}

// tomlErr is the shape of the TOML library's decoding errors.
var tomlErr = regexp.MustCompile(`(?s)^line (\d+) \(last key "([^"]*)"\): (.*)$`)

var urlInText = regexp.MustCompile(`(?i)\bhttps?://[^\s"'<>\x60]+`)

// endpointKeys returns, for each [[endpoint]] table of valid config file
// text, the keys it gives: an empty value given is not a key left out.
func endpointKeys(text string) []map[string]bool {
	var raw struct {
		Endpoints []map[string]any `toml:"endpoint"`
	}
	_, _ = toml.Decode(text, &raw) // it decoded into a Config already
	keys := make([]map[string]bool, len(raw.Endpoints))
	for i, e := range raw.Endpoints {
		keys[i] = map[string]bool{}
		for k := range e {
			keys[i][k] = true
		}
	}
	return keys
}

// checkFile checks the settings a config file gave (c holds them over the
// defaults), naming their keys: every bad one, then the first bad endpoint.
func (c *Config) checkFile(md toml.MetaData, endpointKeys []map[string]bool) error {
	var errs []error
	empty := map[string]bool{}
	for _, k := range md.Keys() {
		if len(k) != 1 {
			continue
		}
		if f := flagNamed(k[0]); f != nil && isEmptyString(f.field(c)) {
			empty[f.name] = true
			errs = append(errs, fmt.Errorf("%s: is empty (leave the key out for the default)", f.name))
		}
	}
	for _, s := range settings {
		if err := s.check(c); err != nil && !empty[s.name] {
			errs = append(errs, fmt.Errorf("%s: %w", s.name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return c.resolveEndpoints(endpointKeys)
}

// isEmptyString reports whether p points to an empty string (of any string type).
func isEmptyString(p any) bool {
	v := reflect.ValueOf(p).Elem()
	return v.Kind() == reflect.String && v.Len() == 0
}

// resolveEndpoints checks the config file's endpoints in file order (keys
// holds the keys each gave), reads their url-files, and moves the default
// endpoint first.
func (c *Config) resolveEndpoints(keys []map[string]bool) error {
	seen := map[string]bool{}
	for i := range c.Endpoints {
		var given map[string]bool
		if i < len(keys) {
			given = keys[i]
		}
		e := &c.Endpoints[i]
		if err := e.resolve(i, given); err != nil {
			return err
		}
		if seen[e.Name] {
			return fmt.Errorf("endpoint %q: name is used by an earlier endpoint", e.Name)
		}
		seen[e.Name] = true
	}
	if i := c.endpointIndex(squadcast.DefaultEndpoint); i > 0 {
		e := c.Endpoints[i]
		c.Endpoints = slices.Insert(slices.Delete(c.Endpoints, i, i+1), 0, e)
	}
	return nil
}

// endpointName is what an endpoint may be called: it is a metric label
// and a TICKscript string.
var endpointName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// resolve checks the i-th [[endpoint]] table, which gave the keys in
// given, reads its url-file, and gives it the default format.
func (e *EndpointConfig) resolve(i int, given map[string]bool) error {
	if e.Name == "" {
		return fmt.Errorf("endpoint #%d: name is missing", i+1)
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("endpoint %q: "+format, append([]any{e.Name}, args...)...)
	}
	if !endpointName.MatchString(e.Name) {
		return fail("name: use letters, digits, '_', '-' and '.' only, starting with a letter or digit")
	}
	if e.Name == squadcast.InlineLabel {
		return fail("name: %q is reserved for tasks' own .url()s", squadcast.InlineLabel)
	}
	switch {
	case given["url"] && given["url-file"]:
		return fail("url and url-file exclude each other: give one")
	case given["url"]:
		if err := squadcast.CheckURL(e.URL.Reveal()); err != nil {
			return fail("url: %w", err)
		}
	case given["url-file"]:
		u, err := readURLFile(e.URLFile)
		if err != nil {
			return fail("url-file: %w", err)
		}
		e.URL = squadcast.SecretURL(u)
	default:
		return fail("url or url-file is required")
	}
	if !given["format"] {
		e.Format = squadcast.FormatKapacitor
	} else if err := checkFormat(e.Format); err != nil {
		return fail("format: %w", err)
	}
	if given["timeout"] && e.Timeout <= 0 {
		return fail("timeout: must be positive, got %s", time.Duration(e.Timeout))
	}
	if err := squadcast.ValidateHeaders(e.Headers); err != nil {
		return fail("headers: %w", err)
	}
	if _, err := e.RateLimit.parse(); err != nil {
		return fail("rate-limit: %w", err)
	}
	return nil
}

// readURLFile reads a webhook URL from a file (surrounding white space
// trimmed). Its errors never show the file's content.
func readURLFile(path string) (string, error) {
	if path == "" {
		return "", errors.New("is empty")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	u := strings.TrimSpace(string(b))
	if err := squadcast.CheckURL(u); err != nil {
		return "", fmt.Errorf("the URL in %s %w", path, err)
	}
	return u, nil
}
