package worker

import (
	"encoding/base64"
	"testing"
)

func TestDecodeBody(t *testing.T) {
	const obj = `{"id":"a","kind":"geocode","query":"x"}`
	b64 := base64.StdEncoding.EncodeToString([]byte(obj))
	cases := []struct {
		name, text, want, code string
	}{
		{"raw JSON", obj, obj, ""},
		{"raw JSON with spaces", "  " + obj + "\n", obj, ""},
		{"raw JSON with a byte-order mark", "\ufeff" + obj, obj, ""},
		{"base64", b64, obj, ""},
		{"unpadded base64", base64.RawStdEncoding.EncodeToString([]byte(obj)), obj, ""},
		{"URL-safe base64", base64.URLEncoding.EncodeToString([]byte(`{"q":"??>>"}`)), `{"q":"??>>"}`, ""},
		{"URL-safe unpadded base64", base64.RawURLEncoding.EncodeToString([]byte(`{"q":"??>>"}`)), `{"q":"??>>"}`, ""},
		{"base64 of spaced JSON", base64.StdEncoding.EncodeToString([]byte(" " + obj)), obj, ""},
		{"raw array is passed on for the handler to refuse", "[1]", "[1]", ""},
		{"empty", "   ", "", "Empty"},
		{"not UTF-8", "\xff\xfe{}", "", "NotUTF8"},
		{"neither", "hello world", "", "NotJSONOrBase64"},
		{"base64 of text", base64.StdEncoding.EncodeToString([]byte("hello")), "", "NotJSONObject"},
		{"base64 of invalid UTF-8", base64.StdEncoding.EncodeToString([]byte("{\xff}")), "", "NotUTF8"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := DecodeBody(c.text)
			if c.code != "" {
				if err == nil || ClassOf(err) != ClassInvalid || CodeOf(err) != c.code {
					t.Fatalf("err = %v (code %q), want code %s", err, CodeOf(err), c.code)
				}
				return
			}
			if err != nil || string(got) != c.want {
				t.Fatalf("= %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

func TestIsResult(t *testing.T) {
	for name, want := range map[string]bool{
		ResultName("geocode", "a"): true, ResultName("route", "x.y"): true,
		"mapsworker-status/vm-1.json": false, PoisonTextName("m-1"): false, "_check/p.json": false,
		"mapsworker-probe/none.json": false, "geocode/a.txt": false,
	} {
		if got := IsResult(name); got != want {
			t.Errorf("IsResult(%q) = %v, want %v", name, got, want)
		}
	}
}
