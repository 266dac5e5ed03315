package mapstest

import (
	"math"
	"strconv"
	"sync"
	"unicode/utf8"
)

// jbuf builds JSON by appending to a byte slice. The emulator answers
// thousands of requests a second in benchmarks; writing the few fixed shapes
// by hand from pooled buffers keeps it from allocating per value the way
// encoding/json would.
type jbuf struct {
	b []byte
}

var jbufPool = sync.Pool{New: func() any { return &jbuf{b: make([]byte, 0, 4096)} }}

func getBuf() *jbuf {
	j := jbufPool.Get().(*jbuf)
	j.b = j.b[:0]
	return j
}

func putBuf(j *jbuf) {
	if cap(j.b) > 1<<20 { // let rare huge batch answers go to the collector
		return
	}
	jbufPool.Put(j)
}

func (j *jbuf) raw(s string) *jbuf { j.b = append(j.b, s...); return j }

const hexDigits = "0123456789abcdef"

// str writes s as a JSON string. Invalid UTF-8 becomes U+FFFD, as
// encoding/json does.
func (j *jbuf) str(s string) *jbuf {
	b := append(j.b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	j.b = append(b, '"')
	return j
}

func (j *jbuf) int(n int64) *jbuf { j.b = strconv.AppendInt(j.b, n, 10); return j }

// num writes f with exactly prec decimals: distances read 947.0, as in
// Azure Maps answers.
func (j *jbuf) num(f float64, prec int) *jbuf {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		f = 0
	}
	j.b = strconv.AppendFloat(j.b, f, 'f', prec, 64)
	return j
}

// coord writes a degree value rounded to 6 decimals (about 0.1 m), without
// trailing zeros.
func (j *jbuf) coord(f float64) *jbuf {
	j.b = strconv.AppendFloat(j.b, math.Round(f*1e6)/1e6, 'f', -1, 64)
	return j
}

// lonLat writes a GeoJSON position: [longitude, latitude].
func (j *jbuf) lonLat(lon, lat float64) *jbuf {
	j.b = append(j.b, '[')
	j.coord(lon)
	j.b = append(j.b, ',')
	j.coord(lat)
	j.b = append(j.b, ']')
	return j
}

// errorBody returns {"error":{"code":...,"message":...}}, the error shape of
// Azure Maps.
func errorBody(code, message string) []byte {
	j := &jbuf{b: make([]byte, 0, 48+len(code)+len(message))}
	j.raw(`{"error":{"code":`).str(code).raw(`,"message":`).str(message).raw(`}}`)
	return j.b
}
