package udf

import (
	"testing"

	"github.com/influxdata/kapacitor/udf/agent"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

func marshalPointRequest(t testing.TB, p *agent.Point) []byte {
	b, err := proto.Marshal(&agent.Request{Message: &agent.Request_Point{Point: p}})
	require.NoError(t, err)
	return b
}

// checkDecodedLikeProto fails unless the decoder's point equals what
// proto.Unmarshal makes of frame b, absent maps and slices nil in both.
func checkDecodedLikeProto(t testing.TB, b []byte, got *agent.Point) {
	var req agent.Request
	require.NoError(t, proto.Unmarshal(b, &req), "the decoder took a frame proto.Unmarshal rejects")
	want := req.GetPoint()
	require.NotNil(t, want)
	assert.True(t, proto.Equal(want, got), "decoded %v, proto.Unmarshal %v", got, want)
	assert.Equal(t, want.Dimensions == nil, got.Dimensions == nil, "dimensions nil")
	assert.Equal(t, want.Tags == nil, got.Tags == nil, "tags nil")
	assert.Equal(t, want.FieldsDouble == nil, got.FieldsDouble == nil, "fieldsDouble nil")
	assert.Equal(t, want.FieldsInt == nil, got.FieldsInt == nil, "fieldsInt nil")
	assert.Equal(t, want.FieldsString == nil, got.FieldsString == nil, "fieldsString nil")
	assert.Equal(t, want.FieldsBool == nil, got.FieldsBool == nil, "fieldsBool nil")
}

// entryBytes encodes a map entry field by hand, to make entries that
// proto.Marshal never writes (missing key or value, repeated key).
func entryBytes(field protowire.Number, parts ...[]byte) []byte {
	var e []byte
	for _, p := range parts {
		e = append(e, p...)
	}
	b := protowire.AppendTag(nil, field, protowire.BytesType)
	return protowire.AppendBytes(b, e)
}

func strPart(num protowire.Number, s string) []byte {
	return protowire.AppendString(protowire.AppendTag(nil, num, protowire.BytesType), s)
}

func requestOf(point []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, requestPoint, protowire.BytesType), point)
}

func TestPointDecoderMatchesProto(t *testing.T) {
	full := &agent.Point{
		Time: 1700000000123456789, Name: "cpu", Database: "telegraf", RetentionPolicy: "autogen",
		Group: "host=a,cpu=cpu0", Dimensions: []string{"host", "cpu"}, ByName: true,
		Tags:         map[string]string{"host": "a", "cpu": "cpu0", "ünï": "cödé", "": "empty key"},
		FieldsDouble: map[string]float64{"usage_idle": 5.5, "neg": -1e300, "zero": 0},
		FieldsInt:    map[string]int64{"load": 3, "neg": -42, "big": 1 << 62},
		FieldsString: map[string]string{"status": "down", "empty": ""},
		FieldsBool:   map[string]bool{"up": true, "down": false},
	}
	for _, tc := range []struct {
		name  string
		frame []byte
	}{
		{"full point", marshalPointRequest(t, full)},
		{"empty point", marshalPointRequest(t, &agent.Point{})},
		{"no tags, one field", marshalPointRequest(t, &agent.Point{Name: "m", FieldsInt: map[string]int64{"n": 1}})},
		{"negative time", marshalPointRequest(t, &agent.Point{Time: -5})},
		{"entry without value", requestOf(entryBytes(pointTags, strPart(mapKey, "k")))},
		{"entry without key", requestOf(entryBytes(pointFieldsString, strPart(mapValue, "v")))},
		{"empty entries", requestOf(append(append(entryBytes(pointFieldsDouble), entryBytes(pointFieldsInt)...), entryBytes(pointFieldsBool)...))},
		{"repeated key in one entry", requestOf(entryBytes(pointTags, strPart(mapKey, "a"), strPart(mapKey, "b"), strPart(mapValue, "v")))},
		{"repeated map key", requestOf(append(entryBytes(pointTags, strPart(mapKey, "a"), strPart(mapValue, "1")), entryBytes(pointTags, strPart(mapKey, "a"), strPart(mapValue, "2"))...))},
		{"repeated scalar field", requestOf(append(strPart(pointName, "first"), strPart(pointName, "second")...))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d pointDecoder
			p, ok := d.decode(tc.frame)
			require.True(t, ok, "the decoder refused the frame")
			checkDecodedLikeProto(t, tc.frame, p)
		})
	}
}

