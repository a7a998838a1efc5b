package udf

import (
	"math"
	"unicode/utf8"

	"github.com/influxdata/kapacitor/udf/agent"
	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of udf.proto (kapacitor udf/agent) read by pointDecoder.
const (
	requestPoint = 17 // Request.point

	pointTime            = 1
	pointName            = 2
	pointDatabase        = 3
	pointRetentionPolicy = 4
	pointGroup           = 5
	pointDimensions      = 6
	pointTags            = 7
	pointFieldsDouble    = 8
	pointFieldsInt       = 9
	pointFieldsString    = 10
	pointByName          = 11
	pointFieldsBool      = 12

	mapKey   = 1
	mapValue = 2
)

// maxInterned bounds the strings a pointDecoder keeps for reuse: beyond it
// the table starts afresh, so a stream of ever new tag values (a million
// groups) costs allocations, never memory.
const maxInterned = 8192

// pointDecoder decodes Point requests, the bulk of Kapacitor's input,
// without allocating: the protobuf runtime decodes map fields through
// reflection, boxing every key and value, and allocates each string and
// map afresh (over 40 allocations for a telegraf cpu point). It reuses one
// Point, its maps and its dimensions slice, and interns strings (group
// keys, tag and field names and values repeat from point to point).
//
// It decodes only what it fully understands: a frame holding exactly one
// Request.point field, with no unknown field, no wire type but the
// expected ones and valid UTF-8 in every string. Anything else is left to
// proto.Unmarshal (ok false), which decodes it or fails as before; what it
// does decode equals proto.Unmarshal's result, fields absent from the frame
// included (a map or the dimensions without entries is nil).
//
// The decoded point is the decoder's until released: a caller that keeps
// the point, one of its maps or its dimensions beyond the next decode must
// call release first.
type pointDecoder struct {
	p    *agent.Point
	dims []string
	tags map[string]string
	fd   map[string]float64
	fi   map[string]int64
	fs   map[string]string
	fb   map[string]bool
	strs map[string]string
}

// release gives up the current point, its maps and dimensions: the next
// decode starts on new ones.
func (d *pointDecoder) release() {
	d.p, d.dims, d.tags, d.fd, d.fi, d.fs, d.fb = nil, nil, nil, nil, nil, nil, nil
}

func (d *pointDecoder) intern(b []byte) string {
	if s, ok := d.strs[string(b)]; ok {
		return s
	}
	if d.strs == nil || len(d.strs) >= maxInterned {
		d.strs = make(map[string]string, 256)
	}
	s := string(b)
	d.strs[s] = s
	return s
}

// decode decodes frame b, a Request, when it is a point the decoder
// handles; ok is false otherwise (see pointDecoder).
func (d *pointDecoder) decode(b []byte) (p *agent.Point, ok bool) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 || num != requestPoint || typ != protowire.BytesType {
		return nil, false
	}
	msg, m := protowire.ConsumeBytes(b[n:])
	if m < 0 || n+m != len(b) {
		return nil, false
	}
	if d.p == nil {
		d.p = new(agent.Point)
	}
	p = d.p
	*p = agent.Point{}
	d.dims = d.dims[:0]
	clear(d.tags)
	clear(d.fd)
	clear(d.fi)
	clear(d.fs)
	clear(d.fb)
	if !d.point(msg, p) {
		return nil, false
	}
	if len(d.dims) > 0 {
		p.Dimensions = d.dims
	}
	if len(d.tags) > 0 {
		p.Tags = d.tags
	}
	if len(d.fd) > 0 {
		p.FieldsDouble = d.fd
	}
	if len(d.fi) > 0 {
		p.FieldsInt = d.fi
	}
	if len(d.fs) > 0 {
		p.FieldsString = d.fs
	}
	if len(d.fb) > 0 {
		p.FieldsBool = d.fb
	}
	return p, true
}

func (d *pointDecoder) point(b []byte, p *agent.Point) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch {
		case typ == protowire.VarintType && (num == pointTime || num == pointByName):
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return false
			}
			b = b[n:]
			if num == pointTime {
				p.Time = int64(v)
			} else {
				p.ByName = v != 0
			}
		case typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return false
			}
			b = b[n:]
			if !d.bytesField(num, v, p) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// bytesField decodes a length-delimited field of Point.
