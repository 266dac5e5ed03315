package jobs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"mapsworker/jobs/maps"
	"mapsworker/worker"
)

// Codes of invalid requests; the package comment lists what each means.
const (
	codeTooLarge      = "TooLarge"
	codeNotUTF8       = "NotUTF8"
	codeTooDeep       = "TooDeep"
	codeInvalidJSON   = "InvalidJSON"
	codeInvalidID     = "InvalidID"
	codeMissingField  = "MissingField"
	codeUnknownKind   = "UnknownKind"
	codeWrongType     = "WrongType"
	codeOutOfRange    = "OutOfRange"
	codeTooLong       = "TooLong"
	codeInvalidValue  = "InvalidValue"
	codeConflicting   = "ConflictingParameters"
	codeTooFewPoints  = "TooFewWaypoints"
	codeTooManyPoints = "TooManyWaypoints"
)

// Limits of a request.
const (
	maxDepth           = 32   // nesting; a request needs 3
	maxTextLen         = 2048 // characters; Azure Maps' limit for a query
	maxTop             = 20
	minWaypoints       = 2
	maxWaypoints       = 25  // driving and walking
	maxTruckWaypoints  = 150 // truck
	maxQuotedValueSize = 64  // bytes of a user's value echoed in a message
)

// fields are the members of a request object. Names match exactly: the
// contract spells them one way, and encoding/json's case-insensitive matching
// would let "ID" and "id" in one message fight over the name of the result.
type fields map[string]json.RawMessage

// get returns the member name, treating null as absent, as producers that
// serialize every property of a class write null for the ones not set.
func (f fields) get(name string) (json.RawMessage, bool) {
	raw, ok := f[name]
	if !ok || string(raw) == "null" {
		return nil, false
	}
	return raw, true
}

// parseObject checks the body's size, encoding and nesting, then parses it
// as exactly one JSON object.
func parseObject(body []byte, maxBody int) (fields, error) {
	if len(body) > maxBody {
		return nil, worker.Invalidf(codeTooLarge, "request is %d bytes, more than the limit of %d", len(body), maxBody)
	}
	if !utf8.Valid(body) {
		return nil, worker.Invalidf(codeNotUTF8, "request is not valid UTF-8")
	}
	// encoding/json only stops at 10000 levels; no request needs more
	// than three, and a shallow limit bounds the work a hostile body costs.
	if depth := nesting(body); depth > maxDepth {
		return nil, worker.Invalidf(codeTooDeep, "request nests more than %d levels deep", maxDepth)
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, worker.Invalidf(codeInvalidJSON, "request is empty")
	}
	if trimmed[0] != '{' {
		if json.Valid(body) {
			return nil, worker.Invalidf(codeInvalidJSON, "request must be a JSON object, not %s", describeJSON(trimmed))
		}
		return nil, invalidJSON(body, json.Unmarshal(body, new(any)))
	}

	dec := json.NewDecoder(bytes.NewReader(body))
	var f fields
	if err := dec.Decode(&f); err != nil {
		return nil, invalidJSON(body, err)
	}
	// Decode reads one value; anything after it but white space is an
	// error, not a second request to ignore.
	if _, err := dec.Token(); err != io.EOF {
		return nil, worker.Invalidf(codeInvalidJSON, "request has data after the JSON object, at byte %d", dec.InputOffset())
	}
	return f, nil
}

// invalidJSON describes a syntax error by its position, not by the input.
func invalidJSON(body []byte, err error) error {
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &syn):
		return worker.Invalidf(codeInvalidJSON, "request is not valid JSON: %v (at byte %d)", syn, syn.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return worker.Invalidf(codeInvalidJSON, "request is not valid JSON: it ends after %d bytes, in the middle of a value", len(body))
	default:
		return worker.Invalidf(codeInvalidJSON, "request is not valid JSON: %v", err)
	}
}