// TestPointDecoderRefuses checks that frames the decoder does not fully
// understand are left to proto.Unmarshal.
func TestPointDecoderRefuses(t *testing.T) {
	point := marshalPointRequest(t, &agent.Point{Name: "cpu"})
	keepalive, err := proto.Marshal(&agent.Request{Message: &agent.Request_Keepalive{Keepalive: &agent.KeepaliveRequest{Time: 1}}})
	require.NoError(t, err)
	unknown := protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 1)
	for _, tc := range []struct {
		name  string
		frame []byte
	}{
		{"keepalive", keepalive},
		{"empty frame", nil},
		{"two points", append(append([]byte{}, point...), point...)},
		{"trailing field", append(append([]byte{}, point...), unknown...)},
		{"unknown point field", requestOf(unknown)},
		{"wrong wire type", requestOf(protowire.AppendVarint(protowire.AppendTag(nil, pointName, protowire.VarintType), 1))},
		{"invalid UTF-8 name", requestOf(strPart(pointName, "\xff"))},
		{"invalid UTF-8 tag value", requestOf(entryBytes(pointTags, strPart(mapKey, "k"), strPart(mapValue, "\xc3")))},
		{"invalid UTF-8 field key", requestOf(entryBytes(pointFieldsInt, strPart(mapKey, "\xff")))},
		{"unknown entry field", requestOf(entryBytes(pointTags, strPart(3, "x")))},
		{"truncated", point[:len(point)-1]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d pointDecoder
			_, ok := d.decode(tc.frame)
			assert.False(t, ok)
		})
	}
}

// TestPointDecoderReuse checks that the decoder reuses its point until
// released, and never touches a released point's maps again.
func TestPointDecoderReuse(t *testing.T) {
	var d pointDecoder
	a := marshalPointRequest(t, &agent.Point{Group: "host=a", Tags: map[string]string{"host": "a"}, FieldsDouble: map[string]float64{"v": 1}})
	b := marshalPointRequest(t, &agent.Point{Group: "host=b", Tags: map[string]string{"host": "b"}, FieldsDouble: map[string]float64{"w": 2}})

	p1, ok := d.decode(a)
	require.True(t, ok)
	p2, ok := d.decode(b)
	require.True(t, ok)
	assert.Same(t, p1, p2, "the point is reused")
	assert.Equal(t, map[string]string{"host": "b"}, p2.Tags)
	assert.Equal(t, map[string]float64{"w": 2}, p2.FieldsDouble, "no field of the previous point is left")

	kept := p2
	keptTags := p2.Tags
	d.release()
	p3, ok := d.decode(a)
	require.True(t, ok)
	assert.NotSame(t, kept, p3)
	assert.Equal(t, "host=b", kept.Group)
	assert.Equal(t, map[string]string{"host": "b"}, keptTags, "a released point's maps stay as they were")
	assert.Equal(t, map[string]string{"host": "a"}, p3.Tags)
}

func TestPointDecoderInternBound(t *testing.T) {
	var d pointDecoder
	for i := range 3 * maxInterned {
		s := d.intern([]byte{byte(i), byte(i >> 8), byte(i >> 16)})
		assert.Equal(t, string([]byte{byte(i), byte(i >> 8), byte(i >> 16)}), s)
		assert.LessOrEqual(t, len(d.strs), maxInterned)
	}
}

// FuzzPointDecoder checks that whatever the decoder accepts, proto.Unmarshal
// accepts too and decodes to an equal point.
func FuzzPointDecoder(f *testing.F) {
	f.Add(marshalPointRequest(f, benchPoint(7, 5)))
	f.Add(marshalPointRequest(f, &agent.Point{FieldsBool: map[string]bool{"b": true}, FieldsString: map[string]string{"s": "x"}, FieldsInt: map[string]int64{"i": -1}}))
	f.Add(requestOf(entryBytes(pointTags, strPart(mapKey, "k"))))
	f.Fuzz(func(t *testing.T, frame []byte) {
		var d pointDecoder
		p, ok := d.decode(frame)
		if !ok {
			return
		}
		checkDecodedLikeProto(t, frame, p)
	})
}