func (d *pointDecoder) bytesField(num protowire.Number, v []byte, p *agent.Point) bool {
	switch num {
	case pointName, pointDatabase, pointRetentionPolicy, pointGroup, pointDimensions:
		return d.stringField(num, v, p)
	case pointTags, pointFieldsString:
		return d.stringEntry(num, v)
	case pointFieldsDouble:
		return d.doubleEntry(v)
	case pointFieldsInt, pointFieldsBool:
		return d.varintEntry(num, v)
	}
	return false
}

// stringField decodes a string field of Point, or one of its dimensions.
func (d *pointDecoder) stringField(num protowire.Number, v []byte, p *agent.Point) bool {
	if !utf8.Valid(v) {
		return false
	}
	s := d.intern(v)
	switch num {
	case pointName:
		p.Name = s
	case pointDatabase:
		p.Database = s
	case pointRetentionPolicy:
		p.RetentionPolicy = s
	case pointGroup:
		p.Group = s
	default:
		d.dims = append(d.dims, s)
	}
	return true
}

// stringEntry decodes an entry of Point.tags or Point.fieldsString.
func (d *pointDecoder) stringEntry(num protowire.Number, v []byte) bool {
	k, val, ok := d.entry(v, protowire.BytesType)
	if !ok {
		return false
	}
	var sv []byte // valid UTF-8: entry checked it
	if val != nil {
		sv, _ = protowire.ConsumeBytes(val)
	}
	if num == pointTags {
		if d.tags == nil {
			d.tags = make(map[string]string, 8)
		}
		d.tags[k] = d.intern(sv)
	} else {
		if d.fs == nil {
			d.fs = make(map[string]string, 4)
		}
		d.fs[k] = d.intern(sv)
	}
	return true
}

// doubleEntry decodes an entry of Point.fieldsDouble.
func (d *pointDecoder) doubleEntry(v []byte) bool {
	k, val, ok := d.entry(v, protowire.Fixed64Type)
	if !ok {
		return false
	}
	var f uint64
	if val != nil {
		var n int
		if f, n = protowire.ConsumeFixed64(val); n < 0 {
			return false
		}
	}
	if d.fd == nil {
		d.fd = make(map[string]float64, 8)
	}
	d.fd[k] = math.Float64frombits(f)
	return true
}

// varintEntry decodes an entry of Point.fieldsInt or Point.fieldsBool.
func (d *pointDecoder) varintEntry(num protowire.Number, v []byte) bool {
	k, val, ok := d.entry(v, protowire.VarintType)
	if !ok {
		return false
	}
	var x uint64
	if val != nil {
		var n int
		if x, n = protowire.ConsumeVarint(val); n < 0 {
			return false
		}
	}
	if num == pointFieldsInt {
		if d.fi == nil {
			d.fi = make(map[string]int64, 4)
		}
		d.fi[k] = int64(x)
	} else {
		if d.fb == nil {
			d.fb = make(map[string]bool, 4)
		}
		d.fb[k] = x != 0
	}
	return true
}

// entry decodes a map entry message: its string key (interned; "" when
// absent) and the encoded value of wire type want, without its tag (nil
// when absent). A repeated key or value counts once, the last one, as in
// proto.Unmarshal; every string occurrence must be valid UTF-8.
func (d *pointDecoder) entry(b []byte, want protowire.Type) (key string, val []byte, ok bool) {
	var kb []byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", nil, false
		}
		b = b[n:]
		switch {
		case num == mapKey && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return "", nil, false
			}
			if !utf8.Valid(v) { // every occurrence, as proto.Unmarshal checks
				return "", nil, false
			}
			kb, b = v, b[n:]
		case num == mapValue && typ == want:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return "", nil, false
			}
			if typ == protowire.BytesType {
				if v, _ := protowire.ConsumeBytes(b[:n]); !utf8.Valid(v) {
					return "", nil, false
				}
			}
			val, b = b[:n], b[n:]
		default:
			return "", nil, false
		}
	}
	return d.intern(kb), val, true
}
