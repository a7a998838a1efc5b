package outbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// recordVersion is the version of the record encoding this package writes
// (it reads 1 too).
const recordVersion = 2

// Levels are the alert levels a record may have, as Kapacitor spells them.
var Levels = [...]string{"OK", "INFO", "WARNING", "CRITICAL"}

// Record is an event as stored. The URL is a secret: it is stored so that
// a task's inline URL survives restarts, and is never shown.
type Record struct {
	Version int `json:"v"`
	// Endpoint is the endpoint's name as logged ("default", "inline:host").
	Endpoint string `json:"endpoint"`
	// Settings names the configured endpoint whose timeout and rate limit
	// apply, "" for none.
	Settings string `json:"settings,omitempty"`
	URL      string `json:"url"`
	Format   string `json:"format"`
	Incident string `json:"incident"`
	// Level is one of Levels.
	Level    string    `json:"level"`
	Task     string    `json:"task,omitempty"`
	Created  time.Time `json:"created"`
	Attempts int       `json:"attempts"`
	// LastError is the redacted error of the last failed attempt.
	LastError   string    `json:"last_error,omitempty"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	// Source says where the event came from: "udf" for an @squadcast()
	// node, "relay" for Kapacitor's .post() through the relay; empty in
	// records written before the relay (all of them from "udf").
	Source string `json:"source,omitempty"`
	// DeadReason and DeadAt are set on dead letters.
	DeadReason string    `json:"dead_reason,omitempty"`
	DeadAt     time.Time `json:"dead_at,omitzero"`
	// Body is the rendered payload, sent as is. Version 2 stores it as
	// JSON text in Payload (a third smaller than base64, so more records
	// per page of the file), less the newline that ends a rendered body
	// (PayloadNewline says it was there); a body that would not read back
	// byte for byte that way goes in base64 in Base64Body, as version 1
	// stored every body.
	Body           []byte          `json:"-"`
	Payload        json.RawMessage `json:"payload,omitempty"`
	PayloadNewline bool            `json:"payload_nl,omitempty"`
	Base64Body     []byte          `json:"body,omitempty"`
}

// Encode returns the record as stored.
func (r *Record) Encode() ([]byte, error) {
	stored := *r
	stored.Version = recordVersion
	text, newline := bytes.CutSuffix(r.Body, []byte("\n"))
	if isCompact(text) {
		stored.Payload, stored.PayloadNewline = text, newline
	} else {
		stored.Base64Body = r.Body
	}
	b, err := json.Marshal(&stored)
	if err != nil {
		return nil, fmt.Errorf("encode outbox record: %w", err)
	}
	return b, nil
}

// isCompact reports whether the JSON text b is as json.Marshal writes
// json.RawMessage (compacted, with <, > and & escaped): only then is it
// read back byte for byte, as the body must be.
func isCompact(b []byte) bool {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil || !bytes.Equal(buf.Bytes(), b) {
		return false
	}
	return bytes.IndexAny(b, "<>&\u2028\u2029") < 0
}

// Decode decodes and checks a stored record (not with the DB's Check).
// Its errors never contain the record's URL.
func Decode(b []byte) (*Record, error) {
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		// Syntax and type errors name a character or a field, never a value.
		return nil, fmt.Errorf("not a valid record: %w", err)
	}
	r.Body = r.Base64Body
	if len(r.Payload) > 0 {
		r.Body = r.Payload
		if r.PayloadNewline {
			r.Body = append(r.Body, '\n')
		}
	}
	r.Payload, r.PayloadNewline, r.Base64Body = nil, false, nil
	level, ok := parseLevel(r.Level)
	switch {
	case !ok:
		return nil, fmt.Errorf("not a valid record: unknown alert level %q (want OK, INFO, WARNING or CRITICAL)", r.Level)
	case r.Version != 1 && r.Version != recordVersion:
		return nil, fmt.Errorf("record version %d is not supported (want %d)", r.Version, recordVersion)
	case r.Endpoint == "":
		return nil, errors.New("endpoint is empty")
	case len(r.Body) == 0:
		return nil, errors.New("body is empty")
	case r.Created.IsZero():
		return nil, errors.New("created time is missing")
	case r.Attempts < 0:
		return nil, fmt.Errorf("attempts %d is negative", r.Attempts)
	}
	r.Level = level
	return &r, nil
}

// parseLevel returns a level's name as in Levels, matching it
// case-insensitively.
func parseLevel(s string) (string, bool) {
	for _, l := range Levels {
		if strings.EqualFold(s, l) {
			return l, true
		}
	}
	return "", false
}

// decode decodes a record and applies the DB's Check.
func (d *DB) decode(b []byte) (*Record, error) {
	r, err := Decode(b)
	if err != nil {
		return nil, err
	}
	if d.check != nil {
		if err := d.check(r); err != nil {
			return nil, err
		}
	}
	return r, nil
}
