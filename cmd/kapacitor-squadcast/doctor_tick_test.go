package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestDoctorTickPosts(t *testing.T) {
	tests := []struct {
		name   string
		script string
		want   []tickPost
	}{
		{"chronograf", `var db = 'telegraf'
var idVar = name + '-{{.Group}}'
var message = 'it''s'
var crit = 90
var data = stream
    |from()
        .database(db)
        .where(lambda: "host" =~ /web'.*/ AND "cpu" == 'cpu-total')
    |eval(lambda: "usage_user")
        .as('value')
var trigger = data
    |alert()
        .crit(lambda: "value" > crit)
        .message(message)
        .post('https://api.squadcast.com/v1/incidents/kapacitor/K1')
        .header('Content-Type', 'application/json')
trigger
    |httpOut('output')
`, []tickPost{{URL: "https://api.squadcast.com/v1/incidents/kapacitor/K1"}}},
		{"endpoint", `stream|from().measurement('cpu')|alert().crit(lambda: TRUE).post().endpoint('squadcast').timeout(10s)`,
			[]tickPost{{Endpoint: "squadcast"}}},
		{"var", "var url = '''https://x.squadcast.com/k'''\nstream|alert().post(url)|alert().post('http://other')",
			[]tickPost{{URL: "https://x.squadcast.com/k", Var: "url"}, {URL: "http://other"}}},
		{"two posts, endpoint belongs to the second", `stream|alert().post('a').post().endpoint('e')`,
			[]tickPost{{URL: "a"}, {Endpoint: "e"}}},
		{"endpoint of the next node is not the post's", `stream|alert().post('a')|alert().endpoint('e')`,
			[]tickPost{{URL: "a"}}},
		{"double quotes", `stream|alert().post("https://api.squadcast.com/v1/x")`,
			[]tickPost{{URL: "https://api.squadcast.com/v1/x"}}},
		{"escaped quote", `stream|alert().post('https://h/\'q')`, []tickPost{{URL: "https://h/'q"}}},
		{"comment and message are not handlers", "// .post('https://api.squadcast.com/c')\nstream|alert().message('.post(\\'x\\')')",
			nil},
		{"httpPost node is not an alert handler", `stream|httpPost('https://api.squadcast.com/r')`, nil},
		{"unterminated", `stream|alert().post('https://api.squadcast.com`, []tickPost{{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tickPosts(tt.script))
		})
	}
}

func TestDoctorSquadcastURL(t *testing.T) {
	extra := []string{"squadcast.invalid", ".example.test"}
	tests := []struct {
		url  string
		want bool
	}{
		{"https://api.squadcast.com/v1/incidents/kapacitor/KEY", true},
		{"https://API.EU.Squadcast.com./v2/incidents/api/KEY", true},
		{"http://api.squadcast.com:443/x", true},
		{"https://other.squadcast.com/x", true},
		{"https://squadcast.com/x", true},
		{"https://user:pw@api.squadcast.com/x", true},
		{"https://api.squadcast.com.evil.test/x", false},
		{"https://notsquadcast.com/x", false},
		{"https://evil.test/api.squadcast.com/x", false},
		{"https://evil.test/?u=https://api.squadcast.com", false},
		{"api.squadcast.com/x", false},
		{"", false},
		{"http://squadcast.invalid/v1/incidents/kapacitor/K", true},
		{"http://a.squadcast.invalid/x", false},
		{"http://a.example.test/x", true},
		{"http://127.0.0.1:9095/relay/default", false},
		{"https://api.squadcast.com/v1/{{.TaskName}}", true},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, isSquadcastURL(tt.url, extra), tt.url)
	}
}

func TestDoctorRelayURL(t *testing.T) {
	tests := []struct {
		base, endpoint, want string
		ok                   bool
	}{
		{"http://127.0.0.1:9095", "default", "http://127.0.0.1:9095/relay/default", true},
		{"http://relay.local:9095/", "eu", "http://relay.local:9095/relay/eu", true},
		{"http://relay.local:9095/relay/eu", "default", "http://relay.local:9095/relay/eu", true},
		{"127.0.0.1:9095", "default", "", false},
		{"http://u:p@relay.local", "default", "", false},
		{"http://relay.local", "a/b", "", false},
	}
	for _, tt := range tests {
		got, err := relayURL(tt.base, tt.endpoint)
		assert.Equal(t, tt.ok, err == nil, "%s: %v", tt.base, err)
		assert.Equal(t, tt.want, got)
	}
}

// FuzzDoctorTickPosts feeds the TICKscript reader any text: it must end,
// never panic, and find a .post() URL only where a string was given.
func FuzzDoctorTickPosts(f *testing.F) {
	for _, s := range []string{
		"stream|alert().post('https://api.squadcast.com/v1/k').header('a', 'b')",
		"var u = '''x'''\nstream|alert().post(u).endpoint('e')",
		"stream|where(lambda: \"h\" =~ /a\\/b'/)|alert().post(\"x\")",
		"// .post('x')\n'unterminated", "'''", "=~", ".post(", "@squadcast().post()",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, script string) {
		for _, p := range tickPosts(script) {
			if p.URL != "" && p.Var == "" && !strings.Contains(script, p.URL) && !strings.Contains(script, `\`) {
				t.Errorf("URL %q is not in the script", p.URL)
			}
		}
	})
}
