package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// claim makes this program the only make run using stateDir, by creating
// stateDir/pid with its process id. A pid file whose process has ended is
// left from a run that was killed: it is taken over, with a word. name is
// stateDir as the user gave it, for messages. release removes the pid file.
func claim(stateDir, name string) (release func(), err error) {
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(stateDir, "pid")
	for range 2 {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			fmt.Fprintf(f, "%d\n", os.Getpid())
			if err := f.Close(); err != nil {
				return nil, err
			}
			return func() { os.Remove(path) }, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err == nil && pid != os.Getpid() && running(pid) {
			return nil, fmt.Errorf("another make run (pid %d) is using %s; stop it with Ctrl-C in its terminal, "+
				"or start this one with a folder of its own: bin/localrun -state %s-2", pid, name, strings.TrimSuffix(name, "/"))
		}
		fmt.Printf("%s was left by a make run that did not stop (pid %s); taking it over\n", name, strings.TrimSpace(string(b)))
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("could not claim %s", path)
}
