package squadcast

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"sync"
	"unicode/utf8"

	"github.com/kapacitor-squadcast/kapacitor-squadcast/udf"
)

// MaxBody is the size every body is kept under, in both formats. Squadcast
// rejects bodies over 30 KB with 413, which would make the event a dead
// letter; this leaves room to spare. A body over it is shrunk step by step,
// each step only as far as needed, each cut marked:
//
//  1. the tags (and, in the kapacitor format, the fields of data.series)
//     are bounded to MaxTagsSize: string values cut to MaxValueSize, then
//     entries left out in key order, a TruncatedKey tag saying how many;
//  2. the details (the description) are cut, ending with TruncationMarker;
//  3. the message is cut;
//  4. the tags and fields are bounded further, down to none.
//
// The alert id is never cut: an event whose id alone does not fit is an
// error (it is logged and not sent).
const MaxBody = 28 * 1024

// MaxTagsSize bounds the encoded tags and fields of a body over MaxBody
// before its details are cut, so that a huge tag set cannot take the
// details' room.
const MaxTagsSize = 8 * 1024

// MaxValueSize is the longest tag or string field value kept whole when a
// body over MaxBody has its tags and fields bounded.
const MaxValueSize = 1024

// TruncationMarker ends a description, message or tag value that was cut to
// fit MaxBody.
const TruncationMarker = "… [truncated]"

// TruncatedKey is the tag added when tags or fields were left out to fit
// MaxBody; its value says how many, e.g. "12 of 500 tags left out".
const TruncatedKey = "truncated"

// Render renders ev in the given format (FormatKapacitor or
// FormatIncidentWebhook), as a task without .tag() or .priority() would
// send it: an Incident Webhook body has no priority.
func Render(format string, ev udf.Event) ([]byte, error) {
	return render(format, ev, &incidentOptions{})
}

// render renders ev in the given format, an Incident Webhook body with a
// task's tags and priorities.
func render(format string, ev udf.Event, inc *incidentOptions) ([]byte, error) {
	switch format {
	case FormatKapacitor:
		return RenderKapacitor(ev)
	case FormatIncidentWebhook:
		return renderIncidentWebhook(ev, inc)
	default:
		return nil, fmt.Errorf("unknown format %q (want %q or %q)", format, FormatKapacitor, FormatIncidentWebhook)
	}
}

// encodeBufs are the buffers encodeJSON encodes into.
var encodeBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// encodeJSON encodes v as encoding/json's Encoder does (HTML escaping,
// trailing newline), as Kapacitor does. It encodes into a pooled buffer
// and returns a copy of just the body's size: a body stays in memory
// until its event is delivered, and a buffer grown while encoding has
// room to spare (a fifth of a typical body).
func encodeJSON(v interface{}, what string) ([]byte, error) {
	buf := encodeBufs.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 2*MaxBody {
			encodeBufs.Put(buf)
		}
	}()
	buf.Reset()
	if err := json.NewEncoder(buf).Encode(v); err != nil {
		return nil, fmt.Errorf("encode %s json: %w", what, err)
	}
	return bytes.Clone(buf.Bytes()), nil
}

// shrinkSteps are the parts of a body shrink may cut.
type shrinkSteps struct {
	// fitTags bounds the tags (and fields) to a budget in encoded bytes.
	fitTags func(budget int)
	// tagsLen returns their encoded size now.
	tagsLen          func() int
	details, message *string
	id               string
}

