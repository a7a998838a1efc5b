package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/kapacitor/udf/agent"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		str  string
		bad  bool
	}{
		{in: "16MiB", want: 16 << 20, str: "16MiB"},
		{in: "512KiB", want: 512 << 10, str: "512KiB"},
		{in: "1GiB", want: 1 << 30, str: "1GiB"},
		{in: "1048576", want: 1 << 20, str: "1MiB"},
		{in: "100000B", want: 100000, str: "100000"},
		{in: "2MB", want: 2000000, str: "2000000"},
		{in: " 64 KiB ", want: 64 << 10, str: "64KiB"},
		{in: "lots", bad: true},
		{in: "-1MiB", bad: true},
		{in: "1.5MiB", bad: true},
		{in: "99999999999GiB", bad: true},
		{in: "", bad: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			var s byteSize
			err := s.Set(tc.in)
			if tc.bad {
				require.ErrorContains(t, err, "invalid size")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, int64(s))
			assert.Equal(t, tc.str, s.String())
		})
	}
}

// TestServeMaxFrameSize: --max-frame-size is checked, and a longer frame
// ends only its connection, with the reason logged, before anything is
// allocated for it.
func TestServeMaxFrameSize(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		size string
		code int
		want string
	}{
		{"1KiB", 1, "--max-frame-size must be between 64KiB and 1GiB, got 1KiB"},
		{"2GiB", 1, "--max-frame-size must be between 64KiB and 1GiB"},
		{"big", 2, `invalid size "big"`},
	} {
		t.Run(tc.size, func(t *testing.T) {
			var errb bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			assert.Equal(t, tc.code, runServe(ctx, []string{"--socket", filepath.Join(dir, "s"), "--data-dir", dir, "--max-frame-size", tc.size}, &errb))
			assert.Contains(t, errb.String(), tc.want)
		})
	}

	var help bytes.Buffer
	require.Equal(t, 0, runServe(context.Background(), []string{"--help"}, &help))
	assert.Contains(t, help.String(), "-max-frame-size size")
	assert.Contains(t, help.String(), "(default 16MiB)")

	d := startTestDaemon(t, "--url", "http://127.0.0.1:1/v1/incidents/kapacitor/KEY", "--max-frame-size", "64KiB")
	good, err := dialUDF(t, d.socket)
	require.NoError(t, err)
	res, err := good.init("good", strOpt("crit", `"v" > 90`))
	require.NoError(t, err)
	require.True(t, res.Success, res.Error)

	// A frame that claims 1 GiB: refused from its length prefix alone.
	bad, err := dialUDF(t, d.socket)
	require.NoError(t, err)
	var hdr [binary.MaxVarintLen64]byte
	_, err = bad.conn.Write(hdr[:binary.PutUvarint(hdr[:], 1<<30)])
	require.NoError(t, err)
	r, err := bad.recv()
	require.NoError(t, err)
	assert.Equal(t, "frame of 1073741824 bytes exceeds the limit of 65536 bytes", r.GetError().GetError())
	require.Eventually(t, func() bool { return strings.Contains(d.logs.String(), "exceeds the limit of 65536 bytes") }, 10*time.Second, 10*time.Millisecond)
	assert.Contains(t, d.logs.String(), `"msg":"connection ended with an error"`)

	// A frame just under the limit is taken.
	big := &agent.Point{Name: "cpu", Group: "g", Tags: map[string]string{"pad": strings.Repeat("x", 60<<10)}, FieldsDouble: map[string]float64{"v": 1}}
	require.NoError(t, good.send(&agent.Request{Message: &agent.Request_Point{Point: big}}))
	_, errs, err := good.sync(1)
	require.NoError(t, err)
	assert.Empty(t, errs)
	assert.Equal(t, 0, d.stop())
}