// nesting returns the deepest nesting of arrays and objects in a JSON text,
// without parsing it. It skips strings, whose brackets are not structure;
// bytes of multi-byte UTF-8 sequences are all >= 0x80 and so never look like
// a quote, a backslash or a bracket.
func nesting(b []byte) int {
	depth, deepest := 0, 0
	inString, escaped := false, false
	for _, c := range b {
		switch {
		case inString && escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case inString && c == '"':
			inString = false
		case inString:
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}

// decodeID returns the request's id, or messageID when it has none. It does
// not check messageID: Decode decides what an unusable one means.
func decodeID(f fields, messageID string) (string, error) {
	raw, ok := f.get("id")
	if !ok {
		if !ValidID(messageID) {
			return "", worker.Invalidf(codeInvalidID, "request has no id, and the message id %s cannot name a result: an id is 1-128 of [A-Za-z0-9._-], not starting with '.'", quote(messageID))
		}
		return messageID, nil
	}
	id, err := decodeString("id", raw)
	if err != nil {
		return "", err
	}
	if !ValidID(id) {
		return "", worker.Invalidf(codeInvalidID, "id %s is not 1-128 of [A-Za-z0-9._-] not starting with '.'", quote(id))
	}
	return id, nil
}

// validDateTime reports whether s is an RFC 3339 date-time. Like Azure Maps,
// which assumes UTC then, it also takes one without a time zone offset.
func validDateTime(s string) bool {
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05"} {
		if _, err := time.Parse(layout, s); err == nil {
			return true
		}
	}
	return false
}

// optionalText returns the string member name, trimmed, or "" if it is
// absent, null or blank.
func optionalText(f fields, name string) (string, error) {
	raw, ok := f.get(name)
	if !ok {
		return "", nil
	}
	s, err := decodeString(name, raw)
	if err != nil {
		return "", err
	}
	s = strings.TrimSpace(s)
	if n := utf8.RuneCountInString(s); n > maxTextLen {
		return "", worker.Invalidf(codeTooLong, "%s is %d characters long, more than %d", name, n, maxTextLen)
	}
	return s, nil
}

func decodeString(path string, raw json.RawMessage) (string, error) {
	if raw[0] != '"' {
		return "", wrongType(path, "a string", raw)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", worker.Invalidf(codeWrongType, "%s: %v", path, err)
	}
	return s, nil
}

// decodeNumber parses a JSON number itself rather than through
// encoding/json, whose error for 1e999 ("cannot unmarshal number into a
// value of type float64") does not say what is wrong.
func decodeNumber(path string, raw json.RawMessage) (float64, error) {
	if c := raw[0]; c != '-' && (c < '0' || c > '9') {
		return 0, wrongType(path, "a number", raw)
	}
	v, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		// raw is a valid JSON number, so the only failure is a value too
		// large for a float64 (ParseFloat rounds tiny ones to 0).
		return 0, worker.Invalidf(codeOutOfRange, "%s: %s is too large for a 64-bit float", path, quoteRaw(raw))
	}
	return v, nil
}

func decodeInt(path string, raw json.RawMessage, lo, hi int) (int, error) {
	v, err := decodeNumber(path, raw)
	if err != nil {
		return 0, err
	}
	if v != math.Trunc(v) {
		return 0, worker.Invalidf(codeWrongType, "%s must be a whole number, not %s", path, quoteRaw(raw))
	}
	if v < float64(lo) || v > float64(hi) {
		return 0, worker.Invalidf(codeOutOfRange, "%s: %s is out of range [%d, %d]", path, quoteRaw(raw), lo, hi)
	}
	return int(v), nil
}

// decodeDegrees decodes a latitude (limit 90) or longitude (limit 180).
func decodeDegrees(path string, raw json.RawMessage, limit float64) (float64, error) {
	v, err := decodeNumber(path, raw)
	if err != nil {
		return 0, err
	}
	if v < -limit || v > limit {
		return 0, worker.Invalidf(codeOutOfRange, "%s: %s is out of range [%g, %g]", path, quoteRaw(raw), -limit, limit)
	}
	return v, nil
}

// decodePosition decodes {"lat": …, "lon": …}.
func decodePosition(path string, raw json.RawMessage) (maps.Position, error) {
	if raw[0] != '{' {
		return maps.Position{}, wrongType(path, `an object {"lat": …, "lon": …}`, raw)
	}
	var f fields
	if err := json.Unmarshal(raw, &f); err != nil {
		return maps.Position{}, worker.Invalidf(codeWrongType, "%s: %v", path, err)
	}
	var p maps.Position
	for _, c := range []struct {
		name  string
		limit float64
		v     *float64
	}{{"lat", 90, &p.Lat}, {"lon", 180, &p.Lon}} {
		raw, ok := f.get(c.name)
		if !ok {
			return maps.Position{}, worker.Invalidf(codeMissingField, "%s.%s is required", path, c.name)
		}
		v, err := decodeDegrees(path+"."+c.name, raw, c.limit)
		if err != nil {
			return maps.Position{}, err
		}
		*c.v = v
	}
	return p, nil
}

