package main

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// decodeYAML reads the YAML the deploy manifests are written in: documents
// separated by ---, block mappings and sequences by indentation (a sequence
// may sit at its key's indentation, as Kubernetes manifests write it),
// plain, single- and double-quoted scalars, flow sequences of scalars, {}
// and [], and comments. Plain scalars become bool, int64, float64, nil or
// string as YAML 1.2's core schema reads them; quoted ones stay strings.
// Anything else (anchors, tags, block scalars, flow mappings with content)
// is an error, so that a manifest this cannot read fails its test instead
// of being half read.
func decodeYAML(text string) ([]any, error) {
	var docs []any
	var cur []yamlLine
	flush := func() error {
		if len(cur) == 0 {
			return nil
		}
		p := &yamlParser{lines: cur}
		v, err := p.block(cur[0].indent)
		if err != nil {
			return err
		}
		if p.i < len(p.lines) {
			return p.errorf("unexpected indentation")
		}
		docs = append(docs, v)
		cur = nil
		return nil
	}
	for n, raw := range strings.Split(text, "\n") {
		if strings.HasPrefix(raw, "---") && strings.TrimSpace(raw[3:]) == "" {
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		if strings.Contains(raw, "\t") {
			return nil, fmt.Errorf("line %d: a tab", n+1)
		}
		content := strings.TrimRight(stripComment(raw), " ")
		if strings.TrimSpace(content) == "" {
			continue
		}
		indent := len(content) - len(strings.TrimLeft(content, " "))
		cur = append(cur, yamlLine{n + 1, indent, content[indent:]})
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return docs, nil
}

type yamlLine struct {
	num, indent int
	text        string
}

type yamlParser struct {
	lines []yamlLine
	i     int
}

func (p *yamlParser) errorf(format string, args ...any) error {
	num := 0
	if p.i < len(p.lines) {
		num = p.lines[p.i].num
	}
	return fmt.Errorf("line %d: %s", num, fmt.Sprintf(format, args...))
}

// block reads the mapping or sequence whose lines start at indent.
func (p *yamlParser) block(indent int) (any, error) {
	if p.i >= len(p.lines) || p.lines[p.i].indent != indent {
		return nil, p.errorf("expected a block at indentation %d", indent)
	}
	if isSeqItem(p.lines[p.i].text) {
		return p.sequence(indent)
	}
	return p.mapping(indent)
}

func isSeqItem(s string) bool { return s == "-" || strings.HasPrefix(s, "- ") }

func (p *yamlParser) sequence(indent int) (any, error) {
	out := []any{}
	for p.i < len(p.lines) && p.lines[p.i].indent == indent && isSeqItem(p.lines[p.i].text) {
		l := p.lines[p.i]
		rest := strings.TrimLeft(strings.TrimPrefix(l.text, "-"), " ")
		if rest == "" {
			p.i++
			if p.i >= len(p.lines) || p.lines[p.i].indent <= indent {
				out = append(out, nil)
				continue
			}
			v, err := p.block(p.lines[p.i].indent)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
			continue
		}
		if _, _, ok := splitKey(rest); ok {
			// A mapping that starts on the item's line: its keys line up
			// with the first one.
			p.lines[p.i] = yamlLine{l.num, l.indent + len(l.text) - len(rest), rest}
			v, err := p.mapping(p.lines[p.i].indent)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
			continue
		}
		v, err := scalar(rest)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", l.num, err)
		}
		out = append(out, v)
		p.i++
	}
	return out, nil
}

func (p *yamlParser) mapping(indent int) (any, error) {
	out := map[string]any{}
	for p.i < len(p.lines) && p.lines[p.i].indent == indent && !isSeqItem(p.lines[p.i].text) {
		l := p.lines[p.i]
		key, rest, ok := splitKey(l.text)
		if !ok {
			return nil, p.errorf("not key: value: %q", l.text)
		}
		if _, dup := out[key]; dup {
			return nil, p.errorf("key %q twice", key)
		}
		p.i++
		if rest != "" {
			v, err := scalar(rest)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", l.num, err)
			}
			out[key] = v
			continue
		}
		switch {
		case p.i < len(p.lines) && p.lines[p.i].indent > indent:
			v, err := p.block(p.lines[p.i].indent)
			if err != nil {
				return nil, err
			}
			out[key] = v
		case p.i < len(p.lines) && p.lines[p.i].indent == indent && isSeqItem(p.lines[p.i].text):
			v, err := p.sequence(indent)
			if err != nil {
				return nil, err
			}
			out[key] = v
		default:
			out[key] = nil
		}
	}
	return out, nil
}

