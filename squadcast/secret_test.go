package squadcast

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSecretURL: no verb, no marshalling shows the key; Reveal does.
func TestSecretURL(t *testing.T) {
	const key = "SeCrEtKeY0123456789"
	u := SecretURL("https://api.squadcast.com/v2/incidents/api/" + key)
	const redacted = "https://api.squadcast.com/[redacted]"
	assert.Equal(t, "https://api.squadcast.com/v2/incidents/api/"+key, u.Reveal())
	assert.Equal(t, redacted, u.String())
	for _, verb := range []string{"%v", "%+v", "%s", "%q", "%d", "%10s", "%-60v"} {
		out := fmt.Sprintf(verb, u)
		assert.NotContains(t, out, key, verb)
		assert.NotContains(t, out, "incidents", verb)
	}
	assert.Equal(t, redacted, fmt.Sprint(u))
	assert.Equal(t, fmt.Sprintf("%x", redacted), fmt.Sprintf("%x", u), "hex of the redacted URL")
	assert.Equal(t, fmt.Sprintf("%X", redacted), fmt.Sprintf("%X", u))
	assert.Equal(t, `"`+redacted+`"`, fmt.Sprintf("%q", u))
	assert.Equal(t, `squadcast.SecretURL("`+redacted+`")`, fmt.Sprintf("%#v", u))

	type holder struct {
		URL  SecretURL
		URLs []SecretURL
		Map  map[string]SecretURL
	}
	h := holder{URL: u, URLs: []SecretURL{u}, Map: map[string]SecretURL{"a": u}}
	for _, verb := range []string{"%v", "%+v", "%#v"} {
		assert.NotContains(t, fmt.Sprintf(verb, h), key, verb)
		assert.NotContains(t, fmt.Sprintf(verb, &h), key, verb)
	}
	b, err := json.Marshal(h)
	require.NoError(t, err)
	assert.NotContains(t, string(b), key)
	assert.Contains(t, string(b), `"URL":"`+redacted+`"`)
	txt, err := u.MarshalText()
	require.NoError(t, err)
	assert.Equal(t, redacted, string(txt))

	assert.Equal(t, "", SecretURL("").String(), "an empty URL prints empty")
	assert.Equal(t, "http://localhost:9092", SecretURL("http://localhost:9092").String(), "no path: nothing to hide")
	assert.Equal(t, "http://localhost:9092/[redacted]", SecretURL("http://admin:pw@localhost:9092").String(), "user info is hidden")
	assert.Equal(t, "[redacted url]", SecretURL("::not a url/"+key).String())
}
