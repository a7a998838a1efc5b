package squadcast

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

const (
	secretKey  = "c2VjcmV0LWtleS0xMjM0NTY3ODkw"
	secretURL  = "https://api.squadcast.com/v2/incidents/api/" + secretKey
	secretPath = "/v2/incidents/api/"
)

func TestConfigValidate(t *testing.T) {
	good := Endpoint{Name: "default", URL: secretURL}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // "" for valid
	}{
		{name: "only a data dir", cfg: Config{}},
		{name: "endpoints", cfg: Config{Endpoints: []Endpoint{good, {Name: "eu", URL: "http://127.0.0.1:8080/x", Format: FormatIncidentWebhook, Timeout: time.Second, RateLimit: RateLimit{Events: 15, Per: time.Minute}}}}},
		{name: "max age", cfg: Config{MaxAge: time.Hour}},
		{name: "no data dir", cfg: Config{}, wantErr: "data dir: is empty"},
		{name: "negative max age", cfg: Config{MaxAge: -time.Second}, wantErr: "max age: -1s is negative"},
		{name: "bad rate limit", cfg: Config{Endpoints: []Endpoint{{Name: "a", URL: secretURL, RateLimit: RateLimit{Events: 5}}}}, wantErr: `endpoint "a": rate limit: period 0s is not positive`},
		{name: "empty name", cfg: Config{Endpoints: []Endpoint{{URL: secretURL}}}, wantErr: "endpoints[0]: name is empty"},
		{name: "duplicate name", cfg: Config{Endpoints: []Endpoint{good, good}}, wantErr: `endpoints[1]: name "default" is used twice`},
		{name: "empty url", cfg: Config{Endpoints: []Endpoint{{Name: "a"}}}, wantErr: `endpoint "a": url is empty`},
		{name: "ftp url", cfg: Config{Endpoints: []Endpoint{{Name: "a", URL: "ftp://api.squadcast.com/v2/incidents/api/" + secretKey}}}, wantErr: `endpoint "a": url has scheme "ftp" (want http or https)`},
		{name: "no scheme", cfg: Config{Endpoints: []Endpoint{{Name: "a", URL: "api.squadcast.com/v2/incidents/api/" + secretKey}}}, wantErr: `endpoint "a": url has no scheme`},
		{name: "no host", cfg: Config{Endpoints: []Endpoint{{Name: "a", URL: "https:///v2/incidents/api/" + secretKey}}}, wantErr: `endpoint "a": url has no host`},
		{name: "unparsable", cfg: Config{Endpoints: []Endpoint{{Name: "a", URL: "https://api.squadcast.com/v2/%zz/" + secretKey}}}, wantErr: `endpoint "a": url cannot be parsed`},
		{name: "bad format", cfg: Config{Endpoints: []Endpoint{{Name: "a", URL: secretURL, Format: "xml"}}}, wantErr: `endpoint "a": format "xml" is unknown`},
		{name: "negative timeout", cfg: Config{Endpoints: []Endpoint{{Name: "a", URL: secretURL, Timeout: -time.Second}}}, wantErr: `endpoint "a": timeout -1s is negative`},
		{name: "negative workers", cfg: Config{Workers: -1}, wantErr: "workers: -1 is negative"},
		{name: "negative queue", cfg: Config{QueueSize: -1}, wantErr: "queue size: -1 is negative"},
		{name: "negative wait min", cfg: Config{RetryWaitMin: -1}, wantErr: "retry wait min: -1ns is negative"},
		{name: "negative wait max", cfg: Config{RetryWaitMax: -1}, wantErr: "retry wait max: -1ns is negative"},
		{name: "min over max", cfg: Config{RetryWaitMin: time.Minute, RetryWaitMax: time.Second}, wantErr: "retry wait min 1m0s is greater than retry wait max 1s"},
		{name: "user agent with newline", cfg: Config{UserAgent: "a\nb"}, wantErr: `user agent "a\nb" has control characters`},
		{name: "min over default max", cfg: Config{RetryWaitMin: time.Hour}, wantErr: "retry wait min 1h0m0s is greater than retry wait max 5m0s"},
		{name: "headers", cfg: Config{Endpoints: []Endpoint{{Name: "a", URL: secretURL, Headers: map[string]string{"X-Team": "infra", "User-Agent": "me"}}}}},
		{name: "bad header name", cfg: Config{Endpoints: []Endpoint{{Name: "a", URL: secretURL, Headers: map[string]string{"X Team": "infra"}}}}, wantErr: `endpoint "a": header "X Team": not a valid header name`},
		{name: "reserved header", cfg: Config{Endpoints: []Endpoint{{Name: "a", URL: secretURL, Headers: map[string]string{"content-type": "text/plain"}}}}, wantErr: `endpoint "a": header "content-type": set by the daemon`},
		{name: "header value with newline", cfg: Config{Endpoints: []Endpoint{{Name: "a", URL: secretURL, Headers: map[string]string{"X-Token": "a\r\nb"}}}}, wantErr: `endpoint "a": header "X-Token": its value has control characters`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name != "no data dir" {
				tt.cfg.DataDir = t.TempDir()
			}
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				require.NoError(t, err)
				s, err := New(tt.cfg)
				require.NoError(t, err)
				require.NoError(t, s.Close(t.Context()))
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			require.NotContains(t, err.Error(), secretKey)
			require.NotContains(t, err.Error(), secretPath)
			require.Equal(t, strings.ToLower(err.Error()[:1]), err.Error()[:1], "lower case")
			_, err = New(tt.cfg)
			require.ErrorContains(t, err, tt.wantErr, "New validates too")
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{Endpoints: []Endpoint{{Name: "a", URL: secretURL}}}.withDefaults()
	require.Equal(t, DefaultWorkers, c.Workers)
	require.Equal(t, DefaultQueueSize, c.QueueSize)
	require.Equal(t, DefaultMaxAge, c.MaxAge)
	require.Equal(t, DefaultRetryWaitMin, c.RetryWaitMin)
	require.Equal(t, DefaultRetryWaitMax, c.RetryWaitMax)
	require.Equal(t, DefaultUserAgent, c.UserAgent)
	require.NotNil(t, c.Logger)
	require.Equal(t, FormatKapacitor, c.Endpoints[0].Format)
	require.Equal(t, DefaultTimeout, c.Endpoints[0].Timeout)
	require.Equal(t, time.Minute, Config{MaxAge: time.Minute}.withDefaults().MaxAge)
}

func TestEndpointPrintingHidesURL(t *testing.T) {
	cfg := Config{Endpoints: []Endpoint{{Name: "default", URL: secretURL + "?token=" + secretKey}}}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		for _, v := range []interface{}{cfg, cfg.Endpoints[0], &cfg.Endpoints[0], cfg.Endpoints} {
			out := fmt.Sprintf(verb, v)
			require.NotContains(t, out, secretKey, "%s of %T", verb, v)
			require.NotContains(t, out, secretPath, "%s of %T", verb, v)
		}
	}
	require.Contains(t, cfg.Endpoints[0].String(), "https://api.squadcast.com/[redacted]")
}