// shrink cuts v's body down to MaxBody: see MaxBody.
func shrink(v interface{}, what string, s shrinkSteps) ([]byte, error) {
	var body []byte
	var err error
	// over encodes v and returns how far its body is over MaxBody.
	over := func() int {
		if body, err = encodeJSON(v, what); err != nil {
			return 0
		}
		return len(body) - MaxBody
	}
	if s.tagsLen() > MaxTagsSize {
		s.fitTags(MaxTagsSize)
	}
	n := over()
	if n <= 0 {
		return body, err
	}
	*s.details = truncateJSONString(*s.details, n)
	if n = over(); n <= 0 {
		return body, err
	}
	*s.message = truncateJSONString(*s.message, n)
	if n = over(); n <= 0 {
		return body, err
	}
	// Bound the tags further; should the estimate fall short, halve the
	// budget until the body fits or no tag is left.
	for budget := s.tagsLen() - n; ; budget = min(budget-n, budget/2) {
		s.fitTags(max(budget, 0))
		if n = over(); n <= 0 {
			return body, err
		}
		if budget <= 0 {
			break
		}
	}
	return nil, fmt.Errorf("encode %s json: the body is %d bytes with its details, message and tags cut, over the limit of %d: its alert id (%d bytes) is too long, and is never cut",
		what, len(body), MaxBody, len(s.id))
}

// fitEntries returns the keys (in the order given) and values that fit a
// budget in encoded bytes, each entry's value and cost given by entry, and
// the bytes they use. When some are left out, it keeps room for a
// TruncatedKey tag. An entry whose key is longer than MaxValueSize is left
// out.
func fitEntries(keys []string, entry func(string) (interface{}, int), budget int) ([]string, []interface{}, int) {
	total := 0
	costs := make([]int, len(keys))
	vals := make([]interface{}, len(keys))
	for i, k := range keys {
		vals[i], costs[i] = entry(k)
		total += costs[i]
	}
	if total > budget {
		budget -= 64 // the TruncatedKey tag
	}
	var outK []string
	var outV []interface{}
	used := 0
	for i, k := range keys {
		if len(k) > MaxValueSize || used+costs[i] > budget {
			continue
		}
		used += costs[i]
		outK = append(outK, k)
		outV = append(outV, vals[i])
	}
	return outK, outV, used
}

// cutValue cuts s to at most about MaxValueSize encoded bytes, marked.
func cutValue(s string) string {
	if over := jsonStringLen(s) - MaxValueSize; over > 0 {
		return truncateJSONString(s, over)
	}
	return s
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// jsonSafeValue replaces the float values encoding/json refuses (NaN, ±Inf) by nil.
func jsonSafeValue(v interface{}) interface{} {
	switch f := v.(type) {
	case float64:
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil
		}
	case float32:
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			return nil
		}
	}
	return v
}

// asciiJSONLen[b] is the length encoding/json (HTML escaping on) gives the
// ASCII byte b inside a string. It is measured rather than copied, so that it
// follows the Go release in use.
var asciiJSONLen = func() (t [utf8.RuneSelf]uint8) {
	for b := range t {
		m, _ := json.Marshal(string(rune(b)))
		t[b] = uint8(len(m) - 2)
	}
	return t
}()

// jsonRuneLen returns the size of the rune starting s[i] and the number of
// bytes encoding/json writes for it inside a string.
func jsonRuneLen(s string, i int) (size, encoded int) {
	if b := s[i]; b < utf8.RuneSelf {
		return 1, int(asciiJSONLen[b])
	}
	r, size := utf8.DecodeRuneInString(s[i:])
	switch {
	case r == utf8.RuneError && size == 1:
		return 1, len(`\ufffd`)
	case r == '\u2028' || r == '\u2029':
		return size, len(`\u2028`)
	}
	return size, size
}

// jsonStringLen is the encoded length of s inside a JSON string, quotes excluded.
func jsonStringLen(s string) int {
	n := 0
	for i := 0; i < len(s); {
		size, enc := jsonRuneLen(s, i)
		n += enc
		i += size
	}
	return n
}

// truncateJSONString shortens s so that its JSON encoding is at least
// excess bytes shorter, cutting at a rune boundary and appending
// TruncationMarker. When even the marker alone does not make up for it, the
// result is the marker alone, and the caller must shorten something else.
func truncateJSONString(s string, excess int) string {
	budget := jsonStringLen(s) - excess - jsonStringLen(TruncationMarker)
	if budget <= 0 {
		return TruncationMarker
	}
	n, cut := 0, 0
	for cut < len(s) {
		size, enc := jsonRuneLen(s, cut)
		if n+enc > budget {
			break
		}
		n += enc
		cut += size
	}
	return s[:cut] + TruncationMarker
}