// TestDaemonRejectsBadOptions: through the whole daemon (the options, then
// the endpoint resolution), every wrong value fails only its task, naming
// the option and the value; the daemon serves on.
func TestDaemonRejectsBadOptions(t *testing.T) {
	srv, count := recordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {})
	d := startTestDaemon(t, "--url", srv.URL+"/ok/v1/incidents/kapacitor/DEFAULTKEY0123")
	crit := strOpt("crit", `"v" > 90`)
	tests := []struct {
		name string
		opts []*agent.Option
		want string
	}{
		{"unparsable expression", []*agent.Option{strOpt("crit", `"v" >`)}, `option .crit('"v" >'): parse error`},
		{"expression referencing nothing", []*agent.Option{strOpt("crit", `TRUE`)}, `option .crit('TRUE'): the expression references no field or tag`},
		{"template that does not parse", []*agent.Option{crit, strOpt("message", "{{ .ID ")}, `option .message('{{ .ID '): template parse error`},
		{"template that fails", []*agent.Option{crit, strOpt("details", "{{ .Fields.value.x }}")}, `option .details('{{ .Fields.value.x }}'): template error`},
		{"unknown endpoint", []*agent.Option{crit, strOpt("endpoint", "prod")}, `option .endpoint('prod'): unknown endpoint (configured: default)`},
		{"unknown format", []*agent.Option{crit, strOpt("format", "xml")}, `option .format('xml'): unknown format`},
		{"non-http url", []*agent.Option{crit, strOpt("url", "ftp://api.squadcast.com/v2/incidents/api/URLKEY0123456")}, `option .url: url has scheme "ftp" (want http or https)`},
		{"hostless url", []*agent.Option{crit, strOpt("url", "https:///v2/incidents/api/URLKEY0123456")}, `option .url: url has no host`},
		{"history(1)", []*agent.Option{crit, doubleOpt("flapping", 0.2, 0.5), intOpt("history", 1)}, `option .history(1): must be between 2 and 10000`},
		{"flapping low above high", []*agent.Option{crit, doubleOpt("flapping", 0.7, 0.3)}, `option .flapping(0.7, 0.3): the low threshold must not exceed the high one`},
		{"flapping outside 0..1", []*agent.Option{crit, doubleOpt("flapping", 10, 50)}, `option .flapping(10, 50): thresholds are fractions`},
		{"duplicate", []*agent.Option{crit, strOpt("crit", `"v" > 80`)}, `option .crit('"v" > 80'): given more than once`},
		{"duplicate url", []*agent.Option{crit, strOpt("url", "http://h/URLKEY0123456"), strOpt("url", "http://h/URLKEY0123456")}, `option .url('...'): given more than once`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := dialUDF(t, d.socket)
			require.NoError(t, err)
			res, err := k.init("bad", tt.opts...)
			require.NoError(t, err)
			assert.False(t, res.Success)
			assert.True(t, strings.HasPrefix(res.Error, tt.want), "error %q, want it to start with %q", res.Error, tt.want)
			assert.NotContains(t, res.Error, "URLKEY0123456")
			// Kapacitor stops the task; until then the connection answers.
			_, errs, err := k.sync(1)
			require.NoError(t, err)
			assert.Empty(t, errs)
		})
	}

	// The daemon serves on.
	k, err := dialUDF(t, d.socket)
	require.NoError(t, err)
	res, err := k.init("good", crit)
	require.NoError(t, err)
	require.True(t, res.Success, res.Error)
	require.NoError(t, k.point("a", 1, 95))
	pts, _, err := k.sync(2)
	require.NoError(t, err)
	require.Len(t, pts, 1)
	require.Eventually(t, func() bool { return count("/ok") == 1 }, 30*time.Second, 10*time.Millisecond)
	logs := d.logs.String()
	assert.Equal(t, len(tests), strings.Count(logs, `"msg":"task rejected: bad option"`))
	assert.NotContains(t, logs, "URLKEY0123456")
	assert.NotContains(t, logs, "DEFAULTKEY0123")
	assert.Equal(t, 0, d.stop())
}