func TestOpen(t *testing.T) {
	cfg := Config{Endpoints: []Endpoint{
		{Name: "default", URL: secretURL},
		{Name: "eu", URL: "https://api.eu.squadcast.com/v2/incidents/api/" + secretKey, Format: FormatIncidentWebhook, Timeout: 3 * time.Second},
	}}
	s, _, _ := newTestSender(t, cfg)

	good := []struct {
		name        string
		d           udf.Destination
		wantName    string
		wantURL     string
		wantFormat  string
		wantTimeout time.Duration
	}{
		{name: "empty means default", d: udf.Destination{}, wantName: "default", wantURL: secretURL, wantFormat: FormatKapacitor, wantTimeout: DefaultTimeout},
		{name: "default", d: udf.Destination{Endpoint: "default"}, wantName: "default", wantURL: secretURL, wantFormat: FormatKapacitor, wantTimeout: DefaultTimeout},
		{name: "named", d: udf.Destination{Endpoint: "eu"}, wantName: "eu", wantURL: cfg.Endpoints[1].URL, wantFormat: FormatIncidentWebhook, wantTimeout: 3 * time.Second},
		{name: "format override", d: udf.Destination{Endpoint: "eu", Format: FormatKapacitor}, wantName: "eu", wantURL: cfg.Endpoints[1].URL, wantFormat: FormatKapacitor, wantTimeout: 3 * time.Second},
		{name: "inline url", d: udf.Destination{URL: "http://hooks.example:8080/k/" + secretKey}, wantName: "inline:hooks.example:8080", wantURL: "http://hooks.example:8080/k/" + secretKey, wantFormat: FormatKapacitor, wantTimeout: DefaultTimeout},
		{name: "inline url inherits the endpoint's settings", d: udf.Destination{Endpoint: "eu", URL: "https://x.example/" + secretKey}, wantName: "inline:x.example", wantURL: "https://x.example/" + secretKey, wantFormat: FormatIncidentWebhook, wantTimeout: 3 * time.Second},
		{name: "inline url and format", d: udf.Destination{URL: "https://x.example/" + secretKey, Format: FormatIncidentWebhook}, wantName: "inline:x.example", wantURL: "https://x.example/" + secretKey, wantFormat: FormatIncidentWebhook, wantTimeout: DefaultTimeout},
		{name: "tags and priorities with the incident-webhook endpoint", d: udf.Destination{Endpoint: "eu", Tags: [][2]string{{"team", "db"}}, Priorities: [][2]string{{"CRITICAL", "P2"}}}, wantName: "eu", wantURL: cfg.Endpoints[1].URL, wantFormat: FormatIncidentWebhook, wantTimeout: 3 * time.Second},
		{name: "tags with a format override", d: udf.Destination{Format: FormatIncidentWebhook, Tags: [][2]string{{"team", "db"}}}, wantName: "default", wantURL: secretURL, wantFormat: FormatIncidentWebhook, wantTimeout: DefaultTimeout},
	}
	for _, tt := range good {
		t.Run(tt.name, func(t *testing.T) {
			p, err := s.Open(tt.d)
			require.NoError(t, err)
			tg := p.(*publisher).t
			require.Equal(t, tt.wantName, tg.name)
			require.Equal(t, tt.wantURL, tg.url)
			require.Equal(t, tt.wantFormat, tg.format)
			require.Equal(t, tt.wantTimeout, tg.timeout)
		})
	}

	bad := []struct {
		name       string
		d          udf.Destination
		wantOption string
		wantValue  string
		wantReason string
	}{
		{name: "unknown endpoint", d: udf.Destination{Endpoint: "us"}, wantOption: "endpoint", wantValue: "'us'", wantReason: "unknown endpoint (configured: default, eu)"},
		{name: "unknown endpoint with url", d: udf.Destination{Endpoint: "us", URL: secretURL}, wantOption: "endpoint", wantValue: "'us'", wantReason: "unknown endpoint (configured: default, eu)"},
		{name: "ftp url", d: udf.Destination{URL: "ftp://api.squadcast.com/v2/incidents/api/" + secretKey}, wantOption: "url", wantReason: `url has scheme "ftp" (want http or https)`},
		{name: "no scheme", d: udf.Destination{URL: "api.squadcast.com/v2/incidents/api/" + secretKey}, wantOption: "url", wantReason: "url has no scheme"},
		{name: "no host", d: udf.Destination{URL: "http:///v2/incidents/api/" + secretKey}, wantOption: "url", wantReason: "url has no host"},
		{name: "opaque", d: udf.Destination{URL: "https:" + secretKey}, wantOption: "url", wantReason: "url has no host"},
		{name: "unparsable", d: udf.Destination{URL: "https://api.squadcast.com/%zz" + secretKey}, wantOption: "url", wantReason: "url cannot be parsed"},
		{name: "bad host", d: udf.Destination{URL: "https://api squadcast.com/" + secretKey}, wantOption: "url", wantReason: "url cannot be parsed"},
		{name: "bad format", d: udf.Destination{Format: "xml"}, wantOption: "format", wantValue: "'xml'", wantReason: "unknown format (want 'kapacitor' or 'incident-webhook')"},
		{name: "bad format with url", d: udf.Destination{URL: secretURL, Format: "xml"}, wantOption: "format", wantValue: "'xml'", wantReason: "unknown format"},
		{name: "tag with the kapacitor format", d: udf.Destination{Tags: [][2]string{{"team", "db"}}, Priorities: [][2]string{{"CRITICAL", "P2"}}}, wantOption: "tag", wantReason: "only the incident-webhook format has tags and priorities, and this task sends the kapacitor format (endpoint default): add .format('incident-webhook') or remove .tag()"},
		{name: "priority with a kapacitor override", d: udf.Destination{Endpoint: "eu", Format: FormatKapacitor, Priorities: [][2]string{{"CRITICAL", "P2"}}}, wantOption: "priority", wantReason: "or remove .priority()"},
		{name: "tag with an inline url", d: udf.Destination{URL: secretURL, Tags: [][2]string{{"team", "db"}}}, wantOption: "tag", wantReason: "this task sends the kapacitor format (endpoint inline:api.squadcast.com)"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			p, err := s.Open(tt.d)
			require.Nil(t, p)
			var oe *udf.OptionError
			require.True(t, errors.As(err, &oe), "want *udf.OptionError, got %T %v", err, err)
			require.Equal(t, tt.wantOption, oe.Option)
			require.Equal(t, tt.wantValue, oe.Value)
			require.Contains(t, oe.Reason, tt.wantReason)
			require.Contains(t, err.Error(), "option ."+tt.wantOption)
			require.NotContains(t, err.Error(), secretKey)
			require.NotContains(t, err.Error(), secretPath)
		})
	}
}

func TestOpenWithoutEndpoints(t *testing.T) {
	s, _, _ := newTestSender(t, Config{})
	_, err := s.Open(udf.Destination{Endpoint: "default"})
	var oe *udf.OptionError
	require.True(t, errors.As(err, &oe))
	require.Equal(t, "endpoint", oe.Option)
	require.Equal(t, "'default'", oe.Value)
	require.Contains(t, oe.Reason, "--url")
	require.Contains(t, oe.Reason, "SQUADCAST_WEBHOOK_URL")
	require.Contains(t, oe.Reason, ".url(")

	_, err = s.Open(udf.Destination{Endpoint: "eu"})
	require.True(t, errors.As(err, &oe))
	require.Equal(t, "'eu'", oe.Value)
	require.Contains(t, oe.Reason, "unknown endpoint (none is configured)")

	p, err := s.Open(udf.Destination{Endpoint: "default", URL: secretURL})
	require.NoError(t, err)
	require.Equal(t, "inline:api.squadcast.com", p.(*publisher).t.name)
}
