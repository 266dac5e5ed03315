package catalog

import (
	"strings"
	"testing"
)

// Every API is named once, has a method and a path, and counts against a
// limit that has a default: a row added to APIs without its limit fails.
func TestAPITable(t *testing.T) {
	names := map[string]bool{}
	for _, a := range APIs {
		if names[a.Name] || a.Method == "" || !strings.HasPrefix(a.Path, "/") {
			t.Errorf("API %+v: duplicate name, no method or no path", a)
		}
		names[a.Name] = true
		if _, ok := DefaultRateLimits()[a.Limit]; !ok {
			t.Errorf("API %s counts against limit %q, which has no default", a.Name, a.Limit)
		}
		if got := Of("/base" + strings.ReplaceAll(a.Path, "{id}", "abc")); got == nil || got.Name != a.Name {
			t.Errorf("Of(%s) = %v, want %s", a.Path, got, a.Name)
		}
	}
}