// decodeBBox decodes [west, south, east, north]. West may exceed east: that
// box crosses the antimeridian.
func decodeBBox(path string, raw json.RawMessage) ([]float64, error) {
	items, err := decodeArray(path, "an array [west, south, east, north]", raw)
	if err != nil {
		return nil, err
	}
	if len(items) != 4 {
		return nil, worker.Invalidf(codeInvalidValue, "%s must be 4 numbers [west, south, east, north], not %d", path, len(items))
	}
	box := make([]float64, 4)
	limits := []float64{180, 90, 180, 90}
	for i, item := range items {
		v, err := decodeDegrees(fmt.Sprintf("%s[%d]", path, i), item, limits[i])
		if err != nil {
			return nil, err
		}
		box[i] = v
	}
	if box[1] >= box[3] {
		return nil, worker.Invalidf(codeInvalidValue, "%s: south (%g) must be less than north (%g)", path, box[1], box[3])
	}
	return box, nil
}

// decodeArray decodes a JSON array into its items, unread; want describes
// the array in the error of anything else.
func decodeArray(path, want string, raw json.RawMessage) ([]json.RawMessage, error) {
	if raw[0] != '[' {
		return nil, wrongType(path, want, raw)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, worker.Invalidf(codeWrongType, "%s: %v", path, err)
	}
	return items, nil
}

func wrongType(path, want string, raw json.RawMessage) error {
	return worker.Invalidf(codeWrongType, "%s must be %s, not %s", path, want, describeJSON(raw))
}

// describeJSON names the type of the JSON value that raw starts with.
func describeJSON(raw []byte) string {
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

// quote quotes a user's value for a message, cut to a few dozen bytes:
// messages end up in results, poison envelopes and logs, and must not
// carry a request's whole payload.
func quote(s string) string {
	if len(s) <= maxQuotedValueSize {
		return strconv.Quote(s)
	}
	cut := maxQuotedValueSize
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "…"
}

// quoteRaw is quote for a JSON number, left unquoted.
func quoteRaw(raw json.RawMessage) string {
	if len(raw) <= maxQuotedValueSize {
		return string(raw)
	}
	return string(raw[:maxQuotedValueSize]) + "…"
}

// parseLatLon parses a command-line position, "lat,lon".
func parseLatLon(s string) (map[string]float64, error) {
	a, b, ok := strings.Cut(s, ",")
	lat, err1 := strconv.ParseFloat(strings.TrimSpace(a), 64)
	lon, err2 := strconv.ParseFloat(strings.TrimSpace(b), 64)
	if !ok || err1 != nil || err2 != nil {
		return nil, fmt.Errorf("%q is not lat,lon", s)
	}
	return map[string]float64{"lat": lat, "lon": lon}, nil
}

// decodeEnumList decodes a non-empty array of distinct strings, each one of
// allowed (matched without regard to case, returned as allowed spells it).
func decodeEnumList(path string, raw json.RawMessage, allowed []string) ([]string, error) {
	items, err := decodeStrings(path, raw)
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, worker.Invalidf(codeInvalidValue, "%s is empty; leave it out for the default", path)
	}
	out := make([]string, 0, len(items))
	for i, s := range items {
		j := slices.IndexFunc(allowed, func(a string) bool { return strings.EqualFold(a, s) })
		if j < 0 {
			return nil, worker.Invalidf(codeInvalidValue, "%s[%d] %s is not one of %s", path, i, quote(s), strings.Join(allowed, ", "))
		}
		if slices.Contains(out, allowed[j]) {
			return nil, worker.Invalidf(codeInvalidValue, "%s names %s twice", path, allowed[j])
		}
		out = append(out, allowed[j])
	}
	return out, nil
}

// decodeView decodes the optional "view": "Auto" or an ISO 3166-1 alpha-2
// code, the views Azure Maps draws disputed borders for.
func decodeView(f fields) (string, error) {
	v, err := optionalText(f, "view")
	if err != nil || v == "" {
		return v, err
	}
	if strings.EqualFold(v, "Auto") {
		return "Auto", nil
	}
	if len(v) != 2 || !isASCIILetter(v[0]) || !isASCIILetter(v[1]) {
		return "", worker.Invalidf(codeInvalidValue, "view %s is not Auto or a two-letter ISO 3166-1 code such as US or IN", quote(v))
	}
	return strings.ToUpper(v), nil
}

func isASCIILetter(c byte) bool { return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' }

// decodeStrings decodes an array of strings.
func decodeStrings(name string, raw json.RawMessage) ([]string, error) {
	items, err := decodeArray(name, "an array of strings", raw)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(items))
	for i, item := range items {
		s, err := decodeString(fmt.Sprintf("%s[%d]", name, i), item)
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}