// splitKey splits "key: value" or "key:" (an unquoted key).
func splitKey(s string) (key, rest string, ok bool) {
	if strings.HasPrefix(s, `"`) || strings.HasPrefix(s, "'") {
		return "", "", false
	}
	if k, ok := strings.CutSuffix(s, ":"); ok && !strings.Contains(k, ": ") {
		return k, "", true
	}
	k, v, ok := strings.Cut(s, ": ")
	if !ok || strings.HasPrefix(k, "[") || strings.HasPrefix(k, "{") {
		return "", "", false
	}
	return k, strings.TrimSpace(v), true
}

// scalar reads a value on one line.
func scalar(s string) (any, error) {
	switch {
	case s == "{}":
		return map[string]any{}, nil
	case strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]"):
		out := []any{}
		inner := strings.TrimSpace(s[1 : len(s)-1])
		if inner == "" {
			return out, nil
		}
		for _, item := range strings.Split(inner, ",") {
			item = strings.TrimSpace(item)
			if strings.ContainsAny(item, "[]{}") || item == "" {
				return nil, fmt.Errorf("flow sequence item %q", item)
			}
			v, err := scalar(item)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case strings.HasPrefix(s, `"`):
		v, err := strconv.Unquote(s)
		if err != nil {
			return nil, fmt.Errorf("double-quoted scalar %s: %w", s, err)
		}
		return v, nil
	case strings.HasPrefix(s, "'"):
		if len(s) < 2 || !strings.HasSuffix(s, "'") {
			return nil, fmt.Errorf("single-quoted scalar %s", s)
		}
		return strings.ReplaceAll(s[1:len(s)-1], "''", "'"), nil
	case strings.ContainsAny(s[:1], "&*!|>{[%@`"):
		return nil, fmt.Errorf("unsupported YAML: %s", s)
	}
	switch s {
	case "true", "True", "TRUE":
		return true, nil
	case "false", "False", "FALSE":
		return false, nil
	case "null", "Null", "NULL", "~":
		return nil, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && !strings.ContainsAny(s, "xXpP_") {
		return f, nil
	}
	return s, nil
}

// stripComment removes a # comment (at the start, or after a space, and
// outside quotes).
func stripComment(line string) string {
	quote := byte(0)
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '#' && (i == 0 || line[i-1] == ' '):
			return line[:i]
		}
	}
	return line
}

// TestDecodeYAML: the subset reads as YAML does, and what is outside it is
// refused rather than misread.
func TestDecodeYAML(t *testing.T) {
	in := `# a comment
a: 1
b: "100"   # quoted stays a string
c: 0.5
d: [run, --x=30s, 3]
e:
  f: true
  g:
  - name: one
    value: ${X}
  -   name: two
      list:
        - 'it''s'
        - ~
h: {}
url: https://example.test/a#b
---
second: doc
`
	got, err := decodeYAML(in)
	if err != nil {
		t.Fatal(err)
	}
	want := []any{
		map[string]any{
			"a": int64(1), "b": "100", "c": 0.5, "d": []any{"run", "--x=30s", int64(3)},
			"e": map[string]any{"f": true, "g": []any{
				map[string]any{"name": "one", "value": "${X}"},
				map[string]any{"name": "two", "list": []any{"it's", nil}},
			}},
			"h":   map[string]any{},
			"url": "https://example.test/a#b",
		},
		map[string]any{"second": "doc"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decoded\n%#v\nwant\n%#v", got, want)
	}
	for _, bad := range []string{"a: &anchor x", "a: |\n  text", "a: {b: c}", "a: 1\na: 2", "a:\n\tb: 1", "a: 1\n  b: 2"} {
		if _, err := decodeYAML(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
