package squadcast

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
)

// SecretURL is a URL that holds a secret: a webhook URL's last path segment
// is the service's key, and a Kapacitor URL may carry a user and password.
// Every way of printing it shows only its scheme and host, as RedactURL
// does ("https://api.squadcast.com/[redacted]"): fmt's verbs (%v, %+v, %#v,
// %s, %q...), JSON and text marshalling. Reveal returns the URL itself, for
// the one place that sends a request to it.
type SecretURL string

// Reveal returns the URL with its secret, to send a request to it.
func (u SecretURL) Reveal() string { return string(u) }

// String returns the redacted URL; "" when the URL is empty.
func (u SecretURL) String() string {
	if u == "" {
		return ""
	}
	return RedactURL(string(u))
}

// GoString is the redacted URL as a Go expression, for %#v.
func (u SecretURL) GoString() string {
	return "squadcast.SecretURL(" + strconv.Quote(u.String()) + ")"
}

// Format applies any verb to the redacted URL, so that no verb (%x
// included) prints the secret.
func (u SecretURL) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, u.GoString())
		return
	}
	_, _ = fmt.Fprintf(f, fmt.FormatString(f, verb), u.String())
}

// MarshalText returns the redacted URL.
func (u SecretURL) MarshalText() ([]byte, error) { return []byte(u.String()), nil }

// MarshalJSON returns the redacted URL as a JSON string.
func (u SecretURL) MarshalJSON() ([]byte, error) { return json.Marshal(u.String()) }
