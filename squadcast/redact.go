package squadcast

import (
	"net/url"
	"regexp"
	"strings"
)

// redactedPath replaces a URL's path and query wherever a URL is shown.
const redactedPath = "/[redacted]"

// RedactURL returns raw with its path, query, fragment and user info
// replaced: "https://api.squadcast.com/[redacted]". Webhook URLs hold their
// secret key in the path. A raw URL that cannot be parsed becomes "[redacted url]".
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "[redacted url]"
	}
	if u.Path == "" && u.RawQuery == "" && u.Fragment == "" && u.User == nil && !u.ForceQuery {
		return u.Scheme + "://" + u.Host
	}
	return u.Scheme + "://" + u.Host + redactedPath
}

// urlPattern finds URLs in free text (error messages, log lines).
var urlPattern = regexp.MustCompile(`(?i)\bhttps?://[^\s"'<>\x60]+`)

// redactText replaces every http(s) URL in s by its redacted form, and each
// of the given secrets by "[redacted]".
func redactText(s string, secrets []string) string {
	s = urlPattern.ReplaceAllStringFunc(s, RedactURL)
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return s
}

// urlSecrets returns the parts of a webhook URL that must not be shown
// anywhere: the URL itself, its path (when it is more than "/"), its query,
// and its last path segment (the key) when it is long enough to replace
// safely in free text.
func urlSecrets(raw string) []string {
	secrets := []string{raw}
	u, err := url.Parse(raw)
	if err != nil {
		return secrets
	}
	if p := u.EscapedPath(); len(p) > 1 {
		secrets = append(secrets, p)
		if p != u.Path {
			secrets = append(secrets, u.Path)
		}
	}
	if u.RawQuery != "" {
		secrets = append(secrets, u.RawQuery)
	}
	if i := strings.LastIndexByte(strings.TrimRight(u.Path, "/"), '/'); i >= 0 {
		if key := strings.TrimRight(u.Path, "/")[i+1:]; len(key) >= 8 {
			secrets = append(secrets, key)
			if esc := url.PathEscape(key); esc != key {
				secrets = append(secrets, esc)
			}
		}
	}
	return secrets
}

// redactError returns err with every URL in it redacted, and the given
// secrets removed from its text. A *url.Error (what net/http's Client
// returns) is copied with its URL redacted, so that it keeps its type and
// its cause for errors.Is/As. Any other error whose text still
// shows a secret or a URL is replaced by an error with the cleaned text,
// which unwraps to nothing (its cause would show the secret again).
func redactError(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	if ue, ok := err.(*url.Error); ok {
		return &url.Error{Op: ue.Op, URL: RedactURL(ue.URL), Err: redactError(ue.Err, secrets)}
	}
	if de, ok := err.(*DeliveryError); ok {
		c := *de
		c.Err = redactError(de.Err, secrets)
		c.Body = redactText(de.Body, secrets)
		return &c
	}
	msg := err.Error()
	if clean := redactText(msg, secrets); clean != msg {
		return &redactedError{msg: clean}
	}
	return err
}

// redactedError is an error whose text had a URL or a secret removed.
type redactedError struct{ msg string }

// Error returns the redacted text.
func (e *redactedError) Error() string { return e.msg }
