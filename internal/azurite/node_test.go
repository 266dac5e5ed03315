package azurite

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestMajor(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"v22.23.2", 22},
		{"v20.20.2", 20},
		{"22.1.0", 22},
		{"", 0},
		{"node", 0},
	} {
		if got := major(tc.in); got != tc.want {
			t.Errorf("major(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

// TestNodePackagesArePinned: every platform Node looks for is an optional
// dependency of azurite/package.json, pinned in the lock file.
func TestNodePackagesArePinned(t *testing.T) {
	dir, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	lock, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	for platform, rel := range nodePackages {
		pkg, _, _ := strings.Cut(rel, "/")
		if !strings.Contains(string(manifest), `"`+pkg+`": "`) {
			t.Errorf("%s: %s is not in package.json", platform, pkg)
		}
		if !strings.Contains(string(lock), `"node_modules/`+pkg+`": {`) {
			t.Errorf("%s: %s is not in package-lock.json", platform, pkg)
		}
	}
}

func TestNodePrefersThePinnedOne(t *testing.T) {
	rel, ok := nodePackages[runtime.GOOS+"/"+runtime.GOARCH]
	if !ok {
		t.Skip("no pinned Node.js for this platform")
	}
	dir := t.TempDir()
	pinned := filepath.Join(dir, "node_modules", filepath.FromSlash(rel))
	os.MkdirAll(filepath.Dir(pinned), 0o755)
	os.WriteFile(pinned, nil, 0o755)
	t.Setenv("PATH", "")
	got, err := Node(dir)
	if err != nil || got != pinned {
		t.Fatalf("Node = %q, %v; want %q", got, err, pinned)
	}
}

// TestNodeOnPath: without the pinned package, the node on PATH is used when
// it is recent enough, and refused by name and version when it is not.
func TestNodeOnPath(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("fakes node with a shell script")
	}
	for _, tc := range []struct {
		version string
		wantErr bool
	}{
		{"v22.23.2", false},
		{"v24.0.0", false},
		{"v20.20.2", true},
	} {
		t.Run(tc.version, func(t *testing.T) {
			bin := t.TempDir()
			node := filepath.Join(bin, "node")
			os.WriteFile(node, []byte("#!/bin/sh\necho "+tc.version+"\n"), 0o755)
			t.Setenv("PATH", bin)
			got, err := Node(t.TempDir())
			if !tc.wantErr {
				if err != nil || got != node {
					t.Fatalf("Node = %q, %v; want %q", got, err, node)
				}
				return
			}
			if !errors.Is(err, ErrNoNode) || !strings.Contains(err.Error(), tc.version) || !strings.Contains(err.Error(), "Node.js 22 or later") {
				t.Fatalf("Node = %q, %v; want ErrNoNode naming %s and the minimum", got, err, tc.version)
			}
		})
	}
	t.Run("none", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		if _, err := Node(t.TempDir()); !errors.Is(err, ErrNoNode) || !strings.Contains(err.Error(), "make deps") {
			t.Fatalf("Node without any node: %v", err)
		}
	})
}
