// Package azuritetest starts Azurite for a test or benchmark and stops it
// when that ends. Only tests import it.
package azuritetest

import (
	"testing"

	"mapsworker/internal/azurite"
)

// New starts Azurite for a test and stops it when the test ends.
func New(t testing.TB, opts *azurite.Options) *azurite.Server {
	t.Helper()
	s, err := azurite.Start(opts)
	if err != nil {
		t.Fatalf("azurite: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}
